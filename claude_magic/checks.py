"""Checks on values before anything is stored: text UTF-8 can hold, plain JSON metadata."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .errors import InvalidMetadata, ValueOutOfRange
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
        raise ValueOutOfRange(f"{what} is too large ({_digits(value)}); use a number "
                              "from -2**63 to 2**63 - 1")
    return value


def check_count(value: Any, what: str) -> int:
    """Return ``value`` if it is an ``int`` (not ``bool``) from 0 to 2**63 - 1."""
    if type(value) is not int:
        if type(value) is bool or not isinstance(value, int):
            raise TypeError(f"{what} must be int, got {type(value).__name__}")
        value = int(value)
    if not 0 <= value < _INT_LIMIT:
        shown = value if -_INT_LIMIT <= value < _INT_LIMIT else _digits(value)
        raise ValueOutOfRange(f"{what} must be an int from 0 to 2**63 - 1, got {shown}")
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


#: How deep metadata and settings may nest (a dict in a list in a dict ... counts each level).
MAX_DEPTH = 100


def check_json_value(value: Any, where: str) -> Any:
    """Return a deep copy of ``value`` if it is plain JSON, else raise :class:`InvalidMetadata`.

    Plain JSON means dicts with ``str`` keys, lists (tuples become lists), ``str``, ``int``
    from -2**63 to 2**63 - 1 (what SQLite and pandas int64 hold), finite ``float``, ``bool``
    and ``None``, nested at most :data:`MAX_DEPTH` levels; strings must be storable as UTF-8.
    Checked before anything is written.
    """

    def walk(item: Any, path: str, depth: int) -> Any:
        if item is None or item is True or item is False:
            return item
        if isinstance(item, str):
            if not is_utf8(item):
                raise InvalidMetadata(f"{_short(path)} contains a lone surrogate, which UTF-8 "
                                      "cannot store; decode the text properly first")
            return str(item)
        if isinstance(item, int):
            if not -_INT_LIMIT <= item < _INT_LIMIT:
                raise InvalidMetadata(f"{_short(path)} is an integer too large to store "
                                      f"({_digits(item)}); use one from -2**63 to 2**63 - 1, "
                                      "or store it as a string")
            return int(item)
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidMetadata(f"{_short(path)} is {item}, which JSON cannot store; "
                                      "use a number")
            return float(item)
        if depth >= MAX_DEPTH:
            raise InvalidMetadata(f"{where} is nested more than {MAX_DEPTH} levels deep (or "
                                  "contains itself); store a flatter value")
        if isinstance(item, Mapping):
            out = {}
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise InvalidMetadata(f"{_short(path)} has a key {_short(repr(key))} of type "
                                          f"{type(key).__name__}; keys must be str")
                if not is_utf8(key):
                    raise InvalidMetadata(f"{_short(path)} has a key with a lone surrogate, "
                                          "which UTF-8 cannot store; decode the text properly "
                                          "first")
                out[str(key)] = walk(sub, f"{path}[{key!r}]", depth + 1)
            return out
        if isinstance(item, (list, tuple)):
            return [walk(sub, f"{path}[{i}]", depth + 1) for i, sub in enumerate(item)]
        raise InvalidMetadata(
            f"{_short(path)} is a {type(item).__name__}, which is not JSON-serializable; "
            "store str, int, float, bool, None, lists or dicts"
        )

    try:
        return walk(value, where, 0)
    except RecursionError:  # a key path so long that building it recursed: still too deep
        raise InvalidMetadata(f"{where} is nested too deeply; store a flatter value") from None


def _short(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters, so an error stays one readable line."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _digits(value: int) -> str:
    """How big an int is, without ``str()`` (which refuses ints past 4300 digits)."""
    return f"about 2**{value.bit_length()}" if value >= 0 else f"about -2**{value.bit_length()}"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text) > 20:
        raise ValueError(f"an integer of {len(text)} digits is too large")
    value = int(text)
    if not -_INT_LIMIT <= value < _INT_LIMIT:
        raise ValueError(f"the integer {value} is beyond 64 bits")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is beyond what a float holds")
    return value


strict_decode = json.JSONDecoder(parse_int=_bounded_int, parse_float=_finite_float,
                                  parse_constant=_refuse_constant).decode
"""``json.loads`` refusing ints past 64 bits, non-finite floats and NaN (``ValueError``)."""
# the hooks above refuse big numbers; what else we would refuse to write shows as an escaped
# UTF-16 surrogate (a lone one is refused) or as many brackets (deep nesting)
_SUSPECT = re.compile(r"\\u[dD][89a-fA-F]")


def loads_checked(text: str, what: str) -> Any:
    """Parse JSON written by anyone (another tool, an older version) and accept only what
    :func:`check_json_value` accepts: ints within 64 bits, finite floats, no NaN, nesting at
    most :data:`MAX_DEPTH`, text UTF-8 can store. Raises only ``ValueError`` / ``TypeError``.
    Cheap for ordinary values: the full walk runs only when the text could hold such a value.
    """
    if type(text) is not str:
        raise TypeError(f"{what} must be JSON text, got {type(text).__name__}")
    try:
        value = strict_decode(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    if text.count("[") + text.count("{") > MAX_DEPTH or _SUSPECT.search(text):
        try:
            check_json_value(value, what)
        except InvalidMetadata as exc:
            raise ValueError(str(exc)) from None
    return value


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
    except ValueOutOfRange as exc:
        raise ValueOutOfRange(f"{what} {key}: {exc}") from None
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
