"""Authorization rules. Accepts the flat (`pathPattern`) and nested (`path: {...}`) forms.

Output is always the flat form of the Rules API table. Patterns are compiled
at write time (RE2, with `regexFlags`), so the data plane never meets a bad one.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields, pre_load, validate, validates_schema

from admin.schemas.common import ApiSchema, OwnedSchema, Timestamp, validate_no_control_chars
from models.enums import RuleEffect
from models.json_paths import JsonPathError, parse_path
from models.patterns import PatternError, check_flags, compile_pattern

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
PRESENCE_ALIASES = {
    "present": "present",
    "absent": "absent",
    "must_exist": "present",
    "must_not_exist": "absent",
    "mustExist": "present",
    "mustNotExist": "absent",
}
PRESENCE = fields.String(validate=validate.OneOf(sorted(PRESENCE_ALIASES)))
MAX_BODY_CHECKS = 50
MAX_MCP_NAMES = 50
MAX_MCP_NAME_LENGTH = 128


def _pattern_of(value):
    """`"^x"` or `{"pattern": "^x"}` → `"^x"`; anything else is returned for the type check."""
    if isinstance(value, dict) and set(value) == {"pattern"}:
        return value["pattern"]
    return value


class CheckSchema(ApiSchema):
    """A header or query check: a name pattern, an optional value pattern, and a presence."""

    namePattern = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    valuePattern = fields.String(allow_none=True, validate=validate.Length(max=1000))
    presence = fields.String(
        load_default="present", validate=validate.OneOf(sorted(PRESENCE_ALIASES))
    )

    @pre_load
    def _accept_nested(self, data, **kwargs):
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for short, flat in (("name", "namePattern"), ("value", "valuePattern")):
            if short in data:
                if flat in data:
                    raise ValidationError(f"Give {short} or {flat}, not both.", short)
                data[flat] = _pattern_of(data.pop(short))
        return data


def _json_path(value: str) -> None:
    try:
        parse_path(value)
    except JsonPathError as exc:
        raise ValidationError(str(exc)) from None


class BodyCheckSchema(ApiSchema):
    """A JSON field of the request body: a string matching `valuePattern`, a value equal to
    `equals`, or (neither) any value at that path; `presence` absent inverts the check."""

    path = fields.String(
        required=True,
        validate=_json_path,
        metadata={"description": "JSON path, e.g. `model` or `params.name` (as meters')"},
    )
    valuePattern = fields.String(allow_none=True, validate=validate.Length(min=1, max=1000))
    equals = fields.Raw(
        allow_none=True, metadata={"description": "a string, number, boolean or null"}
    )
    presence = fields.String(
        load_default="present", validate=validate.OneOf(sorted(PRESENCE_ALIASES))
    )

    @validates_schema
    def _at_most_one_test(self, data, **kwargs):
        if data.get("valuePattern") is not None and "equals" in data:
            raise ValidationError("Give at most one of equals and valuePattern.", "equals")
        if isinstance(data.get("equals"), dict | list):
            raise ValidationError("Must be a string, number, boolean or null.", "equals")
        if isinstance(data.get("equals"), str) and len(data["equals"]) > 1000:
            raise ValidationError("Longer than maximum length 1000.", "equals")


def mcp_names(attribute: str, description: str) -> fields.List:
    """A list of at most MAX_MCP_NAMES exact JSON-RPC method or tool names (rules, meters)."""
    name = fields.String(
        validate=[validate.Length(min=1, max=MAX_MCP_NAME_LENGTH), validate_no_control_chars]
    )
    return fields.List(
        name,
        attribute=attribute,
        validate=validate.Length(max=MAX_MCP_NAMES),
        metadata={"description": description},
    )


class RuleSchema(OwnedSchema):
    ruleId = fields.String(attribute="id", dump_only=True)
    pKey = fields.String(attribute="parent_id", dump_only=True)
    parentId = fields.String(attribute="parent_id", dump_only=True)
    ruleScope = fields.Method("_scope", dump_only=True)
    effect = fields.String(required=True, validate=validate.OneOf([e.value for e in RuleEffect]))
    priority = fields.Integer(strict=True, validate=validate.Range(min=0, max=1000))
    methods = fields.List(fields.String(validate=validate.OneOf(METHODS)))
    pathPattern = fields.String(
        attribute="path_pattern", allow_none=True, validate=validate.Length(min=1, max=1000)
    )
    pathPresence = fields.String(
        attribute="path_presence", validate=validate.OneOf(sorted(PRESENCE_ALIASES))
    )
    headerChecks = fields.List(fields.Nested(CheckSchema), attribute="header_checks")
    queryChecks = fields.List(fields.Nested(CheckSchema), attribute="query_checks")
    bodyChecks = fields.List(
        fields.Nested(BodyCheckSchema),
        attribute="body_checks",
        validate=validate.Length(max=MAX_BODY_CHECKS),
        metadata={"description": "JSON request-body checks; the body is read (bounded) for them"},
    )
    bodyPattern = fields.String(
        attribute="body_pattern",
        allow_none=True,
        validate=validate.Length(min=1, max=1000),
        metadata={"description": "RE2 pattern over the raw request body as text"},
    )
    bodyPatternPresence = fields.String(
        attribute="body_pattern_presence", validate=validate.OneOf(sorted(PRESENCE_ALIASES))
    )
    mcpMethods = mcp_names(
        "mcp_methods", "JSON-RPC methods (exact), e.g. tools/call; MCP proxies only"
    )
    mcpTools = mcp_names("mcp_tools", "tool names (exact) of tools/call; MCP proxies only")
    mcpToolsPresence = fields.String(
        attribute="mcp_tools_presence",
        validate=validate.OneOf(sorted(PRESENCE_ALIASES)),
        metadata={"description": "present: the tool is one of mcpTools; absent: none of them"},
    )
    regexFlags = fields.String(attribute="regex_flags", validate=validate.Length(max=8))
    notes = fields.String(allow_none=True, validate=validate.Length(max=2000))
    ruleCreatedAt = Timestamp(attribute="created_at", dump_only=True)
    ruleUpdatedAt = Timestamp(attribute="updated_at", dump_only=True)

    def _scope(self, rule) -> str:
        if rule.proxy_id:
            return "proxy"
        if rule.target_id:
            return "target"
        return f"{rule.credential.credential_type}Credential"

    @pre_load
    def _accept_other_forms(self, data, **kwargs):
        """Nested `path` (docs and blog forms), blog `headers`/`query`, lower-case methods."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "path" in data:
            path = data.pop("path")
            if "pathPattern" in data or "pathPresence" in data:
                raise ValidationError("Give path or pathPattern/pathPresence, not both.", "path")
            if not isinstance(path, dict) or not set(path) <= {"pattern", "path", "presence"}:
                raise ValidationError("Must be an object with pattern and presence.", "path")
            if "pattern" in path and "path" in path:
                raise ValidationError("Give path.pattern or path.path, not both.", "path")
            if "pattern" in path:
                data["pathPattern"] = path["pattern"]
            elif "path" in path:
                data["pathPattern"] = _pattern_of(path["path"])
            if "presence" in path:
                data["pathPresence"] = path["presence"]
        for blog, flat in (("headers", "headerChecks"), ("query", "queryChecks")):
            if blog in data:
                if flat in data:
                    raise ValidationError(f"Give {blog} or {flat}, not both.", blog)
                data[flat] = data.pop(blog)
        methods = data.get("methods")
        if isinstance(methods, list):
            data["methods"] = [m.upper() if isinstance(m, str) else m for m in methods]
        return data


def normalize_rule(values: dict) -> dict:
    """Canonical presence words and de-duplicated methods in loaded rule values."""
    values = dict(values)
    if "path_presence" in values:
        values["path_presence"] = PRESENCE_ALIASES[values["path_presence"]]
    for key in ("header_checks", "query_checks"):
        if key in values:
            values[key] = [
                {
                    "namePattern": check["namePattern"],
                    "valuePattern": check.get("valuePattern"),
                    "presence": PRESENCE_ALIASES[check.get("presence", "present")],
                }
                for check in values[key]
            ]
    if "methods" in values:
        values["methods"] = sorted(set(values["methods"]), key=METHODS.index)
    for key in ("body_pattern_presence", "mcp_tools_presence"):
        if key in values:
            values[key] = PRESENCE_ALIASES[values[key]]
    if "body_checks" in values:
        values["body_checks"] = [_body_check(check) for check in values["body_checks"]]
    for key in ("mcp_methods", "mcp_tools"):
        if key in values:
            values[key] = list(dict.fromkeys(values[key]))
    return values


def _body_check(check: dict) -> dict:
    """A body check as stored: path, at most one test, canonical presence."""
    stored: dict = {"path": check["path"]}
    if check.get("valuePattern") is not None:
        stored["valuePattern"] = check["valuePattern"]
    elif "equals" in check:
        stored["equals"] = check["equals"]
    stored["presence"] = PRESENCE_ALIASES[check.get("presence", "present")]
    return stored


def check_rule_patterns(rule: dict) -> None:
    """Compile every pattern of a complete rule with its flags; errors name the field."""
    errors: dict = {}
    try:
        flags = check_flags(rule.get("regex_flags") or "")
    except PatternError as exc:
        raise ValidationError({"regexFlags": [str(exc)]}) from None
    if rule.get("path_pattern") is not None:
        _compile_into(errors, ("pathPattern",), rule["path_pattern"], flags)
    for key, api_name in (("header_checks", "headerChecks"), ("query_checks", "queryChecks")):
        for index, check in enumerate(rule.get(key) or []):
            _compile_into(errors, (api_name, index, "namePattern"), check["namePattern"], flags)
            if check.get("valuePattern") is not None:
                _compile_into(
                    errors, (api_name, index, "valuePattern"), check["valuePattern"], flags
                )
    for index, check in enumerate(rule.get("body_checks") or []):
        if check.get("valuePattern") is not None:
            _compile_into(
                errors, ("bodyChecks", index, "valuePattern"), check["valuePattern"], flags
            )
    if rule.get("body_pattern") is not None:
        _compile_into(errors, ("bodyPattern",), rule["body_pattern"], flags)
    if errors:
        raise ValidationError(errors)


def _compile_into(errors: dict, path: tuple, pattern: str, flags: str) -> None:
    try:
        compile_pattern(pattern, flags)
    except PatternError as exc:
        node = errors
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = [str(exc)]
