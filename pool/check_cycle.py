"""Checking proxies in stages. PLACEHOLDER: owned and replaced by the checkers engineer
(issue 16); the signature below is the contract admin/jobs.py uses."""

from __future__ import annotations

from models.crypto import KeyRing
from models.settings import Settings


class CheckDueProxies:
    """The scheduler's tick (every `pool_check_interval_ms`): check every proxy due."""

    def __init__(self, settings: Settings, key_ring: KeyRing):
        self.settings = settings
        self.key_ring = key_ring

    def __call__(self) -> None:
        pass
