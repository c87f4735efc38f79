"""Credential secrets sealed with AES-256-GCM under rotatable master keys.

A master key ring is a list of `KEY_ID:BASE64KEY` entries (comma or newline
separated). The first entry encrypts; every entry can decrypt, so a new key is
put first and old records are re-sealed with `run_admin.py rotate-secrets`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32


class KeyRingError(ValueError):
    """The master key configuration is unusable."""


class SecretDecryptionError(Exception):
    """A sealed secret could not be opened (unknown key id, tampering, wrong record)."""


@dataclass(frozen=True)
class SealedSecret:
    """What the store keeps for a secret: ciphertext (nonce + data + tag) and the key id."""

    key_id: str
    ciphertext: bytes


class KeyRing:
    """Master keys by id; the first one is used to encrypt."""

    def __init__(self, keys: list[tuple[str, bytes]]):
        if not keys:
            raise KeyRingError("the master key ring is empty")
        self._keys: dict[str, AESGCM] = {}
        for key_id, key in keys:
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"master key {key_id!r} must be {KEY_BYTES} bytes")
            if key_id in self._keys:
                raise KeyRingError(f"master key id {key_id!r} appears twice")
            self._keys[key_id] = AESGCM(key)
        self.active_key_id = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Parse `ID:BASE64[,ID:BASE64...]` (commas or newlines)."""
        keys = []
        for entry in text.replace(",", "\n").splitlines():
            entry = entry.strip()
            if not entry or entry.startswith("#"):
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep or not key_id:
                raise KeyRingError("each master key entry must look like KEY_ID:BASE64KEY")
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error as exc:
                raise KeyRingError(f"master key {key_id!r} is not valid base64") from exc
            keys.append((key_id, key))
        return cls(keys)

    def seal(self, plaintext: dict, record_id: str) -> SealedSecret:
        """Encrypt a JSON-able secret bound to `record_id` (the associated data)."""
        nonce = os.urandom(NONCE_BYTES)
        data = json.dumps(plaintext, separators=(",", ":"), sort_keys=True).encode("utf-8")
        sealed = self._keys[self.active_key_id].encrypt(nonce, data, record_id.encode("utf-8"))
        return SealedSecret(self.active_key_id, nonce + sealed)

    def open(self, sealed: SealedSecret, record_id: str) -> dict:
        """Decrypt a secret sealed for `record_id`."""
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise SecretDecryptionError(f"no master key with id {sealed.key_id!r}")
        nonce, data = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
        try:
            plaintext = aead.decrypt(nonce, data, record_id.encode("utf-8"))
        except InvalidTag as exc:
            raise SecretDecryptionError("secret failed authentication") from exc
        return json.loads(plaintext)


def new_key_entry() -> str:
    """A fresh `ID:BASE64` master key entry."""
    key_id = "k" + datetime.now(UTC).strftime("%Y%m%d") + "-" + secrets.token_hex(3)
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def load_key_ring(env_value: str | None, key_file: Path) -> tuple[KeyRing, bool]:
    """The key ring from the environment, else from `key_file`, generating it if absent.

    Returns the ring and whether a new key file was generated just now.
    """
    if env_value:
        return KeyRing.parse(env_value), False
    generated = False
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key_entry() + "\n")
        generated = True
    return KeyRing.parse(key_file.read_text()), generated
