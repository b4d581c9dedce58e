"""Entry-point shim: ``python -m server.sandboxes.approval`` runs ``sandboxes.approval`` (the sandbox moved there)."""

from sandboxes.approval import main

if __name__ == "__main__":
    main()
