"""What the pool's routes read from a request and the app: JSON bodies in the pool's error
shape, the settings and the key ring."""

from __future__ import annotations

from flask import current_app, request

from admin.errors import ApiError
from admin.http import json_body
from models.crypto import KeyRing
from models.settings import Settings
from pool.errors import PoolError, invalid


def body() -> dict:
    """The request's JSON object; a bad body is a 400 INVALID_JSON in the pool's shape."""
    try:
        return json_body()
    except ApiError as exc:
        fields = exc.details.get("fields") or {}
        if fields:  # a NUL character in a field: the pool names fields its own way
            field = next(iter(fields))
            raise invalid(field, fields[field][0]) from None
        raise PoolError(exc.status, exc.code, exc.message, exc.details) from None


def optional_body() -> dict:
    """The request's JSON object; an empty body is `{}`."""
    return body() if request.get_data(cache=True).strip() else {}


def settings() -> Settings:
    return current_app.config["PORTCULLIS_SETTINGS"]


def key_ring() -> KeyRing:
    return current_app.config["PORTCULLIS_KEY_RING"]
