"""Forms of a proxy's limits, price and meters. The Core API validates every value;
its field errors come back next to the field they name (`ApiForm.show_errors`)."""

from __future__ import annotations

from typing import ClassVar

from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Optional

from admin.web.forms import MCP_TOOLS_PRESENCE, ApiForm
from models.windows import WINDOWS

TYPE_CHOICES = [
    ("request_count", "request_count (each request counts 1)"),
    ("response_value", "response_value (a number read from the response)"),
]
MODE_CHOICES = [("all", "all (every request)"), ("conditional", "conditional (predicates below)")]
LOCATION_CHOICES = [("", "none"), ("body", "JSON body"), ("header", "response header")]
PRESENCE_CHOICES = [("present", "must match"), ("absent", "must not match")]
LIMIT_MODE_CHOICES = [
    ("reached", "refuse once the limit is reached"),
    ("estimate", "also refuse when the average answer would pass the limit"),
]


class LimitsForm(ApiForm):
    """The proxy's own request limits (the proxy API's fields)."""

    API_FIELDS: ClassVar[dict[str, str]] = {
        "proxyMaxRequestsPerMinute": "per_minute",
        "proxyMaxRequestsPerDay": "per_day",
    }
    per_minute = IntegerField("Requests per minute", validators=[DataRequired()])
    per_day = IntegerField("Requests per day", validators=[DataRequired()])


class PriceForm(ApiForm):
    """The proxy's price, charged to the client's budget."""

    API_FIELDS: ClassVar[dict[str, str]] = {
        "perRequest": "per_request",
        "perMeterUnits": "per_units",
        "meterUnitSize": "unit_size",
    }
    per_request = StringField("Credits per request, e.g. 0.25", validators=[DataRequired()])
    per_units = StringField("Credits per meter units", default="0", validators=[DataRequired()])
    unit_size = IntegerField("Meter units priced together", default=1, validators=[Optional()])


class MeterForm(ApiForm):
    """A meter: what it counts, when, and its limit per window."""

    API_FIELDS: ClassVar[dict[str, str]] = {
        "meterName": "name",
        "meterType": "meter_type",
        "meterMode": "mode",
        "meterActive": "active",
        "predicates.methods": "methods",
        "predicates.pathPattern": "path_pattern",
        "predicates.pathPresence": "path_presence",
        "predicates.regexFlags": "regex_flags",
        "predicates.mcpMethods": "mcp_methods",
        "predicates.mcpTools": "mcp_tools",
        "predicates.mcpToolsPresence": "mcp_tools_presence",
        "predicates.bodyChecks.0.equals": "body_equals",
        "predicates.bodyChecks.0.valuePattern": "body_equals",
        "predicates.bodyChecks": "body_path",
        "predicates": "mode",
        "extraction.path": "extraction_path",
        "extraction.name": "extraction_name",
        "extraction.event": "extraction_event",
        "extraction": "extraction_location",
        **{f"limits.{window}": f"limit_{window}" for window in WINDOWS},
        "limits": "limit_day",
        "limitMode": "limit_mode",
    }
    name = StringField("Name", validators=[DataRequired()])
    meter_type = SelectField("Type", choices=TYPE_CHOICES)
    mode = SelectField("Mode", choices=MODE_CHOICES)
    active = BooleanField("Active", default=True)
    methods = StringField("Methods, e.g. POST (empty: any)")
    path_pattern = StringField("Path pattern (RE2), e.g. ^/v1/chat")
    path_presence = SelectField("Path", choices=PRESENCE_CHOICES)
    body_path = StringField("Request body field (JSON path), e.g. model")
    body_equals = StringField("equals (a JSON value; plain text is taken as a string)")
    regex_flags = StringField("Regex flags, e.g. i")
    mcp_methods = StringField("MCP methods, e.g. tools/call (comma-separated; MCP proxies)")
    mcp_tools = StringField("MCP tools, e.g. search (comma-separated; MCP proxies)")
    mcp_tools_presence = SelectField("MCP tool", choices=MCP_TOOLS_PRESENCE)
    extraction_location = SelectField("Read the value from", choices=LOCATION_CHOICES)
    extraction_path = StringField("JSON path in the response body, e.g. usage.total_tokens")
    extraction_name = StringField("Response header name")
    extraction_event = StringField(
        "Event-stream answers: only events named, e.g. message_delta (empty: every event)"
    )
    limit_minute = IntegerField("Limit per minute", validators=[Optional()])
    limit_hour = IntegerField("Limit per hour", validators=[Optional()])
    limit_day = IntegerField("Limit per day", validators=[Optional()])
    limit_month = IntegerField("Limit per month", validators=[Optional()])
    limit_mode = SelectField("Limit mode (response_value meters)", choices=LIMIT_MODE_CHOICES)
