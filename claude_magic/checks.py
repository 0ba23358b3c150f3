"""Checks on values before anything is stored: text UTF-8 can hold, plain JSON metadata."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .errors import InvalidMetadata
from .times import parse_time


def is_utf8(text: str) -> bool:
    """False for strings that cannot be stored as UTF-8 (lone surrogates such as ``\\ud800``)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: Any, what: str, *, optional: bool = False) -> Any:
    """Return ``value`` if it is a ``str`` that UTF-8 can store (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, got {type(value).__name__}")
    if not is_utf8(value):
        raise ValueError(f"{what} contains a lone surrogate, which UTF-8 cannot store; "
                         "decode the text properly first")
    return value


_INT_LIMIT = 2**63  # what SQLite's INTEGER holds; beyond it a store would fail half-way


def check_number(value: Any, what: str, *, optional: bool = False) -> Any:
    """Return ``value`` if it is a finite ``int`` or ``float`` (not ``bool``), or None when
    ``optional``; else ``TypeError`` / ``ValueError``."""
    if value is None and optional:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {value!r}")
        return value
    if type(value) is bool or not isinstance(value, int):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    if not -_INT_LIMIT <= value < _INT_LIMIT:
        raise ValueError(f"{what} is too large ({value}); use a number below 2**63")
    return value


def check_count(value: Any, what: str) -> int:
    """Return ``value`` if it is an ``int`` (not ``bool``) from 0 to 2**63 - 1."""
    if type(value) is not int:
        if type(value) is bool or not isinstance(value, int):
            raise TypeError(f"{what} must be int, got {type(value).__name__}")
        value = int(value)
    if not 0 <= value < _INT_LIMIT:
        raise ValueError(f"{what} must be an int from 0 to 2**63 - 1, got {value}")
    return value


def json_text(value: Any) -> str:
    """A value as a user types it: a string bare, anything else as one-line JSON
    (``3``, ``true``, ``null``, ``["a", "b"]``, ``{"k": 1}``)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int or kind is float:  # the common case, as json.dumps writes it
        return repr(value)
    if isinstance(value, str):
        return str(value)
    return _encode(value)


_encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps builds one per call


def check_json_value(value: Any, where: str) -> Any:
    """Return a deep copy of ``value`` if it is plain JSON, else raise :class:`InvalidMetadata`.

    Plain JSON means dicts with ``str`` keys, lists (tuples become lists), ``str``, ``int``,
    finite ``float``, ``bool`` and ``None``; strings must be storable as UTF-8. Checked
    before anything is written.
    """

    def walk(item: Any, path: str) -> Any:
        if item is None or item is True or item is False:
            return item
        if isinstance(item, str):
            if not is_utf8(item):
                raise InvalidMetadata(f"{path} contains a lone surrogate, which UTF-8 cannot "
                                      "store; decode the text properly first")
            return str(item)
        if isinstance(item, int):
            return int(item)
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidMetadata(f"{path} is {item}, which JSON cannot store; use a number")
            return item
        if isinstance(item, Mapping):
            out = {}
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise InvalidMetadata(
                        f"{path} has a key {key!r} of type {type(key).__name__}; keys must be str"
                    )
                if not is_utf8(key):
                    raise InvalidMetadata(f"{path} has a key with a lone surrogate, which "
                                          "UTF-8 cannot store; decode the text properly first")
                out[str(key)] = walk(sub, f"{path}[{key!r}]")
            return out
        if isinstance(item, (list, tuple)):
            return [walk(sub, f"{path}[{i}]") for i, sub in enumerate(item)]
        raise InvalidMetadata(
            f"{path} is a {type(item).__name__}, which is not JSON-serializable; "
            "store str, int, float, bool, None, lists or dicts"
        )

    try:
        return walk(value, where)
    except RecursionError:
        raise InvalidMetadata(f"{where} is nested too deeply (or contains itself); "
                              "store a flatter value") from None


_SCALARS = frozenset({str, int, float, bool, type(None)})


def clone_json(value: Any) -> Any:
    """A fast deep copy of plain JSON data (dicts and lists are copied, scalars shared)."""
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _SCALARS else clone_json(item)
                for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _SCALARS else clone_json(item) for item in value]
    return value


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a whole metadata mapping; returns a deep copy."""
    if not isinstance(metadata, Mapping):
        raise InvalidMetadata(f"metadata must be a dict, got {type(metadata).__name__}")
    return check_json_value(metadata, "metadata")


def check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a whole settings mapping; returns a deep copy."""
    if not isinstance(settings, Mapping):
        raise InvalidMetadata(f"settings must be a dict, got {type(settings).__name__}")
    return check_json_value(settings, "settings")


def required_field(data: Mapping[str, Any], key: str, what: str) -> Any:
    """``data[key]``, or a ``ValueError`` naming the missing field."""
    try:
        return data[key]
    except KeyError:
        raise ValueError(f"{what} has no {key!r}") from None


def time_field(data: Mapping[str, Any], key: str, what: str) -> datetime:
    """``data[key]`` parsed as an ISO-8601 time; errors name the field."""
    value = required_field(data, key, what)
    try:
        return parse_time(value)
    except TypeError:
        raise TypeError(f"{what} {key} must be an ISO-8601 string, "
                        f"got {type(value).__name__}") from None
    except ValueError:
        raise ValueError(f"{what} {key} is not an ISO-8601 time: {str(value)[:40]!r}") from None


def json_object(data: Any, what: str) -> Mapping[str, Any]:
    """``data`` if it is a mapping (a JSON object), else a ``TypeError`` naming ``what``."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data
