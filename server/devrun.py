"""Entry-point shim: ``python -m server.devrun`` runs ``sandboxes.devrun`` (``make run``; moved there)."""

from sandboxes.devrun import main

if __name__ == "__main__":
    main()
