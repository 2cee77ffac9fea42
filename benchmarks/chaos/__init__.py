"""Chaos cases: the engine under load and faults (``python -m benchmarks.chaos``).

The same cases run scaled down in the test suite (``tests/test_actors_chaos.py``,
``pytest -m chaos``) and at full size here; each reports its figures and the list
of guarantees it saw broken (none, when all is well).
"""

from ._bus_load import BusLoadReport, bus_load
from ._cancel import CancelReport, cancel_storm
from ._pg_cluster import PgChaosReport, pg_cluster_case, pg_cluster_chaos
from ._soak import Census, SoakReport, census, soak
from ._storms import FaultStormReport, KillStormReport, fault_storm, kill_storm

__all__ = (
    "BusLoadReport",
    "CancelReport",
    "Census",
    "FaultStormReport",
    "KillStormReport",
    "PgChaosReport",
    "SoakReport",
    "bus_load",
    "cancel_storm",
    "census",
    "fault_storm",
    "kill_storm",
    "pg_cluster_case",
    "pg_cluster_chaos",
    "soak",
)
