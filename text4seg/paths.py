"""Ids read from data files that later name output paths: checked to stay inside the folder they go to (no torch).

Video benchmarks key masks, predictions and submissions by ids taken from their meta files
(``<vid>/<exp_id>/<frame>.png``). Those ids are untrusted input: an id such as ``../../etc`` or ``/tmp/x``
would write outside the output folder. :func:`safe_relative_id` admits nested ids (ReVOS spells video ids
``UVO/all/-fbscFfkh4M``) and refuses everything that could escape or that means different things on
different systems.
"""

from __future__ import annotations

import os

__all__ = ["safe_relative_id", "unsafe_id_reason"]


def unsafe_id_reason(value: object) -> str | None:
    """Why ``value`` is not a safe relative id (see :func:`safe_relative_id`), or None when it is one."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "is empty"
    if "\x00" in value:
        return "contains a NUL character"
    if "\\" in value:
        return "contains a backslash (ids are POSIX paths)"
    if value.startswith("/"):
        return "is an absolute path"
    for part in value.split("/"):
        if part in ("", ".", ".."):
            return f"has a {part!r} path component" if part else "has an empty path component"
    return None


def safe_relative_id(value: object, field: str, source: str | os.PathLike) -> str:
    """Check an id read from a data file that will become (part of) a relative output path.

    Args:
        value: the id as read (must be a non-empty ``str``).
        field: what the id is, for the message (e.g. ``"video id"``, ``"expression id"``).
        source: the file it was read from, for the message.

    Returns:
        ``value`` unchanged: a relative POSIX path whose ``/``-separated components are all non-empty and
        none of which is ``.`` or ``..``.

    Raises:
        ValueError: a non-string, an empty string, an absolute path, a backslash, a NUL character, or an
            empty, ``.`` or ``..`` component; the message names ``field`` and ``source``.
    """
    why = unsafe_id_reason(value)
    if why is not None:
        raise ValueError(f"{os.fspath(source)}: {field} {value!r} {why}")
    return value  # type: ignore[return-value]
