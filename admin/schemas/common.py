"""Building blocks shared by the resource schemas."""

from __future__ import annotations

import gc
import json
import re
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter

import orjson
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate
from sqlalchemy import JSON, String, Text, cast, select, type_coerce

from models.base import UTCDateTime, isoformat_z
from models.enums import RuleEffect
from models.names import name_problem

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
FORBIDDEN_VALUE_CHARS = re.compile(r"[\r\n\x00]")
REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Hop-by-hop and framing headers: set by the gateway itself, never by configuration.
MANAGED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class Timestamp(fields.Field):
    """A read-only timestamp rendered as `2024-01-22T13:00:00.000Z`."""

    def _serialize(self, value, attr, obj, **kwargs):
        return isoformat_z(value)


class ApiDateTime(fields.AwareDateTime):
    """An ISO 8601 input (UTC if no zone is given), rendered like every other timestamp."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return isoformat_z(value)


def validate_header_name(value: str) -> None:
    """A header the gateway may set: a valid token, not one it manages itself."""
    if not HEADER_NAME.fullmatch(value):
        raise ValidationError("Not a valid HTTP header name.")
    if value.lower() in MANAGED_HEADERS:
        raise ValidationError(f"{value} is managed by the gateway and cannot be set.")


def validate_header_value(value: str) -> None:
    if FORBIDDEN_VALUE_CHARS.search(value):
        raise ValidationError("Header values cannot contain CR, LF or NUL.")


def validate_no_control_chars(value: str) -> None:
    if FORBIDDEN_VALUE_CHARS.search(value):
        raise ValidationError("Cannot contain CR, LF or NUL.")


def validate_name(value: str) -> None:
    """A name or label: no control characters, line separators or bidi overrides
    (models/names.py)."""
    problem = name_problem(value)
    if problem:
        raise ValidationError(problem)


def validate_unique_header_names(value: dict) -> None:
    seen: dict[str, str] = {}
    for name in value:
        if name.lower() in seen:
            raise ValidationError(
                f"{seen[name.lower()]} and {name} are the same header (names ignore case)."
            )
        seen[name.lower()] = name


def validate_region(value: str) -> None:
    if not REGION.fullmatch(value):
        raise ValidationError(
            "Must be 1-63 lowercase letters, digits or '-', starting with a letter or digit."
        )


def name_field(data_key_attr: str, **kwargs) -> fields.String:
    """A required display name of 1-200 characters stored in `data_key_attr`,
    following the name rule (`validate_name`)."""
    return fields.String(
        attribute=data_key_attr,
        validate=[validate.Length(min=1, max=200), validate_name],
        **{"required": True, **kwargs},
    )


def region_field(attribute: str = "region") -> fields.String:
    return fields.String(attribute=attribute, required=True, validate=validate_region)


def effect_field(attribute: str = "default_rule_effect", **kwargs) -> fields.String:
    return fields.String(
        attribute=attribute,
        validate=validate.OneOf([e.value for e in RuleEffect]),
        **kwargs,
    )


def string_map(*, headers: bool = False, **kwargs) -> fields.Dict:
    """A JSON object of string → string: header names and values, or query parameters."""
    if headers:
        return fields.Dict(
            keys=fields.String(validate=validate_header_name),
            values=fields.String(validate=validate_header_value),
            validate=validate_unique_header_names,
            **kwargs,
        )
    return fields.Dict(
        keys=fields.String(validate=[validate.Length(min=1), validate_no_control_chars]),
        values=fields.String(validate=validate_no_control_chars),
        **kwargs,
    )


class ApiSchema(Schema):
    """Unknown input fields are errors; read-only fields sent back are ignored.

    Ignoring read-only fields lets a caller PUT back an object it fetched
    (and accepts the `clientId` / `userId` / `parentId` some examples send).
    """

    class Meta:
        unknown = RAISE
        ordered = True

    @pre_load
    def _drop_read_only(self, data, **kwargs):
        if not isinstance(data, dict):
            return data
        read_only = {
            field.data_key or name for name, field in self.fields.items() if field.dump_only
        }
        return {key: value for key, value in data.items() if key not in read_only}


class OwnedSchema(ApiSchema):
    """The key fields of every client-owned record (`pKey` is the parent's id, `sKey` its own)."""

    pKey = fields.String(attribute="client_id", dump_only=True)
    sKey = fields.String(attribute="id", dump_only=True)
    userId = fields.String(attribute="created_by", dump_only=True)
    clientId = fields.String(attribute="client_id", dump_only=True)
    parentId = fields.String(attribute="client_id", dump_only=True)


class ColumnDump:
    """Dumps rows selected as plain columns exactly as `schema` dumps model instances.

    Lists of thousands of records spend their time building ORM objects and running
    marshmallow field by field; this keeps the schema as the one definition of the
    output (its fields, their order, their data keys) and turns each row into the
    same dict directly. Only the field kinds below are supported, so a schema that
    gains another kind fails here, at import, instead of answering differently.
    """

    def __init__(self, schema: Schema, model) -> None:
        hooks = [key for key, names in schema._hooks.items() if "dump" in key[0] and names]
        if hooks:
            raise TypeError(f"ColumnDump cannot run {type(schema).__name__}'s dump hooks")
        table = model.__table__
        self._model = model
        self._plan: list[tuple[str, int, object]] = []
        self._columns: list = []
        positions: dict[str, int] = {}
        for name, field in schema.dump_fields.items():
            attribute = field.attribute or name
            column = table.columns[attribute]
            json_column = isinstance(column.type, JSON)
            if attribute not in positions:
                positions[attribute] = len(self._columns)
                self._columns.append(_selected(column, json_column))
            convert = _converter(field, column)
            if json_column:
                convert = _from_json(convert)
            self._plan.append((field.data_key or name, positions[attribute], convert))

    def columns(self) -> list:
        """The columns to select, in the order `dump` reads them."""
        return list(self._columns)

    def owned(self, session, client_id: str, *conditions) -> list[dict]:
        """The client's records (and `conditions`), dumped, oldest first like `list_owned`."""
        model = self._model
        query = (
            select(*self._columns)
            .where(model.client_id == client_id, *conditions)
            .order_by(model.created_at, model.id)
        )
        with collection_paused():
            rows = session.connection().execute(query).all()  # Core rows: no ORM loading
            return self.dump(rows)

    def dump(self, rows) -> list[dict]:
        keys = [key for key, _, _ in self._plan]
        pick = itemgetter(*(position for _, position, _ in self._plan))
        converts = [(n, convert) for n, (_, _, convert) in enumerate(self._plan) if convert]
        dumped = []
        for row in rows:
            values = list(pick(row))
            for number, convert in converts:
                values[number] = convert(values[number])
            dumped.append(dict(zip(keys, values, strict=True)))
        return dumped


@contextmanager
def collection_paused():
    """No cyclic garbage collection meanwhile: building thousands of acyclic dicts
    otherwise sets off full collections over the whole heap (a third more time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _selected(column, json_column: bool):
    """What to select for `column`, in the form its converter reads fastest."""
    if json_column:
        # As text: most values are `{}`, which need no decoder (PostgreSQL's driver
        # would otherwise parse every one).
        return cast(column, Text).label(column.name)
    if isinstance(column.type, UTCDateTime):
        # SQLite's stored text is formatted by slicing; PostgreSQL's driver still
        # returns datetimes (the coercion only skips the per-value type decorator).
        return type_coerce(column, String).label(column.name)
    return column


SQLITE_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")


def _fast_timestamp(value):
    """`isoformat_z` of a stored timestamp: SQLite's UTC text or a datetime, without strftime."""
    if value is None:
        return None
    if isinstance(value, str):
        if SQLITE_STAMP.match(value):
            return f"{value[:10]}T{value[11:23]}Z"
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the store keeps UTC (models/base.py)
    offset = value.utcoffset()
    if offset.total_seconds() != 0 or value.year < 1000:
        return isoformat_z(value)
    return value.isoformat(timespec="milliseconds")[:23] + "Z"


def _optional(cast):
    return lambda value: None if value is None else cast(value)


EMPTY_JSON = {"{}": dict, "[]": list}


LONG_NUMBER = re.compile(r"\d{19}")  # orjson reads integers beyond 64 bits as floats


def _loads(text: str):
    """A stored JSON value: by orjson, or by `json` when it may hold an integer beyond 64 bits."""
    if not LONG_NUMBER.search(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # e.g. 1e400, which `json` reads as infinity
    return json.loads(text)


def _from_json(convert):
    """Parse a JSON column's text (drivers that parse it themselves pass the value on)."""

    def parse(value):
        if isinstance(value, str):
            empty = EMPTY_JSON.get(value)
            if empty is not None:
                return empty()  # every supported field dumps an empty one as it is
            value = _loads(value)
        return value if convert is None else convert(value)

    return parse


def _converter(field: fields.Field, column):
    """What turns a column value into what `field` dumps (None: the value as it is)."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = None
    # Exact kinds only: a subclass may dump differently (e.g. redact).
    if type(field) in (Timestamp, ApiDateTime):
        return _fast_timestamp
    for kind, to in ((fields.Boolean, bool), (fields.Integer, int), (fields.String, str)):
        if type(field) is kind:
            return None if python_type is to else _optional(to)
    if type(field) is fields.Dict and all(
        inner is None or type(inner) is fields.String
        for inner in (field.key_field, field.value_field)
    ):
        key = str if field.key_field is not None else None
        item = _optional(str) if field.value_field is not None else None
        return _optional(lambda value: _mapping(value, key, item))
    raise TypeError(f"ColumnDump cannot dump {type(field).__name__} fields")


def _mapping(value: dict, key, item) -> dict:
    if key is None and item is None:
        return dict(value)
    return {
        (k if key is None else key(k)): (v if item is None else item(v)) for k, v in value.items()
    }
