"""Stage 2, authenticate: the caller's proxy credential (header or `Authorization` query).

Once read, the caller's credential is blanked in what the flow shows (mitmdump's
output, mitmweb, flow files); the request to the target is built from the
headers as received (`FlowState.caller_fields`) with the credential removed.
"""

from __future__ import annotations

import jwt
from mitmproxy import ctx, exceptions, http

from addons.failsafe import fail_closed
from addons.fetch import Fetcher
from addons.injection import conceal_caller_credential
from addons.jwks import FETCH_TIMEOUT_S, JwksCache, JwksUnavailable
from addons.proxy_auth import (
    AuthFailure,
    Presented,
    QueryOnce,
    authenticate,
    hmac_key,
    jwt_token,
)
from addons.responses import DENIED, answer, answered, proxy_error
from addons.route import check_usable
from addons.snapshot import CredentialView, ProxyView
from addons.state import FlowState, state_of
from models import utcnow


class Authenticate:
    def __init__(self, fetcher: Fetcher):
        self.jwks = JwksCache(fetcher)

    def load(self, loader) -> None:
        loader.add_option(
            "portcullis_jwks_timeout_ms",
            int,
            int(FETCH_TIMEOUT_S * 1000),
            "Milliseconds a JWKS fetch may take in all (connecting, answering, reading); "
            "then the caller gets 401 jwks-unavailable.",
        )

    def configure(self, updated) -> None:
        if "portcullis_jwks_timeout_ms" in updated:
            timeout_ms = ctx.options.portcullis_jwks_timeout_ms
            if timeout_ms < 1:
                raise exceptions.OptionsError("portcullis_jwks_timeout_ms must be positive")
            self.jwks.timeout_s = timeout_ms / 1000

    async def _check(self, proxy: ProxyView, presented: Presented) -> None:
        credential = proxy.proxy_credential
        resolve = hmac_key
        jwks_url = credential.settings.get("jwksUrl")
        if credential.auth_type == "jwtVerify" and jwks_url and presented.authorization():
            token = jwt_token(presented)
            try:
                key = await self.jwks.key_for(jwks_url, token)
            except JwksUnavailable as exc:
                raise AuthFailure(str(exc), "jwks-unavailable") from exc
            except jwt.PyJWTError as exc:
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
            conceal_caller_credential(flow.request, (proxy.proxy_credential,))
            if state.proxy is None and not check_usable(flow, state, proxy):
                return
            state.proxy = proxy
            state.mark("proxyAuthenticated", "proxyCredentialActive")
            return
        conceal_caller_credential(flow.request, [p.proxy_credential for p in state.candidates])
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
