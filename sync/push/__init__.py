"""The server's side of a push (PROTOCOL.md §2): ``envelope`` → ``load`` (what a batch needs, read up front) →
``commands`` (typed, from validated events) → ``decide`` (pure) → ``write``; ``engine`` runs a batch through
them, ``hold`` force-processes a held event."""

from sync.push.engine import push
from sync.push.envelope import MAX_DEPTH, EnvelopeError, seal_event, unseal_event
from sync.push.hold import ForceProcess, force_process
from sync.push.load import forced_links
from sync.push.outcome import SyncSettings

__all__ = [
    "MAX_DEPTH",
    "EnvelopeError",
    "ForceProcess",
    "SyncSettings",
    "force_process",
    "forced_links",
    "push",
    "seal_event",
    "unseal_event",
]
