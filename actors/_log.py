"""The library's loggers (quiet without a structlog set-up): see :mod:`runtime_pool._log`.

Both packages log through the same logger class, which lives in the lower layer.
"""

from runtime_pool._log import DURATION_DIGITS, LibraryLogger, get_logger, round_durations

__all__ = ("DURATION_DIGITS", "LibraryLogger", "get_logger", "round_durations")
