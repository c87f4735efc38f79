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
    return data


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
