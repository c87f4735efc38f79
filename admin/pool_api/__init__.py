"""The pool API (seed 003), served under `/pool`. PLACEHOLDER skeleton: the API engineer owns
this file (error handlers in seed 003's shape, `pp_` key authentication)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pool", __name__, url_prefix="/pool")

# Endpoint modules attach their routes to `bp` on import.
from admin.pool_api import judge, sources  # noqa: E402, F401
