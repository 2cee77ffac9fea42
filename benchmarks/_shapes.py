"""The workflow shapes the benchmark runs: plain data, no I/O.

A :class:`Shape` is a DAG of JS steps (name -> JS body and upstream names) plus
the event, context and host API every contender gets. Each contender runs the
very same JS: the floor on one in-process runtime, the seed-style baseline with
a fresh runtime per step, the engine through its pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import anyio

from actors import Workflow

__all__ = (
    "Shape",
    "StepDef",
    "big_values",
    "chain",
    "cpu_js",
    "cpu_pair",
    "diamond_io",
    "fan_out",
    "fetch_data",
    "lattice",
    "seed_dag",
    "seed_workflow",
    "topological",
)

# Every trivial step: one more than the largest upstream value (0 for a root).
TRIVIAL = "return Math.max(0, ...Object.values(deps)) + 1;"


async def fetch_data(source: str) -> list[int]:
    """The seed's host function, answering at once (its 0.1 s sleep would hide all costs)."""
    return [1, 2, 3, 4, 5] if source == "a" else [10, 20, 30]


@dataclass(frozen=True, slots=True)
class StepDef:
    js: str
    after: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Shape:
    """One benchmark case: ``n`` is the size it is plotted against (None if it has none)."""

    name: str
    steps: Mapping[str, StepDef]
    n: int | None = None
    event: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    api: Mapping[str, Callable[..., Any]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.steps)

    @property
    def sinks(self) -> tuple[str, ...]:
        upstream = {dep for step in self.steps.values() for dep in step.after}
        return tuple(name for name in self.steps if name not in upstream)

    def workflow(self) -> Workflow:
        wf = Workflow(self.name.replace(" ", "_"))
        for name, step in self.steps.items():
            wf.add_step(name, js=step.js, after=list(step.after))
        return wf

    def output(self, results: Mapping[str, Any]) -> Any:
        """The run's output as the engine reports it: the single sink's value, or by sink."""
        sinks = self.sinks
        return results[sinks[0]] if len(sinks) == 1 else {s: results[s] for s in sinks}


def topological(shape: Shape) -> list[str]:
    """Step names, every step after all of its upstream steps (definition order kept)."""
    done: set[str] = set()
    order: list[str] = []
    pending = list(shape.steps)
    while pending:
        ready = [n for n in pending if all(d in done for d in shape.steps[n].after)]
        if not ready:
            raise ValueError(f"{shape.name}: the steps form a cycle")
        order.extend(ready)
        done.update(ready)
        pending = [n for n in pending if n not in done]
    return order


def _shape(name: str, steps: dict[str, StepDef], n: int | None = None, **extra: Any) -> Shape:
    return Shape(name, MappingProxyType(steps), n, **extra)


def seed_dag() -> Shape:
    """The jsrun guide's workflow, its JS unchanged: fetch_a, fetch_b -> combine -> aggregate."""
    fetch = "const source = ctx.event.source_{0} || '{1}';\nreturn await fetch_data(source);"
    steps = {
        "fetch_a": StepDef(fetch.format("a", "foo")),
        "fetch_b": StepDef(fetch.format("b", "bar")),
        "combine": StepDef(
            "const a = deps.fetch_a;\nconst b = deps.fetch_b;\n"
            "const multiplier = ctx.config.multiplier;\n"
            "return [...a, ...b].map(x => x * multiplier);",
            ("fetch_a", "fetch_b"),
        ),
        "aggregate": StepDef(
            "const data = deps.combine;\n"
            "return {\n  sum: data.reduce((a, b) => a + b, 0),\n  count: data.length,\n"
            "  event: ctx.event\n};",
            ("combine",),
        ),
    }
    return _shape(
        "seed DAG",
        steps,
        event={"source_a": "a", "source_b": "b", "user_id": 123},
        context={"config": {"multiplier": 2}},
        api={"fetch_data": fetch_data},
    )


def seed_workflow() -> Shape:
    """The workflow ``examples/seed_workflow.py`` ships, with its own ``fetch_data`` (0.1 s I/O)."""
    from examples.seed_workflow import API, wf  # the repository root is on sys.path

    steps = {
        name: StepDef(step["js"], tuple(step.get("after", ())))
        for name, step in wf.to_dict()["steps"].items()
    }
    return _shape(
        "seed workflow, 0.1 s host I/O",
        steps,
        event={"source_a": "a", "source_b": "b", "user_id": 123},
        context={"config": {"multiplier": 2}},
        api=API,
    )


def diamond_io(delay: float, width: int = 3) -> Shape:
    """``a``, ``width`` steps after it, ``c`` after them all; each step awaits ``io`` once.

    ``io(x)`` is an async host function that sleeps ``delay`` seconds and returns x + 1.
    """

    async def io(x: int) -> int:
        await anyio.sleep(delay)
        return x + 1

    steps = {"a": StepDef("return await io(1);")}
    for i in range(width):
        steps[f"b{i}"] = StepDef(f"return await io(deps.a + {i});", ("a",))
    total = " + ".join(f"deps.b{i}" for i in range(width))
    steps["c"] = StepDef(f"return await io({total});", tuple(f"b{i}" for i in range(width)))
    name = f"1-{width}-1 DAG, {delay * 1e3:g} ms host I/O per step"
    return _shape(name, steps, api={"io": io})


def chain(n: int) -> Shape:
    steps = {f"s{i}": StepDef(TRIVIAL, (f"s{i - 1}",) if i else ()) for i in range(n)}
    return _shape("chain", steps, n)


def fan_out(n: int) -> Shape:
    """A root, ``n`` leaves after it, and one join after all the leaves: n + 2 steps."""
    steps = {"root": StepDef(TRIVIAL)}
    steps.update({f"leaf{i}": StepDef(TRIVIAL, ("root",)) for i in range(n)})
    steps["join"] = StepDef(TRIVIAL, tuple(f"leaf{i}" for i in range(n)))
    return _shape("fan-out", steps, n)


def lattice(layers: int, width: int) -> Shape:
    """``layers`` x ``width`` steps; each step waits for every step of the layer before."""
    steps: dict[str, StepDef] = {}
    for layer in range(layers):
        above = tuple(f"l{layer - 1}w{w}" for w in range(width)) if layer else ()
        steps.update({f"l{layer}w{w}": StepDef(TRIVIAL, above) for w in range(width)})
    return _shape(f"lattice {layers}x{width}", steps)


def cpu_js(loops: int) -> str:
    return (
        f"let x = 0;\nfor (let i = 0; i < {loops}; i++) {{ x = (x + i * i) % 1000003; }}\nreturn x;"
    )


def cpu_pair(loops: int, *, parallel: bool) -> Shape:
    """Two CPU-heavy steps, independent (``parallel``) or the second after the first."""
    steps = {"a": StepDef(cpu_js(loops)), "b": StepDef(cpu_js(loops), () if parallel else ("a",))}
    return _shape("cpu x2 parallel" if parallel else "cpu x2 sequential", steps)


BIG_SOURCE = (
    "return { rows: Array.from({ length: 8000 }, (_, i) =>"
    " ({ id: i, name: 'item-' + i, pad: 'x'.repeat(100) })) };"
)
BIG_PASS = (
    "const v = Object.values(deps)[0];\n"
    "return { rows: v.rows.map(r => ({ id: r.id + 1, name: r.name, pad: r.pad })) };"
)


def big_values(hops: int = 3) -> Shape:
    """A step makes a ~1 MB value; ``hops`` steps each take it and pass on a new one."""
    steps = {"make": StepDef(BIG_SOURCE)}
    previous = "make"
    for i in range(hops):
        steps[f"pass{i}"] = StepDef(BIG_PASS, (previous,))
        previous = f"pass{i}"
    steps["size"] = StepDef("return Object.values(deps)[0].rows.length;", (previous,))
    return _shape("1 MB values", steps)
