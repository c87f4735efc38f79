"""One webhook attempt: the payload POSTed as JSON, signed, through the admin's SSRF guard."""

from __future__ import annotations

import json
import time

from admin.notify.attempt import Attempt
from admin.notify.signing import signed_headers
from models import guarded_http
from models.ssrf_policy import Network

USER_AGENT = "Portcullis-Webhooks/1"


def body_of(payload: dict) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def send_webhook(
    url: str, secret: str, event_id: str, payload: dict, allowed: tuple[Network, ...]
) -> Attempt:
    """POST `payload` to `url`; a 2xx answer is delivered, anything else a failure."""
    body = body_of(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signed_headers(secret, event_id, int(time.time()), body),
    }
    try:
        answer = guarded_http.request("POST", url, headers=headers, body=body, allowed=allowed)
    except guarded_http.OutboundError as exc:
        return Attempt.failed(str(exc))
    if 200 <= answer.status < 300:
        return Attempt(True, answer.status)
    return Attempt.failed(f"the receiver answered {answer.status}", answer.status)
