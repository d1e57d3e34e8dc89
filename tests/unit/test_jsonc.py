"""common.jsonc gives what json gives, for the documents crib-runtime reads and writes."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
from typing import Any

import pytest

from common import jsonc

DOCUMENTS: list[Any] = [
    {},
    [],
    "text",
    0,
    -1.5,
    1e300,
    True,
    None,
    {"a": [1, 2.25, "ü", "\u2028", 'tab\tquote"back\\slash'], "b": {"c": None, "d": False}},
    {"ociVersion": "1.0.2", "process": {"args": ["/bin/sh", "-c", "echo hi"], "env": []}},
    [{"nested": [[[]]]}, "\x00control\x1f", "emoji \U0001f600"],
]


@pytest.mark.parametrize("document", DOCUMENTS, ids=repr)
@pytest.mark.parametrize("separators", [(", ", ": "), (",", ":")])
def test_dumps_matches_json(document: Any, separators: tuple[str, str]) -> None:
    assert jsonc.dumps(document, separators=separators) == json.dumps(
        document, separators=separators
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=repr)
def test_loads_round_trip_matches_json(document: Any) -> None:
    for text in (
        json.dumps(document),
        json.dumps(document, indent=2),
        f" \n{json.dumps(document)}\t",
    ):
        assert jsonc.loads(text) == json.loads(text)
        assert jsonc.loads(text.encode()) == json.loads(text.encode())


def test_loads_bytes_with_bom() -> None:
    assert jsonc.loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_constants_parse_as_json_does() -> None:
    value = jsonc.loads("[NaN, Infinity, -Infinity]")
    assert value[0] != value[0]  # NaN
    assert value[1:] == [float("inf"), float("-inf")]


@pytest.mark.parametrize(
    "text",
    ["", "   ", "{", '{"a": }', "[1,]", "[1] 2", '{"a" 1}', "nul", '"unterminated'],
)
def test_malformed_raises_value_error_like_json(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    # Same complaint at the same place: what, line, column and char offset.
    with pytest.raises(ValueError, match=f"^{re.escape(str(expected.value))}$"):
        jsonc.loads(text)


def test_not_serializable_and_circular() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        jsonc.dumps({"a": {1}})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonc.dumps(loop)


def test_malformed_without_json_imported_is_still_a_value_error() -> None:
    # _json finds JSONDecodeError only in sys.modules; crib-runtime never imports json.
    script = (
        "import sys\n"
        "from common import jsonc\n"
        "assert 'json.decoder' not in sys.modules, sorted(sys.modules)\n"
        "try:\n"
        "    jsonc.loads('{not json')\n"
        "except ValueError as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=pathlib.Path(__file__).parents[2],
    ).stdout
    expected = "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    assert out == f"JSONDecodeError {expected}\n"


@pytest.mark.parametrize("document", [*DOCUMENTS, {1: "int key", 2.5: "float", None: 0}])
@pytest.mark.parametrize("indent", [0, 2, 4])
def test_dumps_indented_matches_json(document: Any, indent: int) -> None:
    assert jsonc.dumps(document, indent=indent) == json.dumps(document, indent=indent)


def test_dumps_indented_refuses_circular() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular reference"):
        jsonc.dumps(loop, indent=2)
