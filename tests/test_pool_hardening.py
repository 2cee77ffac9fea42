"""The holes an adversarial review found in the sandbox (issue 14), each as a real-worker repro.

A pool of one worker sends every run to the same runtime unless the pool
replaced it, so "a later run" below shares whatever the earlier run could leave.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

import runtime_pool
from actors import Engine, Workflow
from runtime_pool import RuntimePool, errors
from runtime_pool._threads import DEFAULT_HOST_THREADS, HostThreads
from tests import xorshift
from tests.conftest import worker_children
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


ORDINARY = """
const stream = new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); c.close(); } });
const reader = stream.getReader();
const read = [];
for (;;) {
  const { value, done } = await reader.read();
  if (done) break;
  read.push(value);
}
const words = [...new Intl.Segmenter("en", { granularity: "word" }).segment("a b")];
function* two() { yield 1; yield 2; }
const error = new Error("x");
error.stack = "mine";
class Counter { #n = 1; get n() { return this.#n; } }
const traced = {};
Error.captureStackTrace(traced);
return [
  read, words.map((w) => w.segment), [...two()], error.stack, new Counter().n,
  [1, 2].values().map((x) => x * 2).toArray(), typeof traced.stack,
];
"""


async def test_ordinary_code_still_works_with_what_the_glue_froze() -> None:
    async with one_worker() as pool:
        assert await pool.run(ORDINARY) == [
            [1, 2],
            ["a", " ", "b"],
            [1, 2],
            "mine",
            1,
            [2, 4],
            "string",
        ]


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


# ---- 5: Math.random gives nothing away -------------------------------------------------


def test_the_predictor_recovers_v8s_generator_from_a_few_values() -> None:
    """The attack the sandbox must defeat works on the V8 algorithm (and on real V8, see below)."""
    sequence = xorshift.v8_sequence(0x0123456789ABCDEF, 0xFEDCBA9876543210, 400)
    predicted = xorshift.predict(sequence[200:206])
    assert set(sequence[50:350]) <= predicted
    assert xorshift.predict([0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625]) == set()


SAMPLE = "return Array.from({ length: 12 }, () => RANDOM())"


@pytest.mark.parametrize("first", ["Math.random", "globalThis.Math.random"])
@pytest.mark.parametrize("then", ["Math.random", "globalThis.Math.random"])
async def test_a_run_cannot_predict_math_random_of_the_runs_before_and_after(
    first: str, then: str
) -> None:
    async with one_worker() as pool:
        before = await pool.run(SAMPLE.replace("RANDOM", then))
        mine = await pool.run(SAMPLE.replace("RANDOM", first))
        after = await pool.run(SAMPLE.replace("RANDOM", then))
    predicted = xorshift.predict(mine)
    assert all(0 <= x < 1 for x in mine) and len(set(mine)) == len(mine)
    assert not predicted & set(before + after)


async def test_math_random_in_the_sandbox_is_chacha20() -> None:
    """RFC 8439, section 2.3.2: the block function's test vector."""
    source = (Path(runtime_pool.__file__).parent / "_random.js").read_text()
    code = """
        const block = (0, eval)(source)(null);
        const byte = (i) => i | ((i + 1) << 8) | ((i + 2) << 16) | ((i + 3) << 24);
        const key = Array.from({ length: 8 }, (_, i) => byte(4 * i));
        const words = block(key, 1, [0x09000000, 0x4a000000, 0], new Array(16));
        return words.map((w) => w.toString(16).padStart(8, "0"));
    """
    async with one_worker() as pool:
        words = await pool.run(code, globals={"source": source})
    assert (
        words
        == (
            "e4e7f110 15593bd1 1fdd0f50 c47120a3 c7f4d1c7 0368c033 9aaa2204 4e6cd4c3 "
            "466482d2 09aa9f07 05d7c214 a2028bd9 d19c12b5 b94e16de e883d0cb 4e3c50a2"
        ).split()
    )


# ---- 6: threads for sync host functions stay bounded -------------------------------------


@pytest.mark.timeout(60)
async def test_abandoned_sync_host_calls_do_not_pile_up_threads() -> None:
    release = threading.Event()
    started = []

    def slow(i: int) -> int:
        started.append(i)
        release.wait(20)
        return i

    before = threading.active_count()
    try:
        async with one_worker() as pool:
            for _ in range(10):
                code = "for (let i = 0; i < 40; i++) slow(i); return 1"
                assert await pool.run(code, api={"slow": slow}) == 1
                assert threading.active_count() - before <= DEFAULT_HOST_THREADS + 2
            release.set()
            assert await pool.run("return await slow(7)", api={"slow": slow}) == 7
    finally:
        release.set()
    assert len(started) >= 40  # the abandoned calls did run in threads


async def test_a_thread_slot_comes_back_however_its_call_ended() -> None:
    threads = HostThreads(limit=1)
    release = threading.Event()
    with anyio.move_on_after(0.2):  # abandons a running thread: it keeps the only slot
        await threads.run(lambda: release.wait(20))
    ran: list[int] = []
    with anyio.move_on_after(0.2):  # waits for that slot, then gives up
        await threads.run(lambda: ran.append(1))
    assert ran == []  # no second thread while the abandoned one runs
    release.set()
    with anyio.fail_after(5):  # the abandoned thread handed its slot back when it ended
        assert await threads.run(lambda: 2) == 2
        assert await threads.run(lambda: 3) == 3


# ---- 4: memory a run leaves behind does not count against the next run ---------------------

STAMP = """
class Base { constructor() { return TARGET; } }
class Stamp extends Base { #kept = BIG; }
new Stamp();
return 1;
"""


OUTSIDE_HEAP = "new Uint8Array(60 * 2**20).fill(1); return 2"
IN_HEAP = "return new Array(4.5e6).fill(0.5).length > 0 ? 2 : 0"  # ~36 of the 64 MiB heap


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["Object.prototype", "Math", "globalThis"])
@pytest.mark.parametrize(
    ("big", "then"),
    [
        ("new Uint8Array(420 * 2**20).fill(1)", OUTSIDE_HEAP),
        ("new Uint8Array(new WebAssembly.Memory({ initial: 6720 }).buffer).fill(1)", OUTSIDE_HEAP),
        ("new Array(3e6).fill(0.5)", IN_HEAP),  # under half the heap: kept before
    ],
)
async def test_memory_stamped_on_a_shared_object_does_not_fail_the_next_run(
    target: str, big: str, then: str
) -> None:
    async with one_worker(memory_limit=512 * MiB, heap_limit=64 * MiB) as pool:
        assert await pool.run(STAMP.replace("TARGET", target).replace("BIG", big)) == 1
        assert await pool.run(then) == 2
        await assert_pool_works(pool)


# ---- 7: messages crossing the boundary are bounded ---------------------------------------

BIG_TEXT = [  # (script, error, max_value_bytes); the frame cap is 4 * max_value_bytes + 1 MiB
    ("Promise.reject(new Error('x'.repeat(15 * MiB))); await new Promise(() => {})", 1),
    ("setTimeout(() => { throw new Error('x'.repeat(15 * MiB)) }); await new Promise(() => {})", 1),
    ("throw 'x'.repeat(15 * MiB)", 1),
    ("return await fail()", 1),
    ("return { ['k'.repeat(900_000)]: () => 1 }", 1),
    ("const o = {}; o['k'.repeat(7 * MiB)] = o; return o", 8),
    ("let o = 1; for (let i = 0; i < 120; i++) o = { ['k'.repeat(40000)]: o }; return o", 8),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("code", "max_mib"), BIG_TEXT)
async def test_huge_error_messages_are_truncated_with_a_marker(code: str, max_mib: int) -> None:
    def fail() -> None:
        raise ValueError("y" * 15 * MiB)

    async with one_worker(max_value_bytes=max_mib * MiB) as pool:
        with (
            capture_logs() as logs,
            pytest.raises((errors.ScriptError, errors.ValueTooLarge)) as raised,
        ):
            await pool.run(code, globals={"MiB": MiB}, api={"fail": fail})
        await assert_pool_works(pool)
    error = raised.value
    assert len(str(error)) <= 8192 + 100
    assert "[truncated]" in str(error)
    assert len(getattr(error, "stack", None) or "") <= 16384 + 100
    assert all(len(repr(line)) <= 20_000 for line in logs)


OVERSIZE = [  # values whose bytes outgrow their characters, and escaped console output
    ("return '\\u0800'.repeat(1_000_000)", errors.ValueTooLarge),
    ("return ['\\ud800'.repeat(150_000)]", None),
    ("return await echo('\\u0800'.repeat(1_000_000))", errors.ScriptError),
    ("console.log('\\x01'.repeat(4e6)); return 1", None),
    ("for (let i = 0; i < 60000; i++) console.log('\\x01'.repeat(60)); return 1", None),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("code", "error"), OVERSIZE)
async def test_oversize_output_is_an_error_never_a_crash(code: str, error: type | None) -> None:
    async def echo(text: str) -> str:
        return text

    options = {"max_log_chars": 8 * MiB, "max_log_lines": 100_000, "max_value_bytes": 1 * MiB}
    async with one_worker(**options) as pool:
        if error is None:
            assert await pool.run(code, api={"echo": echo}) is not None
        else:
            with pytest.raises(error):
                await pool.run(code, api={"echo": echo})
        await assert_pool_works(pool)
        assert pool.statistics().crashes == 0


async def test_one_tenants_workflow_cannot_read_anothers_deps_through_the_engine() -> None:
    """The issue's repro with the default isolation, through ``actors.Engine``."""
    attacker, victim, collector = Workflow("plant"), Workflow("cards"), Workflow("collect")
    attacker.add_step("plant", js=STEAL)
    victim.add_step("load", js=f"return {{ text: {CARD!r} }};")
    victim.add_step("words", js=VICTIM.replace("deps.text", "deps.load.text"), after=["load"])
    collector.add_step("collect", js=COLLECT)
    async with Engine(pool=one_worker()) as engine:
        assert (await engine.run(attacker)).output == "planted"
        assert (await engine.run(victim)).status == "completed"
        stolen = await engine.run(collector)
    assert stolen.status == "completed"
    assert CARD not in repr(stolen.output)


# ---- 9: one huge native fill overshoots the memory limit by one sampling period at most ----


def high_water_mark(pid: int) -> int:
    """The most resident memory the process has had (bytes; /proc keeps it until it exits)."""
    status = Path(f"/proc/{pid}/status").read_text()
    if "VmHWM:" not in status:
        raise OSError("the process has exited")  # a zombie has no memory figures
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", ["512 * 2**20", "2**31"])
async def test_one_huge_fill_barely_overshoots_the_memory_limit(size: str) -> None:
    async with one_worker(memory_limit=256 * MiB) as pool:
        await pool.run("return 1")
        (pid,) = worker_children()
        peak = 0

        async def watch() -> None:
            nonlocal peak
            with contextlib.suppress(OSError):
                while True:
                    peak = max(peak, high_water_mark(pid))
                    await anyio.sleep(0.001)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            with pytest.raises(errors.MemoryLimitExceeded) as raised:
                await pool.run(f"new Uint8Array({size}).fill(1); return 1")
            tg.cancel_scope.cancel()
        await assert_pool_works(pool)
    assert raised.value.used is not None
    # One 5 ms sampling period is ~48 MiB of fill on a quiet machine; a starved sampler
    # lets more through (336 MiB seen beside two CPU hogs and two test suites). Far below
    # what the fill asks for (512 MiB, 2 GiB): the limit stopped it.
    assert 256 * MiB < raised.value.used <= (256 + 128) * MiB  # the worker's own reading
    assert peak <= (256 + 128) * MiB  # and what /proc saw from outside, until the worker exited


async def test_a_run_cannot_collect_the_data_of_a_run_beside_it() -> None:
    """The cross-tenant repro with both runs in one runtime at the same time."""
    planted, victim_done = anyio.Event(), anyio.Event()
    stolen: list[Any] = []

    async def mark() -> None:
        planted.set()

    async def wait() -> None:
        await victim_done.wait()

    async def attack(pool: RuntimePool) -> None:
        code = STEAL.replace('return "planted";', "await mark(); await wait(); return found;")
        stolen.append(await pool.run(code, api={"mark": mark, "wait": wait}))

    async with one_worker() as pool, anyio.create_task_group() as tg:
        tg.start_soon(attack, pool)
        await planted.wait()
        assert await pool.run(VICTIM, globals={"deps": {"text": CARD}}) > 1
        victim_done.set()
    assert stolen == [[]]


async def test_a_run_cannot_predict_math_random_of_a_run_beside_it() -> None:
    """Two runs in one runtime at the same moment draw from unrelated generators."""
    sampled, release = anyio.Event(), anyio.Event()
    draws: dict[str, list[float]] = {}

    async def gate() -> None:
        sampled.set()
        await release.wait()

    async def first(pool: RuntimePool) -> None:
        code = "const a = Array.from({ length: 6 }, Math.random); await gate(); return a"
        draws["first"] = await pool.run(code, api={"gate": gate})

    async with one_worker() as pool, anyio.create_task_group() as tg:
        tg.start_soon(first, pool)
        await sampled.wait()  # the first run is in flight, holding its generator
        for name in ("Math.random", "globalThis.Math.random"):
            draws[name] = await pool.run(SAMPLE.replace("RANDOM", name))
        release.set()
    predicted = xorshift.predict(draws["first"])
    assert not predicted & set(draws["Math.random"] + draws["globalThis.Math.random"])


@pytest.mark.timeout(60)
async def test_concurrent_runs_abandoning_sync_host_calls_share_one_thread_bound() -> None:
    release = threading.Event()

    def slow(i: int) -> int:
        release.wait(20)
        return i

    async def fire(pool: RuntimePool) -> None:
        code = "for (let i = 0; i < 40; i++) slow(i); return 1"
        assert await pool.run(code, api={"slow": slow}) == 1

    before = threading.active_count()
    try:
        async with RuntimePool(size=2, timeout=10.0) as pool:
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(fire, pool)
            # the host threads, plus the pool's own per-worker threads (child watchers)
            assert threading.active_count() - before <= DEFAULT_HOST_THREADS + 2 + 2 * pool.size
    finally:
        release.set()
