"""The library's loggers: the application's structlog set-up, or quiet stderr without one.

The library never calls ``structlog.configure()``. A logger from :func:`get_logger`
looks, on every call, at whether the application has configured structlog
(``structlog.is_configured()``): if so, it logs exactly as a plain
``structlog.get_logger(name)`` would; if not, it writes warnings and errors, one
plain line each, to stderr and drops the rest. So an application that never set
up logging gets no library line on stdout, and one that did keeps full control.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ("LibraryLogger", "get_logger", "round_durations")

# Seconds in log lines are rounded to the millisecond.
DURATION_DIGITS = 3
_DURATION_KEYS = ("duration", "delay", "seconds", "timeout", "elapsed")


def round_durations(fields: dict[str, Any]) -> dict[str, Any]:
    """Round the float seconds among ``fields`` (``duration``, ``delay``...) to the ms."""
    for key in _DURATION_KEYS:
        value = fields.get(key)
        if isinstance(value, float):
            fields[key] = round(value, DURATION_DIGITS)
    return fields


def _round_processor(logger: Any, method: str, event_dict: Any) -> Any:
    return round_durations(event_dict)


class LibraryLogger:
    """A structlog-style logger: ``bind()`` and one method per level."""

    __slots__ = ("_context", "_name")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context = context or {}

    def bind(self, **values: Any) -> LibraryLogger:
        return LibraryLogger(self._name, {**self._context, **values})

    def _target(self) -> Any:
        if structlog.is_configured():
            return structlog.get_logger(self._name, **self._context)
        return _fallback(sys.stderr).bind(**self._context)

    def debug(self, event: str, **fields: Any) -> Any:
        return self._target().debug(event, **round_durations(fields))

    def info(self, event: str, **fields: Any) -> Any:
        return self._target().info(event, **round_durations(fields))

    def warning(self, event: str, **fields: Any) -> Any:
        return self._target().warning(event, **round_durations(fields))

    def error(self, event: str, **fields: Any) -> Any:
        return self._target().error(event, **round_durations(fields))

    def exception(self, event: str, **fields: Any) -> Any:
        return self._target().exception(event, **round_durations(fields))


def get_logger(name: str) -> LibraryLogger:
    """The logger modules of this library use instead of ``structlog.get_logger``."""
    return LibraryLogger(name)


def _fallback(stream: Any) -> Any:
    """Warnings and errors as plain lines on ``stream`` (built per call: rare, and
    ``sys.stderr`` may have been swapped since the last one)."""
    return structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            _round_processor,
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        context_class=dict,
    )
