"""Small request/response helpers shared by the API blueprints."""

from __future__ import annotations

from flask import jsonify, request

from admin.errors import ApiError, invalid
from models.json_limits import MAX_DEPTH, JsonTooDeep, loads


def json_body() -> dict:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "INVALID_JSON", "Request body must be a JSON object; it is empty")
    try:
        data = loads(raw)
    except JsonTooDeep as exc:
        raise ApiError(
            400,
            "INVALID_JSON",
            f"Request body nests arrays and objects deeper than {MAX_DEPTH} levels",
            {"maxDepth": MAX_DEPTH},
        ) from exc
    except ValueError as exc:
        raise ApiError(400, "INVALID_JSON", f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_JSON", "Request body must be a JSON object")
    field = nul_field(data)
    if field is not None:
        raise invalid(field, NUL_MESSAGE)
    return data


NUL_MESSAGE = "Must not contain the character U+0000 (NUL)."


def nul_field(value, path: str = "") -> str | None:
    """The dotted path of the first key or string holding a NUL character, or None.

    No store can keep NUL in text (PostgreSQL refuses it), so it is refused at the door.
    Recursion is bounded by the JSON depth limit.
    """
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        name = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return name
        found = nul_field(item, name)
        if found is not None:
            return found
    return None


def refuse_nul_arguments() -> None:
    """`before_request`: a query parameter holding NUL is a 400 naming it."""
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise invalid(name, NUL_MESSAGE)


def envelope(key: str, items: list, *, message: str = "Success", status: int = 200, **extra):
    """`{key: [...], "message": ...}`, the shape of every Core API answer."""
    return jsonify({key: items, **extra, "message": message}), status


def message_only(message: str, status: int = 200):
    return jsonify({"message": message}), status


def query_bool(name: str, default: bool = False) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise invalid(name, "Must be true or false.")
