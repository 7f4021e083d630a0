"""safe_relative_id: ids from data files that become output paths."""

from __future__ import annotations

import pytest

from text4seg.paths import safe_relative_id


@pytest.mark.parametrize("value", ["0", "abc", "UVO/all/-fbscFfkh4M", "a.b/c..d/.e", "vid with space"])
def test_accepts_relative_ids(value):
    assert safe_relative_id(value, "video id", "meta.json") == value


@pytest.mark.parametrize(
    "value, why",
    [
        ("", "is empty"),
        ("..", "has a '..' path component"),
        ("a/../b", "has a '..' path component"),
        (".", "has a '.' path component"),
        ("a/./b", "has a '.' path component"),
        ("a//b", "has an empty path component"),
        ("a/", "has an empty path component"),
        ("/etc/passwd", "is an absolute path"),
        ("a\\b", "contains a backslash"),
        ("..\\x", "contains a backslash"),
        ("a\x00b", "contains a NUL character"),
    ],
)
def test_refuses_unsafe_ids_naming_field_and_source(value, why):
    with pytest.raises(ValueError) as info:
        safe_relative_id(value, "expression id", "/data/meta_expressions.json")
    message = str(info.value)
    assert message.startswith("/data/meta_expressions.json: expression id ")
    assert why in message


@pytest.mark.parametrize("value, kind", [(3, "int"), (None, "NoneType"), (["a"], "list"), (b"a", "bytes")])
def test_refuses_non_strings(value, kind):
    with pytest.raises(ValueError, match=f"meta.json: video id .* must be a string, got {kind}"):
        safe_relative_id(value, "video id", "meta.json")
