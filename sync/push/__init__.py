"""The server's side of a push (PROTOCOL.md §2), in steps: ``envelope`` (the all-or-nothing part, storability,
sealing) → ``load`` (everything a batch needs, read before any decision) → ``commands`` (typed, from the validated
events) → ``decide`` (pure) → ``write`` (through the domain's operations); ``engine`` runs a batch through them
(``engine.push``), ``hold`` force-processes a held event. Import the step you need: this package imports nothing."""
