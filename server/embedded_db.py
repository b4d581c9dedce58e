"""Entry-point shim: ``python -m server.embedded_db url|status|stop`` runs ``sandboxes.embedded_db`` (moved there)."""

from sandboxes.embedded_db import main

if __name__ == "__main__":
    main()
