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
    FieldList,
    Form,
    FormField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Optional

from admin.web.plain_errors import plain
from models.pool import ANONYMITIES, PROTOCOLS

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
        """Put the API's field errors, in plain words, next to the fields; the rest on the form."""
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
            words = [plain(api_name, m) for m in messages]
            if field is not None:
                field.errors = [*field.errors, *words]
            else:
                self.form_errors.extend(f"{api_name}: {m}" for m in words)
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


EGRESS_MODES = [
    ("direct", "Directly from the gateway"),
    ("proxy", "Through a fixed proxy"),
    ("pool", "Through the proxy pool"),
]
ANY = [("", "any")]
POOL_PROTOCOLS = ANY + [(p, p) for p in PROTOCOLS]
POOL_ANONYMITIES = ANY + [(a, a) for a in ANONYMITIES]
ROTATIONS = [
    ("per_request", "a different proxy for each request"),
    ("sticky", "keep one proxy for some seconds"),
]


class TargetForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {
        "targetName": "name",
        "targetBaseURL": "base_url",
        "targetRegion": "region",
        "targetTestPath": "test_path",
        "targetDefaultRuleEffect": "default_effect",
        "targetActive": "active",
        # The egress sub-fields first: the first matching prefix wins.
        "targetEgress.url": "egress_url",
        "targetEgress.clearCredentials": "egress_clear",
        "targetEgress.protocol": "pool_protocol",
        "targetEgress.country": "pool_country",
        "targetEgress.anonymity": "pool_anonymity",
        "targetEgress.minScore": "pool_min_score",
        "targetEgress.rotation": "pool_rotation",
        "targetEgress.stickySeconds": "pool_sticky_seconds",
        "targetEgress": "egress_mode",
    }
    name = StringField("Name", validators=[DataRequired()])
    base_url = StringField("Base URL", validators=[DataRequired()])
    region = StringField("Region", default="us-east-1", validators=[DataRequired()])
    test_path = StringField("Test path (for the Test button)")
    default_effect = SelectField("When no rule matches", choices=EFFECTS)
    active = BooleanField("Active", default=True)
    max_response_bytes = StringField("Max response bytes (empty = default, 0 = no limit)")
    mcp = BooleanField("MCP server (its JSON-RPC calls are decided one by one)")
    # Egress (models/egress.py): how requests leave for the target.
    egress_mode = SelectField("Requests leave", choices=EGRESS_MODES, default="direct")
    egress_url = StringField("Proxy URL")
    egress_username = StringField("Proxy username")
    egress_password = PasswordField("Proxy password")  # never rendered back
    egress_clear = BooleanField("Remove the saved username and password")
    pool_protocol = SelectField("Protocol", choices=POOL_PROTOCOLS, default="")
    pool_country = StringField("Country (two letters)")
    pool_anonymity = SelectField("Anonymity", choices=POOL_ANONYMITIES, default="")
    pool_min_score = StringField("Minimum score (0 to 1)")
    pool_rotation = SelectField("Rotation", choices=ROTATIONS, default="per_request")
    pool_sticky_seconds = StringField("Seconds on one proxy (sticky)", default="60")


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
        "proxyMaxResponseBytes": "max_response_bytes",
        "proxyMcp": "mcp",
    }
    name = StringField("Name", validators=[DataRequired()])
    alias = StringField("Alias (optional, used in the URL instead of the id)")
    region = StringField("Region", default="us-east-1", validators=[DataRequired()])
    proxy_credential = SelectField("Proxy credential (what callers present)")
    target = SelectField("Target")
    target_credential = SelectField("Target credential (what the gateway injects)")
    default_effect = SelectField("When no rule matches", choices=EFFECTS)
    active = BooleanField("Active", default=True)
    max_response_bytes = StringField("Max response bytes (empty = default, 0 = no limit)")
    mcp = BooleanField("MCP server (its JSON-RPC calls are decided one by one)")


class CheckForm(Form):
    """One header or query check of a rule: a row of the rule form's list."""

    name = StringField("Name pattern")
    value = StringField("Value pattern (optional)")
    presence = SelectField("Must be", choices=PRESENCE, default="present")

    def is_blank(self) -> bool:
        return not (self.name.data or "").strip() and not (self.value.data or "").strip()


class BodyCheckForm(Form):
    """One request-body check of a rule: a JSON path and an optional value test."""

    path = StringField("JSON path")
    value = StringField("Value pattern (optional)")
    equals = StringField("Equals (optional)")
    presence = SelectField("Must be", choices=PRESENCE, default="present")

    def is_blank(self) -> bool:
        return not any((f.data or "").strip() for f in (self.path, self.value, self.equals))


MCP_TOOLS_PRESENCE = [
    ("present", "the tool must be one of them"),
    ("absent", "the tool must be none of them"),
]


def name_list(text: str | None) -> list[str]:
    """Names typed as a comma- or line-separated list, blanks dropped."""
    return [n.strip() for line in (text or "").splitlines() for n in line.split(",") if n.strip()]


class RuleForm(ApiForm):
    """A rule, new or changed; header and query checks are lists of rows (empty rows are
    ignored, so the form works without script: it always has a few spare rows)."""

    SPARE_ROWS: ClassVar[int] = 2
    API_FIELDS: ClassVar[dict[str, str]] = {
        "effect": "effect",
        "priority": "priority",
        "methods": "methods",
        "pathPattern": "path_pattern",
        "pathPresence": "path_presence",
        "bodyPattern": "body_pattern",
        "bodyPatternPresence": "body_pattern_presence",
        "mcpMethods": "mcp_methods",
        "mcpTools": "mcp_tools",
        "mcpToolsPresence": "mcp_tools_presence",
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
    header_checks = FieldList(FormField(CheckForm))
    query_checks = FieldList(FormField(CheckForm))
    body_checks = FieldList(FormField(BodyCheckForm))
    body_pattern = StringField("Body pattern (RE2 over the raw request body)")
    body_pattern_presence = SelectField(
        "Body pattern", choices=[("present", "must match"), ("absent", "must not match")]
    )
    mcp_methods = StringField("MCP methods, e.g. tools/call (comma-separated; empty: any)")
    mcp_tools = TextAreaField("MCP tools (comma- or line-separated; empty: any)")
    mcp_tools_presence = SelectField("MCP tool", choices=MCP_TOOLS_PRESENCE)
    regex_flags = StringField("Regex flags (i, m, s)")
    notes = StringField("Notes")

    def add_spare_rows(self) -> None:
        """The filled rows first (in their order), then empty ones to type new checks into."""
        for rows in (self.header_checks, self.query_checks, self.body_checks):
            filled = self.filled_rows(rows)
            rows.entries = filled + [row for row in rows.entries if row.form.is_blank()]
            while len(rows) < len(filled) + self.SPARE_ROWS:
                rows.append_entry()

    def filled_rows(self, rows: FieldList) -> list:
        """The rows with something typed in, in order (the API numbers only these)."""
        return [row for row in rows if not row.form.is_blank()]

    def show_errors(self, api_errors: dict[str, list[str]], message: str = "") -> None:
        """`headerChecks.1.namePattern` goes next to the second filled header row's name."""
        rest = {}
        lists = {
            "headerChecks": self.header_checks,
            "queryChecks": self.query_checks,
            "bodyChecks": self.body_checks,
        }
        subfields = {
            "namePattern": "name",
            "path": "path",
            "valuePattern": "value",
            "equals": "equals",
            "presence": "presence",
        }
        for api_name, messages in api_errors.items():
            parts = api_name.split(".")
            rows = self.filled_rows(lists[parts[0]]) if parts[0] in lists else []
            if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
                row = rows[int(parts[1])].form
                field = getattr(row, subfields.get(parts[2], ""), None) or next(iter(row))
                field.errors = [*field.errors, *(plain(parts[2], m) for m in messages)]
            else:
                rest[api_name] = messages
        super().show_errors(rest, message)


class ExplainForm(ApiForm):
    API_FIELDS: ClassVar[dict[str, str]] = {
        "method": "method",
        "path": "path",
        "headers": "headers",
        "query": "query",
        "body": "body",
    }
    method = SelectField(
        "Method", choices=[(m, m) for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")]
    )
    path = StringField("Path below the proxy", default="/", validators=[DataRequired()])
    headers = TextAreaField("Headers, one 'Name: value' per line")
    query = StringField("Query string, e.g. page=2&debug=1")
    body = TextAreaField("Body (optional: for rules that read it, and an MCP proxy's calls)")
