"""The holes an adversarial review found in the sandbox (issue 14), each as a real-worker repro.

A pool of one worker sends every run to the same runtime unless the pool
replaced it, so "a later run" below shares whatever the earlier run could leave.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime_pool import RuntimePool
from tests.pool_helpers import assert_pool_works

pytestmark = pytest.mark.anyio

MiB = 2**20
CARD = "4111 1111 1111 1111"


def one_worker(**options: Any) -> RuntimePool:
    return RuntimePool(size=1, timeout=10.0, **options)


# ---- 1: nothing shared between runs is mutable ------------------------------------------


@pytest.mark.timeout(60)
async def test_nothing_the_builtins_hand_out_is_shared_and_mutable() -> None:
    explorer = (Path(__file__).parent / "shared_reach.js").read_text()
    async with one_worker(heap_limit=256 * MiB, memory_limit=1024 * MiB) as pool:
        report = await pool.run(explorer, timeout=30.0)
    assert report["explored"] > 10_000  # the exploration really ran
    assert report["shared"] > 1_000
    assert report["offenders"] == []


STEAL = """
const found = [];
try {
  const segments = Object.getPrototypeOf(new Intl.Segmenter().segment(""));
  const iterate = segments[Symbol.iterator];
  segments[Symbol.iterator] = function () {
    found.push(String(this.containing(0)?.input));
    return iterate.call(this);
  };
} catch (_) { /* frozen */ }
try { Object.getOwnPropertyDescriptor(new Error(), "stack").get.stash = found; } catch (_) {}
try { Object.prototype.toString.stash = found; } catch (_) {}
return "planted";
"""

VICTIM = """
const words = [];
for (const { segment } of new Intl.Segmenter("en", { granularity: "word" }).segment(deps.text)) {
  words.push(segment);
}
return words.length;
"""

COLLECT = """
const stack = Object.getOwnPropertyDescriptor(new Error(), "stack").get.stash;
return [stack ?? null, Object.prototype.toString.stash ?? null];
"""


async def test_a_run_cannot_collect_a_later_runs_data_through_shared_builtins() -> None:
    async with one_worker() as pool:
        assert await pool.run(STEAL) == "planted"
        assert await pool.run(VICTIM, globals={"deps": {"text": CARD}}) > 1
        stolen = await pool.run(COLLECT)
        assert CARD not in repr(stolen)
        assert stolen == [None, None]
        await assert_pool_works(pool)


@pytest.mark.parametrize(
    "target",
    [
        "Object.getOwnPropertyDescriptor(new Error(), 'stack').get",
        "Object.getOwnPropertyDescriptor(new Error(), 'stack').set",
        "Object.getPrototypeOf(new Intl.Segmenter().segment(''))",
        "Object.getPrototypeOf(new Intl.Segmenter().segment('a').containing(0))",
        "Object.getOwnPropertyDescriptor((function () { return arguments; })(), 'callee').get",
        "Object.prototype.toString",
        "Function.prototype.call",
        "Array.prototype.push",
        "Promise.prototype.then",
        "TypeError.prototype.toString",
    ],
)
async def test_shared_objects_the_builtins_hand_out_reject_new_state(target: str) -> None:
    async with one_worker() as pool:
        code = f"const t = {target}; try {{ t.stash = 1; }} catch (_) {{}} return t.stash ?? null"
        assert await pool.run(code) is None
        assert await pool.run(f"return ({target}).stash ?? null") is None
