"""Entry-point shims only: ``python -m server.sandboxes.<name>`` keeps working; the sandboxes live in ``sandboxes``."""
