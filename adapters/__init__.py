"""Adapters to the external systems (DESIGN.md §2): a small Protocol per system and its HTTP or file implementation.

Each adapter takes its own settings dataclass (``GatewaySettings``, ``RegistrySettings``, ``ApprovalSettings``,
``PostalSettings``), never the app's ``Config``: ``server.config`` builds them. Production and sandbox differ only
in those settings (base URL, key); the approval, gateway and registry clients share one signed HTTP client
(``adapters.http``). The sandboxes live in the top-level ``sandboxes`` package, which nothing here imports.

Layer: imports nothing of ours but ``protocol``.
"""
