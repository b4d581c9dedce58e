"""Personal data at rest (DESIGN.md §7): AES-256-GCM for values, a keyed hash for lookups, masks for screens.

The keys come from configuration (``JINGSU_PII_KEY``, ``JINGSU_LOOKUP_KEY``); this module never reads them itself.
Ciphertext layout: version byte ``1`` + 12-byte nonce + GCM ciphertext-and-tag.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"


class PiiCipher:
    """Encrypts and decrypts personal data; computes keyed lookup hashes."""

    def __init__(self, pii_key_hex: str, lookup_key_hex: str) -> None:
        key = bytes.fromhex(pii_key_hex)
        if len(key) != 32:
            raise ValueError("the personal-data key must be 32 bytes (64 hex characters)")
        self._aead = AESGCM(key)
        self._lookup_key = bytes.fromhex(lookup_key_hex)
        # a short or empty key would make the RRN hash guessable by brute force (birth date + 7 digits)
        if len(self._lookup_key) < 32:
            raise ValueError("the lookup key must be at least 32 bytes (64 hex characters)")

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> bytes:
        if not blob or blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        return self._aead.decrypt(blob[1:13], blob[13:], context)

    def encrypt_json(self, value: Any, *, context: bytes = b"") -> bytes:
        return self.encrypt(json.dumps(value, ensure_ascii=False).encode(), context=context)

    def decrypt_json(self, blob: bytes, *, context: bytes = b"") -> Any:
        return json.loads(self.decrypt(blob, context=context))

    def seal_text(self, value: Any, *, context: bytes = b"") -> str:
        """Encrypt a JSON value into a base64 string that can sit inside a JSON document."""
        return base64.b64encode(self.encrypt_json(value, context=context)).decode("ascii")

    def open_text(self, sealed: str, *, context: bytes = b"") -> Any:
        return self.decrypt_json(base64.b64decode(sealed), context=context)

    def lookup_hash(self, value: str) -> bytes:
        """Keyed hash of a normalised identifier (e.g. an RRN without its dash) for equality lookups."""
        normalised = "".join(ch for ch in value if ch.isalnum()).upper()
        return hmac.new(self._lookup_key, normalised.encode(), hashlib.sha256).digest()
