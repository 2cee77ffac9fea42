"""The retry policy of a step: how many attempts, and how long to wait between them.

Pure maths, no I/O: :meth:`Retry.delay_after` is tested without an event loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from actors.errors import InvalidOption

__all__ = ("Retry",)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Retry:
    """Try a failing step up to ``attempts`` times in all.

    The wait after failed attempt ``n`` (1-based) is ``delay * backoff ** (n - 1)``,
    capped at ``max_delay`` (when given), then spread by ``jitter``: a fraction in
    ``[0, 1]``; the wait is multiplied by a random factor in ``[1 - jitter, 1 + jitter]``.
    """

    attempts: int = 1
    delay: float = 0.0
    backoff: float = 1.0
    max_delay: float | None = None
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool):
            raise InvalidOption("attempts", "must be an integer", value=self.attempts)
        if self.attempts < 1:
            raise InvalidOption("attempts", "must be at least 1", value=self.attempts)
        self._check_number("delay", self.delay, minimum=0.0)
        self._check_number("backoff", self.backoff, minimum=1.0)
        if self.max_delay is not None:
            self._check_number("max_delay", self.max_delay, minimum=0.0)
        self._check_number("jitter", self.jitter, minimum=0.0)
        if self.jitter > 1.0:
            raise InvalidOption("jitter", "must be between 0 and 1", value=self.jitter)

    @staticmethod
    def _check_number(option: str, value: object, *, minimum: float) -> None:
        if not _number(value):
            raise InvalidOption(option, "must be a number", value=value)
        assert isinstance(value, int | float)
        if value < minimum:
            raise InvalidOption(option, f"must be at least {minimum:g}", value=value)

    def should_retry(self, attempt: int) -> bool:
        """Whether another attempt may follow failed attempt ``attempt`` (1-based)."""
        return attempt < self.attempts

    def delay_after(self, attempt: int, *, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one.

        ``rand`` returns a float in ``[0, 1)``; it is only called when ``jitter`` is set.
        """
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        base = self.delay * self.backoff ** (attempt - 1)
        if self.max_delay is not None:
            base = min(base, self.max_delay)
        if self.jitter:
            base *= 1.0 + self.jitter * (2.0 * rand() - 1.0)
        return max(base, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain data (``None`` fields left out, for TOML)."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Retry:
        """Build a policy from :meth:`to_dict`'s shape; unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise InvalidOption("", "must be a table/object of retry options", value=data)
        known = {"attempts", "delay", "backoff", "max_delay", "jitter"}
        for key in data:
            if key not in known:
                raise InvalidOption(str(key), "unknown retry option", value=data[key])
        return cls(**data)
