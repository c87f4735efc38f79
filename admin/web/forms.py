"""The web admin's forms. Flask-WTF gives them CSRF tokens; the Core API validates them.

Only what a browser needs is checked here (required fields). Everything else
is the API's job: its field errors come back and are shown next to the
field they name (see `ApiForm.show_errors`).
"""

from __future__ import annotations

from typing import ClassVar

from flask import request
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Optional

EFFECTS = [("allow", "allow"), ("deny", "deny")]
PRESENCE = [("present", "must be present"), ("absent", "must be absent")]
ROLES = [
    ("user", "user (reads)"),
    ("admin", "admin (also writes)"),
    ("owner", "owner (also members)"),
]


def name_value_lines(text: str | None) -> dict[str, str]:
    """`Name: value` lines (headers typed into a textarea) as a mapping."""
    pairs = (line.split(":", 1) for line in (text or "").splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, value in pairs}


class PageForm(FlaskForm):
    def submit_ok(self) -> bool:
        """This form was sent (not another one on the page) and is valid, CSRF included."""
        if not self.is_submitted():
            return False
        mine = f"{self._prefix}" if self._prefix else ""
        if mine and not any(key.startswith(mine) for key in request.form):
            return False
        return self.validate()


class ApiForm(PageForm):
    """A form whose values go to the Core API; `API_FIELDS` maps API names to its fields."""

    API_FIELDS: ClassVar[dict[str, str]] = {}

    def show_errors(self, api_errors: dict[str, list[str]], message: str = "") -> None:
        """Put the API's field errors next to the fields; the rest on the form."""
        self.form_errors = []
        for api_name, messages in api_errors.items():
            field = next(
                (
                    getattr(self, name)
                    for prefix, name in self.API_FIELDS.items()
                    if api_name == prefix or api_name.startswith(prefix + ".")
                ),
                None,
            )
            if field is not None:
                field.errors = [*field.errors, *messages]
            else:
                self.form_errors.extend(f"{api_name}: {m}" for m in messages)
        if not api_errors and message:
            self.form_errors.append(message)


class ConfirmForm(FlaskForm):
    """An empty form: a POST that carries a CSRF token (sign out, delete, revoke)."""


class LoginForm(PageForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class TokenLoginForm(PageForm):
    token = PasswordField("User token", validators=[DataRequired()])


class PasswordForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {
        "password": "password",
        "currentPassword": "current_password",
    }
    current_password = PasswordField("Current password", validators=[Optional()])
    password = PasswordField("New password (10 characters or more)", validators=[DataRequired()])
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
    )


class NewTokenForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {"label": "label"}
    label = StringField("Label", validators=[Optional()])


class ClientForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {"clientName": "name"}
    name = StringField("Name", validators=[DataRequired()])


class MemberForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {"email": "email", "roles": "role"}
    email = EmailField("Email of their Portcullis account", validators=[DataRequired()])
    role = SelectField("Role", choices=ROLES)


class RoleForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {"roles": "role"}
    role = SelectField("Role", choices=ROLES)


class TargetForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {
        "targetName": "name",
        "targetBaseURL": "base_url",
        "targetRegion": "region",
        "targetTestPath": "test_path",
        "targetDefaultRuleEffect": "default_effect",
        "targetActive": "active",
    }
    name = StringField("Name", validators=[DataRequired()])
    base_url = StringField("Base URL", validators=[DataRequired()])
    region = StringField("Region", default="us-east-1", validators=[DataRequired()])
    test_path = StringField("Test path (for the Test button)")
    default_effect = SelectField("When no rule matches", choices=EFFECTS)
    active = BooleanField("Active", default=True)


class ProxyForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {
        "proxyName": "name",
        "proxyAlias": "alias",
        "proxyRegion": "region",
        "proxyProxyCredentialId": "proxy_credential",
        "proxyTargetId": "target",
        "proxyTargetCredentialId": "target_credential",
        "proxyDefaultRuleEffect": "default_effect",
        "proxyActive": "active",
    }
    name = StringField("Name", validators=[DataRequired()])
    alias = StringField("Alias (optional, used in the URL instead of the id)")
    region = StringField("Region", default="us-east-1", validators=[DataRequired()])
    proxy_credential = SelectField("Proxy credential (what callers present)")
    target = SelectField("Target")
    target_credential = SelectField("Target credential (what the gateway injects)")
    default_effect = SelectField("When no rule matches", choices=EFFECTS)
    active = BooleanField("Active", default=True)


class RuleForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {
        "effect": "effect",
        "priority": "priority",
        "methods": "methods",
        "pathPattern": "path_pattern",
        "pathPresence": "path_presence",
        "headerChecks": "header_name",
        "queryChecks": "query_name",
        "regexFlags": "regex_flags",
        "notes": "notes",
    }
    effect = SelectField("Effect", choices=EFFECTS)
    priority = IntegerField("Priority (higher first)", default=0, validators=[Optional()])
    methods = StringField("Methods, e.g. GET, POST (empty: any)")
    path_pattern = StringField("Path pattern (RE2), e.g. ^/v1/")
    path_presence = SelectField(
        "Path", choices=[("present", "must match"), ("absent", "must not match")]
    )
    header_name = StringField("Header name pattern")
    header_value = StringField("Header value pattern (optional)")
    header_presence = SelectField("Header", choices=PRESENCE)
    query_name = StringField("Query parameter name pattern")
    query_value = StringField("Query parameter value pattern (optional)")
    query_presence = SelectField("Query parameter", choices=PRESENCE)
    regex_flags = StringField("Regex flags (i, m, s)")
    notes = StringField("Notes")


class ExplainForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {
        "method": "method",
        "path": "path",
        "headers": "headers",
        "query": "query",
    }
    method = SelectField(
        "Method", choices=[(m, m) for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")]
    )
    path = StringField("Path below the proxy", default="/", validators=[DataRequired()])
    headers = TextAreaField("Headers, one 'Name: value' per line")
    query = StringField("Query string, e.g. page=2&debug=1")
