"""The Core API, called in-process as the signed-in session's user.

No token is involved: the call carries the session's id in the WSGI environ
(see `admin.auth.WEB_SESSION_ENVIRON`), and the API checks that the session
is still live and applies its role checks to the session's user.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, current_app, request

from admin.auth import WEB_SESSION_ENVIRON, current_web_session


class SignInRequired(Exception):
    """No live web session, or the API no longer accepts it."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict | list  # the metrics history is a bare array (seed 004)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def items(self, key: str) -> list[dict]:
        return self.body.get(key, [])

    def item(self, key: str) -> dict:
        return self.items(key)[0]

    @property
    def message(self) -> str:
        return self.body.get("message", "")

    @property
    def field_errors(self) -> dict[str, list[str]]:
        """The API's field errors by its field names (`credentialSecret.value`)."""
        return self.body.get("error", {}).get("details", {}).get("fields", {})


def call(method: str, path: str, json: dict | None = None, params: dict | None = None) -> Answer:
    """`METHOD /api{path}` as the signed-in session's user. Raises SignInRequired on a 401."""
    web_session = current_web_session()
    if web_session is None:
        raise SignInRequired
    answer = _open(method, path, json, params, {WEB_SESSION_ENVIRON: web_session.id})
    if answer.status == 401:
        raise SignInRequired
    return answer


def call_public(method: str, path: str, json: dict | None = None) -> Answer:
    """`METHOD /api{path}` without a session: the endpoints that need no sign-in (invites)."""
    return _open(method, path, json, None, {})


def _open(method: str, path: str, json, params: dict | None, environ: dict) -> Answer:
    response = current_app.test_client().open(
        f"/api{path}",
        method=method,
        base_url=request.host_url,  # the API sees the browser's origin (OAuth2 redirect_uri)
        json=json,
        query_string={k: v for k, v in (params or {}).items() if v not in (None, "")},
        environ_base=environ,
    )
    return Answer(response.status_code, response.get_json(silent=True) or {})


def get(path: str, **params) -> Answer:
    return call("GET", path, params=params)


def page_values(answer: Answer, key: str, token: str, next_field: str = "nextToken") -> dict:
    """Template values for one page of a paged list answered under `key`: `items`, the API's
    refusal of a bad paging token (`paging_error`), the token of the next page (`next_token`,
    read from `next_field`) and whether this is the first page."""
    return {
        "items": answer.items(key) if answer.ok else [],
        "paging_error": "" if answer.ok else answer.message,
        "next_token": answer.body.get(next_field) if answer.ok else None,
        "first_page": not token,
    }


def get_one(path: str, key: str) -> dict:
    """The single record the API returns at `path` under `key`; the page is a 404 otherwise."""
    answer = get(path)
    if not answer.ok:
        abort(404)
    return answer.item(key)
