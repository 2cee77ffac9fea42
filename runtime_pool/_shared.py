"""Shared globals: values many runs see, sent to each worker once and kept there.

``RuntimePool.share(values)`` encodes the values once and gives them a key. A run
given ``shared=`` sends only the key when its worker already holds the values;
otherwise the encoded values go first in the run's payload. Host and worker each
keep the last :data:`CAPACITY` keys in least-recently-used order, updated in the
order the runs are sent (one pipe, so the worker sees the same order): both sides
always agree on what the worker holds. In the sandbox the values are parsed once
per runtime and frozen; a name given both here and as an object in ``globals``
is the shallow merge of both (the run's own keys win).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

__all__ = ("CAPACITY", "KeptKeys", "Shared", "make_shared", "sent_keys", "take_shared")

CAPACITY = 8


@dataclass(frozen=True, slots=True)
class Shared:
    """Values encoded once for many runs (``RuntimePool.share``)."""

    names: tuple[str, ...]
    data: bytes = field(repr=False)
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


def make_shared(values: Mapping[str, Any], data: bytes) -> Shared:
    return Shared(tuple(values), data)


class KeptKeys:
    """The keys a worker holds, least recently used first."""

    def __init__(self) -> None:
        self._keys: OrderedDict[str, str] = OrderedDict()

    def touch(self, key: str, value: str = "") -> bool:
        """Mark ``key`` used; True if it was not held (it is now; the oldest may go)."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = value
        if len(self._keys) > CAPACITY:
            self._keys.popitem(last=False)
        return True

    def get(self, key: str) -> str | None:
        return self._keys.get(key)


_SENT: WeakKeyDictionary[Any, KeptKeys] = WeakKeyDictionary()


def sent_keys(slot: Any) -> KeptKeys:
    """What the host has sent to ``slot``'s worker (forgotten with the slot)."""
    kept = _SENT.get(slot)
    if kept is None:
        kept = _SENT[slot] = KeptKeys()
    return kept


def take_shared(kept: KeptKeys, header: dict[str, Any], text: str) -> str:
    """Worker side: store or find the run's shared values (``header["shared_json"]``);
    return the run's own inputs."""
    key = header["shared"]
    length = header.get("shared_len")
    if length is not None:
        kept.touch(key, text[:length])
        text = text[length:]
    elif kept.get(key) is not None:
        kept.touch(key)
    header["shared_json"] = kept.get(key)  # None: lost (a bug); the run fails saying so
    return text
