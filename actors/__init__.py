"""Workflows of sandboxed JavaScript steps, run as a DAG of push-based actors."""

from actors._retry import Retry
from actors._workflow import Step, Workflow

__all__ = ("Retry", "Step", "Workflow")
