"""`GET /pool/judge`: echoes what a check sent through a pool member (no key needed).

The answer is built by `pool.judge.judge_answer`; `remote_addr` is the address the request
came from (the member's exit address), as the admin's server saw it.
"""

from __future__ import annotations

from flask import jsonify, request

from admin.pool_api import bp
from pool.errors import invalid
from pool.judge import NONCE_PATTERN, judge_answer


@bp.get("/judge")
def judge():
    nonce = request.args.get("nonce", "")
    if not NONCE_PATTERN.match(nonce):
        raise invalid("nonce", "must be 1 to 128 letters, digits, '-' or '_'")
    answer = judge_answer(nonce, request.remote_addr, request.headers.items(), request.method)
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response
