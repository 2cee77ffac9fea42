"""Pure DAG logic: check a step graph, find cycles, and plan a run.

The graph is given as ``{step: upstream step names}``. No I/O, no event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from actors.errors import CycleDetected, UnknownDependency

__all__ = ("Plan", "check_graph", "find_cycle", "plan")

Graph = Mapping[str, Sequence[str]]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run needs to know about a valid graph."""

    order: tuple[str, ...]
    upstream: Mapping[str, tuple[str, ...]]
    downstream: Mapping[str, tuple[str, ...]]
    sinks: tuple[str, ...]


def check_graph(graph: Graph, *, workflow: str | None = None) -> None:
    """Raise :class:`UnknownDependency` or :class:`CycleDetected` naming the culprits."""
    for step, upstream in graph.items():
        for dependency in upstream:
            if dependency not in graph:
                raise UnknownDependency(step, dependency, workflow=workflow)
    cycle = find_cycle(graph)
    if cycle is not None:
        raise CycleDetected(cycle, workflow=workflow)


def find_cycle(graph: Graph) -> tuple[str, ...] | None:
    """A cycle as the steps on it (each depends on the next, the last on the first).

    Iterative depth-first search, so long chains do not hit the recursion limit.
    Unknown dependencies are ignored.
    """
    done: set[str] = set()
    for root in graph:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(graph[root])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
            elif nxt in on_path:
                return tuple(path[path.index(nxt) :])
            elif nxt in graph and nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(graph[nxt]))
    return None


def plan(graph: Graph) -> Plan:
    """Topological order (Kahn, stable in definition order), edges both ways, sinks.

    The graph must already have passed :func:`check_graph`.
    """
    upstream = {step: tuple(dict.fromkeys(deps)) for step, deps in graph.items()}
    downstream: dict[str, list[str]] = {step: [] for step in graph}
    for step, deps in upstream.items():
        for dependency in deps:
            downstream[dependency].append(step)
    waiting = {step: len(deps) for step, deps in upstream.items()}
    ready = deque(step for step, count in waiting.items() if count == 0)
    order: list[str] = []
    while ready:
        step = ready.popleft()
        order.append(step)
        for child in downstream[step]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) != len(graph):
        raise CycleDetected(find_cycle(graph) or ())
    sinks = tuple(step for step in graph if not downstream[step])
    return Plan(
        order=tuple(order),
        upstream=upstream,
        downstream={step: tuple(children) for step, children in downstream.items()},
        sinks=sinks,
    )
