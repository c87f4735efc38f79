"""A webhook notifier's signing secret, sealed with the master key ring (AAD "{id}:signing")."""

from __future__ import annotations

from models.crypto import KeyRing, SealedSecret
from models.ids import new_id
from models.notifier import Notifier


def _aad(notifier: Notifier) -> str:
    return f"{notifier.id}:signing"


def seal_signing_secret(notifier: Notifier, key_ring: KeyRing, secret: str) -> None:
    """Store `secret` sealed on `notifier` (its id is assigned first: it is part of the AAD)."""
    if notifier.id is None:
        notifier.id = new_id("notifier")
    sealed = key_ring.seal({"secret": secret}, _aad(notifier))
    notifier.secret_key_id, notifier.secret_ciphertext = sealed.key_id, sealed.ciphertext


def open_signing_secret(notifier: Notifier, key_ring: KeyRing) -> str:
    """The `whsec_` secret; raises if there is none or it does not open."""
    if notifier.secret_key_id is None or notifier.secret_ciphertext is None:
        raise ValueError(f"notifier {notifier.id} has no signing secret")
    sealed = SealedSecret(notifier.secret_key_id, notifier.secret_ciphertext)
    return key_ring.open(sealed, _aad(notifier))["secret"]
