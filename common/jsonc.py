"""`loads` and `dumps` straight on the C accelerator `_json`, for crib-runtime's hot paths.

The `json` package costs ~8 ms at import here: json.decoder and json.encoder import `re`,
which imports `enum`, `functools` and `collections`. crib-runtime pays its import on every
exec (every ExecSync probe) and every create, and only needs what `_json` already does in
C: the same scanner and encoder `json.loads` / `json.dumps` use for plain documents. The
results are identical to `json.loads(data)` and `json.dumps(obj, separators=...)` (the
unit tests compare them); a malformed document raises `ValueError` like `json` does
(`json.JSONDecodeError` is one), naming what is wrong and where.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs ~10 ms
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """The attributes `_json.make_scanner` reads (those of a default json.JSONDecoder)."""

    def __init__(self) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = _CONSTANTS.__getitem__
        self.memo: dict[str, str] = {}


# typeshed types the argument as a JSONDecoder; the C scanner reads only these attributes.
_CONTEXT = _Context()
_scan_once = _json.make_scanner(_CONTEXT)  # type: ignore[arg-type]


def loads(data: str | bytes) -> Any:
    """Parse one JSON document (UTF-8 when bytes); ValueError when it is not one."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes | bytearray) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan_once(text, start)
    except (StopIteration, SystemError):
        # _json reports most errors through json.decoder.JSONDecodeError, which it looks
        # up in sys.modules but never imports (SystemError when absent): let json itself
        # parse the document it refused, and raise its error (a ValueError).
        return _json_loads(text)
    finally:
        _CONTEXT.memo.clear()
    if text[end:].strip(_WHITESPACE):
        return _json_loads(text)  # "Extra data", worded and placed by json
    return value


def _json_loads(text: str) -> Any:
    import json

    return json.loads(text)


def _not_serializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(
    value: object, separators: tuple[str, str] | None = None, indent: int | None = None
) -> str:
    """Serialize like `json.dumps(value, separators=..., indent=...)` (ASCII, keys unsorted)."""
    if separators is None:
        separators = (",", ": ") if indent is not None else (", ", ": ")
    item_separator, key_separator = separators
    encode = _json.make_encoder(
        {},  # check for circular references, as json.dumps does by default
        _not_serializable,
        _json.encode_basestring_ascii,
        None,
        key_separator,
        item_separator,
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )
    if indent is None:
        return "".join(encode(value, 0))
    # _json's encoder cannot indent (json falls back to Python code for that): lay out the
    # containers here and leave every scalar to the C encoder.
    return _indented(value, encode, key_separator, item_separator, " " * indent, "\n", [])


def _indented(
    value: object,
    encode: Any,
    key_sep: str,
    item_sep: str,
    unit: str,
    newline: str,
    seen: list[int],
) -> str:
    if isinstance(value, dict | list | tuple) and value:
        if id(value) in seen:
            raise ValueError("Circular reference detected")
        seen.append(id(value))
        inner = newline + unit
        if isinstance(value, dict):
            parts = [
                "".join(encode(_key(key), 0))
                + key_sep
                + _indented(item, encode, key_sep, item_sep, unit, inner, seen)
                for key, item in value.items()
            ]
            opening, closing = "{", "}"
        else:
            parts = [
                _indented(item, encode, key_sep, item_sep, unit, inner, seen) for item in value
            ]
            opening, closing = "[", "]"
        seen.pop()
        return opening + inner + (item_sep + inner).join(parts) + newline + closing
    return "".join(encode(value, 0))


def _key(key: object) -> str:
    # json's rules for keys that are not strings.
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int | float):
        scalar = _json.make_encoder({}, _not_serializable, str, None, "", "", False, False, True)
        return "".join(scalar(key, 0))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
