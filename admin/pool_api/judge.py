"""`GET /pool/judge`: echoes what a check sent through a pool member (no key needed).

The answer is built by `pool.judge.judge_answer`; `remote_addr` is the address the request
came from (the member's exit address), as the admin's server saw it.
"""

from __future__ import annotations

from flask import jsonify, request
from marshmallow import Schema, fields

from admin.openapi import pool_doc
from admin.pool_api import bp
from pool.errors import invalid
from pool.judge import NONCE_PATTERN, judge_answer


class JudgeAnswerSchema(Schema):
    nonce = fields.String(metadata={"description": "the `nonce` query value, echoed"})
    remote_addr = fields.String(metadata={"description": "the address the request came from"})
    headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "the request's headers (Cookie, Authorization redacted)"},
    )
    method = fields.String()


@bp.get("/judge")
@pool_doc(
    "The judge: echoes a check's request (nonce, address, headers); no key needed",
    schema=JudgeAnswerSchema,
    query={"nonce": fields.String(required=True, metadata={"pattern": "^[A-Za-z0-9_-]{1,128}$"})},
    auth=False,
    errors=(422,),
)
def judge():
    nonce = request.args.get("nonce", "")
    if not NONCE_PATTERN.match(nonce):
        raise invalid("nonce", "must be 1 to 128 letters, digits, '-' or '_'")
    answer = judge_answer(nonce, request.remote_addr, request.headers.items(), request.method)
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response
