"""Adapters to the external systems (DESIGN.md §2): a small Protocol per system and its HTTP or file implementation.

Production and sandbox differ only in configuration (base URL, key); the sandboxes live in ``server.sandboxes``.
"""
