"""What a finished step sends to the inbox of each downstream step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.errors import StepError

__all__ = ("Completed", "Failed", "Message", "Skipped")


@dataclass(frozen=True, slots=True)
class Completed:
    """Upstream ``step`` completed with ``result``."""

    step: str
    result: Any


@dataclass(frozen=True, slots=True)
class Failed:
    """Upstream ``step`` failed with ``error``."""

    step: str
    error: StepError


@dataclass(frozen=True, slots=True)
class Skipped:
    """Upstream ``step`` was skipped, for ``reason``."""

    step: str
    reason: str


Message = Completed | Failed | Skipped
