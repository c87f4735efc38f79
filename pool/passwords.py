"""Pool members' passwords, sealed with the KeyRing and bound to the proxy's id.

One place for the format so the scrape (which seals) and the checkers (which open, only in
memory) agree: `KeyRing.seal({"password": ...}, "pool:{id}:password")`.
"""

from __future__ import annotations

from models.crypto import KeyRing, SealedSecret
from models.pool import PoolProxy


def password_aad(proxy_id: str) -> str:
    """The associated data a member's sealed password is bound to."""
    return f"pool:{proxy_id}:password"


def seal_password(key_ring: KeyRing, proxy_id: str, password: str) -> SealedSecret:
    """The sealed form of `password` for the proxy `proxy_id` (key id + ciphertext columns)."""
    return key_ring.seal({"password": password}, password_aad(proxy_id))


def open_password(key_ring: KeyRing, proxy: PoolProxy) -> str | None:
    """The proxy's password in clear (None when it has none). Raises on a tampered secret."""
    if proxy.password_key_id is None or proxy.password_ciphertext is None:
        return None
    sealed = SealedSecret(proxy.password_key_id, bytes(proxy.password_ciphertext))
    return key_ring.open(sealed, password_aad(proxy.id))["password"]
