"""The caller's own user record, personal tokens and web sessions."""

from __future__ import annotations

from admin.api.common import api_blueprint, load_body
from admin.auth import current_user, current_web_session, session_timeouts
from admin.errors import invalid, not_found
from admin.extensions import db
from admin.http import envelope
from admin.openapi import doc
from admin.schemas.users import (
    NewTokenSchema,
    PasswordSchema,
    TokenSchema,
    UserSchema,
    WebSessionSchema,
)
from models import UserToken, WebSession, utcnow
from models.tokens import generate_user_token, hash_token, token_hint
from models.web_session import end_sessions_of_token, live_sessions

bp = api_blueprint("users")


def issue_token(user, label: str) -> tuple[UserToken, str]:
    """Create a token for `user`; the plain value is returned once and never stored."""
    token = generate_user_token()
    record = UserToken(user=user, token_hash=hash_token(token), hint=token_hint(token), label=label)
    db.session.add(record)
    return record, token


@bp.get("/users/me")
@doc("Your user", "users", envelope="users", schema=UserSchema, errors=(401,))
def get_me():
    return envelope("users", [UserSchema().dump(current_user())])


@bp.get("/users/me/tokens")
@doc(
    "List your tokens (values are never shown again)",
    "users",
    envelope="tokens",
    schema=TokenSchema,
    errors=(401,),
)
def list_tokens():
    return envelope("tokens", TokenSchema(many=True).dump(current_user().tokens))


@bp.post("/users/me/tokens")
@doc(
    "Create a token; its value is in this response only",
    "users",
    body=TokenSchema,
    envelope="tokens",
    schema=NewTokenSchema,
    status=201,
    errors=(400, 401, 413),
)
def create_token():
    values = load_body(TokenSchema())
    user = current_user()
    label = values.get("label") or f"User Token {len(user.tokens) + 1}"
    record, token = issue_token(user, label)
    db.session.commit()
    shown = {**TokenSchema().dump(record), "token": token}
    return envelope(
        "tokens", [shown], message="Token created; copy it now, it is not shown again", status=201
    )


@bp.delete("/users/me/tokens/<token_id>")
@doc(
    "Revoke one of your tokens; web sessions signed in with it end too",
    "users",
    envelope="tokens",
    schema=TokenSchema,
    errors=(401, 404),
)
def revoke_token(token_id: str):
    record = db.session.get(UserToken, token_id)
    if record is None or record.user_id != current_user().id:
        raise not_found("Token")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        end_sessions_of_token(db.session, record.id)
        db.session.commit()
    return envelope("tokens", [TokenSchema().dump(record)], message="Token revoked")


def _other_live_sessions() -> list[WebSession]:
    """The caller's live web sessions, except the one making this call (if any)."""
    current = current_web_session()
    return [
        s
        for s in live_sessions(db.session, current_user().id, session_timeouts(), utcnow())
        if current is None or s.id != current.id
    ]


@bp.get("/users/me/sessions")
@doc(
    "List your live web admin sessions, most recently used first",
    "users",
    envelope="sessions",
    schema=WebSessionSchema,
    errors=(401,),
)
def list_sessions():
    found = live_sessions(db.session, current_user().id, session_timeouts(), utcnow())
    return envelope("sessions", WebSessionSchema(many=True).dump(found))


@bp.delete("/users/me/sessions/<session_id>")
@doc(
    "End one of your web sessions: that browser is signed out at once",
    "users",
    envelope="sessions",
    schema=WebSessionSchema,
    errors=(401, 404),
)
def end_session(session_id: str):
    found = db.session.get(WebSession, session_id)
    if (
        found is None
        or found.user_id != current_user().id
        or not session_timeouts().is_live(found, utcnow())
    ):
        raise not_found("Session")
    shown = WebSessionSchema().dump(found)
    db.session.delete(found)
    db.session.commit()
    return envelope("sessions", [shown], message="Session ended")


@bp.delete("/users/me/sessions")
@doc(
    "End all your web sessions but the one making this call (all of them, called with a token)",
    "users",
    envelope="sessions",
    schema=WebSessionSchema,
    errors=(401,),
)
def end_other_sessions():
    ending = _other_live_sessions()
    shown = WebSessionSchema(many=True).dump(ending)
    for found in ending:
        db.session.delete(found)
    db.session.commit()
    count = len(ending)
    return envelope(
        "sessions", shown, message=f"{count} other session{'' if count == 1 else 's'} ended"
    )


@bp.put("/users/me/password")
@doc(
    "Set your password (for signing in to the web admin); send currentPassword to change one."
    " Your other web sessions end.",
    "users",
    body=PasswordSchema,
    envelope="users",
    schema=UserSchema,
    errors=(400, 401, 413),
)
def set_password():
    values = load_body(PasswordSchema())
    user = current_user()
    if user.password_hash is not None and not user.check_password(
        values.get("currentPassword", "")
    ):
        raise invalid("currentPassword", "Does not match your current password.")
    user.set_password(values["password"])
    for other in _other_live_sessions():
        db.session.delete(other)
    db.session.commit()
    return envelope(
        "users", [UserSchema().dump(user)], message="Password set; your other sessions ended"
    )
