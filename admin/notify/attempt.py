"""What one delivery attempt came to, whatever the channel."""

from __future__ import annotations

from dataclasses import dataclass

MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    status: int | None = None  # the receiver's HTTP status (webhooks)
    error: str | None = None  # why it failed, in words; never a secret
    retry: bool = True  # False: trying again cannot help (the notifier is disabled)

    @classmethod
    def failed(cls, error: str, status: int | None = None, *, retry: bool = True) -> Attempt:
        return cls(False, status, error[:MAX_ERROR_CHARS], retry)
