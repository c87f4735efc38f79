"""Answers every request with 503 until the pipeline stages are installed.

mitmproxy forwards a flow whose hooks did not answer it; this addon makes
sure nothing is forwarded unchecked by a data plane that has no checks yet.
"""

from __future__ import annotations

import json

from mitmproxy import http

BODY = json.dumps(
    {
        "message": "The Portcullis data plane is not configured to forward requests yet",
        "error": {"code": "SERVICE_UNAVAILABLE", "message": "No pipeline installed", "details": {}},
    }
).encode()


class DataPlaneUnavailable:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.response = http.Response.make(503, BODY, {"Content-Type": "application/json"})
