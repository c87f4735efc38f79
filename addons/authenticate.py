"""Stage 2, authenticate: the caller's proxy credential (header or `Authorization` query)."""

from __future__ import annotations

import jwt
import requests
from mitmproxy import http

from addons.failsafe import fail_closed
from addons.jwks import JwksCache
from addons.proxy_auth import AuthFailure, Presented, QueryOnce, authenticate, hmac_key
from addons.responses import DENIED, answer, answered, proxy_error
from addons.route import check_usable
from addons.snapshot import CredentialView, ProxyView
from addons.state import FlowState, state_of
from models import utcnow


class Authenticate:
    def __init__(self):
        self.jwks = JwksCache()

    async def _check(self, proxy: ProxyView, presented: Presented) -> None:
        credential = proxy.proxy_credential
        resolve = hmac_key
        jwks_url = credential.settings.get("jwksUrl")
        if credential.auth_type == "jwtVerify" and jwks_url:
            token = (presented.authorization() or "").removeprefix("Bearer ").strip()
            try:
                key = await self.jwks.key_for(jwks_url, token)
            except (jwt.PyJWTError, requests.RequestException, OSError) as exc:
                raise AuthFailure(f"Invalid proxy credential token: {exc}", "invalid") from exc

            def resolve(_credential: CredentialView, _token: str):
                return key

        authenticate(credential, presented, utcnow(), resolve)

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        state = state_of(flow)
        presented = Presented(flow.request.headers, QueryOnce(state.query))
        failure: AuthFailure | None = None
        for proxy in state.candidates:
            try:
                await self._check(proxy, presented)
            except AuthFailure as exc:
                failure = failure or exc
                continue
            if state.proxy is None and not check_usable(flow, state, proxy):
                return
            state.proxy = proxy
            state.mark("proxyAuthenticated", "proxyCredentialActive")
            return
        self._refuse(flow, state, failure)

    @staticmethod
    def _refuse(flow: http.HTTPFlow, state: FlowState, failure: AuthFailure) -> None:
        if failure.reason not in ("inactive", "expired"):
            state.mark("proxyCredentialActive")
        state.proxy_code = DENIED
        message = failure.message if len(state.candidates) == 1 else "Invalid proxy credential"
        answer(
            flow,
            proxy_error(
                401, DENIED, "UNAUTHORIZED", message, {"reason": failure.reason}, state.request_id
            ),
        )
