"""Entry-point shim: ``python -m server.sandboxes.gateway`` runs ``sandboxes.gateway`` (the sandbox moved there)."""

from sandboxes.gateway import main

if __name__ == "__main__":
    main()
