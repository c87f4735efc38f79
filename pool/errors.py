"""Errors of the pool, answered in seed 003's shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations


class PoolError(Exception):
    """An error answered to the caller as it is: a status, a machine code, a message."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid(field: str, message: str, **details) -> PoolError:
    """A 422 naming the one bad field (a body field or a query parameter)."""
    return PoolError(422, "VALIDATION_ERROR", f"{field}: {message}", {"field": field, **details})


def not_found(what: str) -> PoolError:
    return PoolError(404, "NOT_FOUND", f"{what} not found")
