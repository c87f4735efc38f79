"""Throttling of failed sign-ins (web passwords and tokens, Core API tokens) in the admin.

Failures count per account (the email typed) and per source address; either
key with too many failures in the window locks further attempts, right or
wrong, until the failures age out (`models.sign_in_throttle`). Failures are
logged with the email and the address, never with the password or token.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from flask import current_app, request

from admin.extensions import db
from models import utcnow
from models.sign_in_throttle import ThrottlePolicy, account_key, address_key, record_failure

log = logging.getLogger("portcullis.auth")


class TooManyFailures(Exception):
    """The account or address is locked; try again after `retry_after_s` seconds."""

    def __init__(self, retry_after: timedelta):
        self.retry_after_s = max(1, math.ceil(retry_after.total_seconds()))
        minutes = math.ceil(self.retry_after_s / 60)
        self.message = (
            f"Too many failed sign-ins; try again in {minutes} minute{'s' if minutes != 1 else ''}"
        )
        super().__init__(self.message)


def policy() -> ThrottlePolicy:
    settings = current_app.config["PORTCULLIS_SETTINGS"]
    return ThrottlePolicy.of_seconds(settings.sign_in_max_failures, settings.sign_in_window_seconds)


def keys_for(email: str | None = None) -> list[str]:
    """The keys an attempt from this request counts under: its address, and the account."""
    keys = [address_key(request.remote_addr)]
    if email is not None:
        keys.append(account_key(email))
    return keys


def refuse_if_locked(keys: list[str]) -> None:
    """Raise TooManyFailures if any of `keys` is locked."""
    wait = policy().retry_after(db.session, keys, utcnow())
    if wait is not None:
        raise TooManyFailures(wait)


def failed(keys: list[str], what: str) -> None:
    """Count and log a failed attempt (`what` says which, without any secret).

    Raises TooManyFailures if this failure locked a key, so the attempt that
    reaches the limit already says so.
    """
    now = utcnow()
    record_failure(db.session, keys, now)
    db.session.commit()
    log.warning("%s from address %s", what, request.remote_addr)
    wait = policy().retry_after(db.session, keys, now)
    if wait is not None:
        log.warning("further sign-ins locked for %d s (%s)", wait.total_seconds(), what)
        raise TooManyFailures(wait)
