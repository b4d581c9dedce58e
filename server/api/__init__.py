"""HTTP blueprints: back office (``/api/v1``) and the device sync protocol (``/sync/v1``)."""
