"""Where a host value that cannot cross into the sandbox sits: ``ctx.event.when``.

The sandbox takes JSON-like data only (the pool encodes it with ``json.dumps(...,
allow_nan=False)``). When it refuses a step's inputs, this finds the first value it
could not take, so the error names what the user passed. Pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ("first_non_json",)

_SCALARS = (str, int, bool, type(None))


def first_non_json(value: Any, path: str) -> tuple[str, str] | None:
    """``(path, reason)`` of the first value under ``path`` that is not JSON-like."""
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, f"{value} is not a finite number")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                return path, f"key {key!r} is a {type(key).__name__}, not a string"
            found = first_non_json(item, f"{path}.{key}" if _plain(key) else f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = first_non_json(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return path, f"a {type(value).__name__} is not JSON-like data"


def _plain(key: object) -> bool:
    return isinstance(key, str) and key.isidentifier()
