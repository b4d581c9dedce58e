"""Entry-point shim: ``python -m server.sandboxes.registry`` runs ``sandboxes.registry`` (the sandbox moved there)."""

from sandboxes.registry import main

if __name__ == "__main__":
    main()
