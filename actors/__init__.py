"""Workflows of sandboxed JavaScript steps, run as a DAG of push-based actors."""

from actors._admission import EngineStatistics
from actors._bus import BusStatistics, EventBus
from actors._engine import Engine
from actors._events import (
    BusEvent,
    HostCalled,
    LifecycleEvent,
    Published,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    StepCancelled,
    StepCompleted,
    StepFailed,
    StepLogged,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepWaiting,
)
from actors._logging import log_lifecycle_events
from actors._results import RunResult, RunStatus, StepResult, StepStatus
from actors._retry import Retry
from actors._run import RunHandle
from actors._runner import StepRunner
from actors._store import RunRecord, RunStore, StepRecord
from actors._store_postgres import PostgresStore
from actors._store_sqlite import SQLiteStore
from actors._subscription import Policy, SubscriberStatistics, Subscription
from actors._trigger import Trigger
from actors._waits import WaitFor
from actors._workflow import Step, Workflow
from actors.errors import WaitFailed, WaitTimedOut

__all__ = (
    "BusEvent",
    "BusStatistics",
    "Engine",
    "EngineStatistics",
    "EventBus",
    "HostCalled",
    "LifecycleEvent",
    "Policy",
    "PostgresStore",
    "Published",
    "Retry",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunHandle",
    "RunRecord",
    "RunResult",
    "RunStarted",
    "RunStatus",
    "RunStore",
    "SQLiteStore",
    "Step",
    "StepCancelled",
    "StepCompleted",
    "StepFailed",
    "StepLogged",
    "StepRecord",
    "StepResult",
    "StepRetrying",
    "StepRunner",
    "StepSkipped",
    "StepStarted",
    "StepStatus",
    "StepWaiting",
    "SubscriberStatistics",
    "Subscription",
    "Trigger",
    "WaitFailed",
    "WaitFor",
    "WaitTimedOut",
    "Workflow",
    "log_lifecycle_events",
)
