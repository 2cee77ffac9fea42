"""A warm pool of sandboxed jsrun runtimes in supervised worker processes."""

from . import errors
from ._pool import RuntimePool
from ._results import Execution, HostCall, LogLine, PoolStatistics

__all__ = ("Execution", "HostCall", "LogLine", "PoolStatistics", "RuntimePool", "errors")
