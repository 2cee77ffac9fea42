"""Isolation between runs on one reused runtime: nothing a run does reaches a later run.

Every test uses a pool of one worker, so "the next run" lands on the same worker
and, unless the pool chose to recycle it, on the same jsrun runtime. Host
functions record their calls in Python lists: a late call that never arrives is
proved absent by the list, not by a sleep in the test.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime_pool import Execution, RuntimePool, errors
from tests.pool_helpers import assert_pool_works, recorder

pytestmark = pytest.mark.anyio


def small_pool() -> RuntimePool:
    return RuntimePool(size=1, timeout=5.0)


WAIT_300_MS = "await new Promise((resolve) => setTimeout(resolve, 300));"


# ---- new globals ---------------------------------------------------------------------
# globalThis is frozen: runs in flight at once share it, so no run may add a global.


@pytest.mark.parametrize(
    "define",
    [
        "globalThis.leaked = 'run 1';",
        "leaked = 'run 1';",
        "(0, eval)('var leaked = \"run 1\"');",
        "(0, eval)('function leaked() { return 1 }');",
        "Object.defineProperty(globalThis, 'leaked', { value: 'run 1', configurable: true });",
        "Object.defineProperty(globalThis, 'leaked', { get: () => 'run 1', configurable: true });",
    ],
)
async def test_defining_a_global_is_a_type_error_and_nothing_reaches_the_next_run(
    define: str,
) -> None:
    async with small_pool() as pool:
        with pytest.raises(errors.ScriptError) as caught:
            await pool.run(define)
        assert caught.value.name in ("TypeError", "ReferenceError")  # undeclared name
        assert await pool.run("return [typeof leaked, 'leaked' in globalThis]") == [
            "undefined",
            False,
        ]
        await assert_pool_works(pool)


async def test_sloppy_mode_global_assignment_has_no_effect() -> None:
    async with small_pool() as pool:
        code = "Function('leaked = \"run 1\"')(); return typeof leaked"
        assert await pool.run(code) == "undefined"


@pytest.mark.parametrize("lock", ["preventExtensions", "seal", "freeze"])
async def test_locking_the_global_object_is_harmless(lock: str) -> None:
    async with small_pool() as pool:
        code = f"Object.{lock}(globalThis); return Object.isFrozen(globalThis)"
        assert await pool.run(code) is True
        await assert_pool_works(pool)


async def test_replacing_the_global_prototype_is_a_type_error() -> None:
    async with small_pool() as pool:
        code = """
            Object.setPrototypeOf(globalThis, new Proxy({ polluted: 'yes' }, {
                has: () => true,
                get: (target, key) => (key === Symbol.unscopables ? undefined : 'pwned'),
            }));
        """
        with pytest.raises(errors.ScriptError, match="TypeError"):
            await pool.run(code)
        assert await pool.run("return [typeof polluted, typeof anyUnknownName]") == [
            "undefined",
            "undefined",
        ]
        await assert_pool_works(pool)


async def test_inputs_of_one_run_are_not_visible_in_the_next() -> None:
    async with small_pool() as pool:
        assert await pool.run("return deps.secret", globals={"deps": {"secret": "s3"}}) == "s3"
        assert await pool.run("return [typeof deps, 'deps' in globalThis]") == ["undefined", False]


async def test_host_function_of_one_run_is_not_visible_in_the_next() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        assert await pool.run("return typeof secretFn", api={"secretFn": record}) == "function"
        code = "return [typeof secretFn, 'secretFn' in globalThis, typeof globalThis.secretFn]"
        assert await pool.run(code) == ["undefined", False, "undefined"]
        assert await pool.run("return await secretFn(2)", api={"secretFn": record}) == 1
        assert calls == [[2]]


# ---- built-ins and prototypes --------------------------------------------------------

PATCHES = [
    pytest.param(
        "Array.prototype.map = function () { return ['pwned'] };",
        "return [1, 2].map((x) => x * 2)",
        [2, 4],
        id="Array.prototype.map",
    ),
    pytest.param(
        "JSON.stringify = () => 'pwned';",
        "return JSON.stringify({ a: 1 })",
        '{"a":1}',
        id="JSON.stringify",
    ),
    pytest.param(
        "JSON.parse = () => 'pwned';",
        "return JSON.parse('[1]')",
        [1],
        id="JSON.parse",
    ),
    pytest.param(
        "Function.prototype.call = function () { return 'pwned' };",
        "return (function () { return this.v }).call({ v: 3 })",
        3,
        id="Function.prototype.call",
    ),
    pytest.param(
        "Function.prototype.apply = function () { return 'pwned' };",
        "return Math.max.apply(null, [1, 5, 2])",
        5,
        id="Function.prototype.apply",
    ),
    pytest.param(
        "Object.prototype.polluted = 'yes';",
        "return ({}).polluted ?? null",
        None,
        id="Object.prototype-assignment",
    ),
    pytest.param(
        "Object.defineProperty(Object.prototype, 'polluted',"
        " { get() { return 'yes' }, configurable: true });",
        "return ({}).polluted ?? null",
        None,
        id="Object.prototype-accessor",
    ),
    pytest.param(
        "Object.assign(Object.prototype, { isAdmin: true });",
        "return ({}).isAdmin ?? null",
        None,
        id="Object.prototype-assign",
    ),
    pytest.param(
        'JSON.parse(\'{"__proto__": {"isAdmin": true}}\');'
        "Object.prototype.__proto__ = { isAdmin: true };",
        "return ({}).isAdmin ?? null",
        None,
        id="Object.prototype.__proto__",
    ),
    pytest.param(
        "Array.prototype.push = function () { return -1 };",
        "const a = []; a.push(7); return a",
        [7],
        id="Array.prototype.push",
    ),
    pytest.param(
        "Array.prototype[Symbol.iterator] = function* () { yield 'pwned' };",
        "return [...[1, 2]]",
        [1, 2],
        id="Array.prototype-iterator",
    ),
    pytest.param(
        "Promise.prototype.then = function () { return 'pwned' };",
        "return await Promise.resolve(5)",
        5,
        id="Promise.prototype.then",
    ),
    pytest.param(
        "String.prototype.toUpperCase = () => 'pwned';",
        "return 'ab'.toUpperCase()",
        "AB",
        id="String.prototype.toUpperCase",
    ),
    pytest.param(
        "Math.random = () => 4;",
        "return Math.random() < 1",
        True,
        id="Math.random",
    ),
    pytest.param(
        "globalThis.Array = function () { return 'pwned' };",
        "return Array.isArray(Array(2)) && Array(2).length",
        2,
        id="global-Array",
    ),
    pytest.param(
        "delete globalThis.JSON;",
        "return typeof JSON",
        "object",
        id="delete-JSON",
    ),
    pytest.param(
        "Error.prepareStackTrace = () => 'pwned'; Error.stackTraceLimit = 0;",
        "return [new Error('x').stack.startsWith('Error: x'), Error.stackTraceLimit]",
        [True, 10],
        id="Error-stack-hooks",
    ),
    pytest.param(
        "Object.freeze = (o) => o;",
        "return Object.isFrozen(Object.freeze({}))",
        True,
        id="Object.freeze",
    ),
    pytest.param(
        "Object.getPrototypeOf(async function () {}).constructor = () => 'pwned';",
        "return typeof (async () => {}).constructor('return 1')",
        "function",
        id="AsyncFunction",
    ),
    pytest.param(
        "setTimeout = () => 'pwned'; console.log = () => 'pwned';",
        "console.log('hi'); return typeof setTimeout(() => {}, 0)",
        "number",
        id="timers-and-console",
    ),
]


@pytest.mark.parametrize(("patch", "probe", "expected"), PATCHES)
async def test_patched_builtin_does_not_reach_the_next_run(
    patch: str, probe: str, expected: Any
) -> None:
    async with small_pool() as pool:
        # Strict mode first (throws on a frozen target), then sloppy mode (fails silently).
        await pool.run(f"try {{ {patch} }} catch (e) {{}} return 1")
        await pool.run(f"try {{ Function({patch!r})() }} catch (e) {{}} return 1")
        assert await pool.run(probe) == expected
        await assert_pool_works(pool)


@pytest.mark.parametrize(("patch", "probe", "expected"), PATCHES)
async def test_patching_a_builtin_has_no_effect_even_within_the_run(
    patch: str, probe: str, expected: Any
) -> None:
    async with small_pool() as pool:
        code = f"try {{ Function({patch!r})() }} catch (e) {{}}\n{probe}"
        assert await pool.run(code) == expected


# Everything the host-call glue (ours and jsrun's) might touch, patched at once.
PATCH_EVERYTHING = """
    const attempts = [
        () => { Array.prototype.map = function () { return ['pwned'] } },
        () => { Array.prototype.push = function () { return 0 } },
        () => { Array.prototype.join = function () { return 'pwned' } },
        () => { Array.isArray = () => false },
        () => { Array.from = () => ['pwned'] },
        () => { Array.prototype[Symbol.iterator] = function* () { yield 'pwned' } },
        () => { JSON.stringify = () => '["pwned"]' },
        () => { JSON.parse = () => 'pwned' },
        () => { Function.prototype.call = function () { return 'pwned' } },
        () => { Function.prototype.apply = function () { return 'pwned' } },
        () => { Function.prototype.bind = function () { return () => 'pwned' } },
        () => { Reflect.apply = () => 'pwned' },
        () => { Object.keys = () => [] },
        () => { Object.entries = () => [] },
        () => { Object.defineProperty = () => {} },
        () => { Object.getPrototypeOf = () => null },
        () => { Object.prototype.toJSON = function () { return 'pwned' } },
        () => { Object.defineProperty(Object.prototype, '0', { set() {}, get: () => 'pwned' }) },
        () => { Object.defineProperty(Object.prototype, 'then', { get: () => (r) => r('pwned') }) },
        () => { Map.prototype.get = () => 'pwned' },
        () => { Map.prototype.set = () => {} },
        () => { Set.prototype.has = () => true },
        () => { Set.prototype.add = () => {} },
        () => { Promise.prototype.then = function () { return 'pwned' } },
        () => { Promise.resolve = () => 'pwned' },
        () => { Promise.prototype.constructor = function () {} },
        () => { String.prototype.slice = () => 'pwned' },
        () => { String.prototype.toString = () => 'pwned' },
        () => { Number.isFinite = () => false },
        () => { Date.prototype.toISOString = () => 'pwned' },
        () => { ArrayBuffer.isView = () => true },
        () => { Symbol.prototype.toString = () => 'pwned' },
        () => { Object.setPrototypeOf(globalThis, new Proxy({}, { has: () => true })) },
        () => { globalThis.prepare = () => 'pwned'; globalThis.revive = () => 'pwned' },
        () => { globalThis.ops = {}; globalThis.core = {} },
        () => { Function('Object.prototype.toJSON = function () { return "pwned" }')() },
    ];
    let applied = 0;
    for (const attempt of attempts) {
        try { attempt(); applied += 1 } catch (e) {}
    }
"""


async def test_host_call_after_patching_everything_carries_exact_arguments() -> None:
    calls: list[list[Any]] = []

    async def echo(*args: Any) -> Any:
        calls.append(list(args))
        return {"back": [1, "two", None, {"n": 3.5}]}

    async with small_pool() as pool:
        code = (
            PATCH_EVERYTHING
            + "return await echo(1, 'two', { three: [3, { four: 4 }] }, null, true, [], {});"
        )
        value = await pool.run(code, api={"echo": echo})
        assert calls == [[1, "two", {"three": [3, {"four": 4}]}, None, True, [], {}]]
        assert value == {"back": [1, "two", None, {"n": 3.5}]}
        await assert_pool_works(pool)


async def test_patches_from_an_earlier_run_do_not_reach_the_next_runs_host_call() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        await pool.run(PATCH_EVERYTHING + "return applied")
        code = "const n = await record([1, 2], { a: 'b' }, 'c'); return [n, [1, 2].map((x) => x)]"
        assert await pool.run(code, api={"record": record}) == [1, [1, 2]]
        assert calls == [[[1, 2], {"a": "b"}, "c"]]


async def test_patched_array_map_does_not_reach_next_runs_host_call() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        patch = "Array.prototype.map = function () { return ['rewritten'] };"
        await pool.run(f"try {{ {patch} }} catch (e) {{}} return 1")
        await pool.run(f"Function({patch!r})(); return 1")
        await pool.run("await record('genuine', 2)", api={"record": record})
        assert calls == [["genuine", 2]]


# ---- the override mistake: ordinary code still works on frozen intrinsics ------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(
            """
            class NotFound extends Error {
                constructor(what) {
                    super(what); this.name = 'NotFound'; this.message = 'no ' + what;
                }
            }
            const e = new NotFound('user');
            return [e.name, e.message, String(e), e instanceof NotFound, e instanceof Error];
            """,
            ["NotFound", "no user", "NotFound: no user", True, True],
            id="error-subclass-sets-name-and-message",
        ),
        pytest.param(
            "const e = new TypeError('t'); e.name = 'Custom'; e.stack = 'mine';"
            "return [String(e), e.stack]",
            ["Custom: t", "mine"],
            id="error-instance-name-and-stack",
        ),
        pytest.param(
            "const o = {}; o.toString = () => 'mine'; o.valueOf = () => 41;"
            "o.hasOwnProperty = () => 'h'; return [String(o), o + 1, o.hasOwnProperty('x')]",
            ["mine", 42, "h"],
            id="object-toString-valueOf-hasOwnProperty",
        ),
        pytest.param(
            "class X { constructor() { this.constructor = 1 } } return new X().constructor",
            1,
            id="instance-constructor",
        ),
        pytest.param(
            "function F() {} F.prototype.toString = function () { return 'F!' };"
            "return String(new F())",
            "F!",
            id="function-prototype-toString",
        ),
        pytest.param(
            "const f = function () {}; f.toString = () => 'src'; f.call = 'c'; f.name2 = 1;"
            "return [String(f), f.call]",
            ["src", "c"],
            id="function-instance-toString-call",
        ),
        pytest.param(
            "const a = [3, 1]; a.push = function () { return 'custom' };"
            "a.toString = () => 'arr'; return [a.push(1), String(a), a.length]",
            ["custom", "arr", 2],
            id="array-instance-push-toString",
        ),
        pytest.param(
            "const o = Object.assign({}, { toString: 1, constructor: 2 }); return o",
            {"toString": 1, "constructor": 2},
            id="object-assign-over-prototype-names",
        ),
        pytest.param(
            "const p = Promise.resolve(2); const mine = (f) => f(40); p.then = mine;"
            "return [p.then === mine, await p]",
            [True, 2],
            id="promise-instance-then",
        ),
    ],
)
async def test_override_mistake_cases_still_work_for_ordinary_code(
    code: str, expected: Any
) -> None:
    async with small_pool() as pool:
        assert await pool.run(code) == expected
        assert await pool.run(code) == expected  # and again on the reused runtime


async def test_assigning_to_a_frozen_intrinsic_itself_is_a_type_error() -> None:
    async with small_pool() as pool:
        with pytest.raises(errors.ScriptError) as caught:
            await pool.run("Object.prototype.toString = () => 'pwned'")
        assert caught.value.name == "TypeError"
        await assert_pool_works(pool)


# ---- timers --------------------------------------------------------------------------


async def test_timers_fire_and_call_host_functions_within_their_own_run() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        code = """
            await new Promise((resolve) => {
                let n = 0;
                const id = setInterval(async () => {
                    const i = n++;
                    if (i === 2) clearInterval(id);
                    await record('tick', i);
                    if (i === 2) resolve();
                }, 5);
            });
            await new Promise((resolve) => setTimeout(() => record('once').then(resolve), 5));
            return 'done';
        """
        assert await pool.run(code, api={"record": record}) == "done"
        assert calls == [["tick", 0], ["tick", 1], ["tick", 2], ["once"]]


async def test_timers_left_running_never_call_a_host_function_after_the_run() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        code = """
            setTimeout(() => record('late timeout'), 20);
            setTimeout(() => record('late zero timeout'), 0);
            setInterval(() => record('late interval'), 5);
            setTimeout(async () => { await null; record('late after await') }, 0);
            return 'left';
        """
        assert await pool.run(code, api={"record": record}) == "left"
        assert calls == []
        # A later run that waits gives any surviving timer every chance to fire.
        assert await pool.run(WAIT_300_MS + " return 2", api={"record": record}) == 2
        assert calls == []
        await assert_pool_works(pool)


async def test_timer_from_an_earlier_run_does_not_fire_into_a_later_run() -> None:
    async with small_pool() as pool:
        await pool.run(
            "setTimeout(() => { globalThis.fromOldTimer = true }, 50);"
            "setInterval(() => { globalThis.fromOldInterval = true }, 10);"
            "return 1"
        )
        code = WAIT_300_MS + " return [typeof fromOldTimer, typeof fromOldInterval]"
        assert await pool.run(code) == ["undefined", "undefined"]


async def test_clear_timeout_cannot_clear_a_later_runs_timer() -> None:
    async with small_pool() as pool:
        await pool.run("for (let i = 0; i < 1000; i++) clearTimeout(i); return 1")
        code = "return await new Promise((resolve) => setTimeout(() => resolve('fired'), 10))"
        assert await pool.run(code) == "fired"


# ---- promises and host calls left pending --------------------------------------------


async def test_host_call_still_pending_at_run_end_is_cancelled() -> None:
    events: list[str] = []
    _, ping = recorder()

    async def slow() -> None:
        events.append("started")
        try:
            await anyio.sleep_forever()
        finally:
            events.append("cancelled")

    async with small_pool() as pool:
        code = "slow(); await ping(); return 'returned'"
        assert await pool.run(code, api={"slow": slow, "ping": ping}) == "returned"
        assert events == ["started", "cancelled"]
        await assert_pool_works(pool)


async def test_promise_chain_on_a_pending_host_call_never_calls_host_after_the_run() -> None:
    calls, record = recorder()
    _, ping = recorder()
    release = anyio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow done"

    async with small_pool() as pool:
        code = """
            slow().then(() => record('late resolve'), () => record('late reject'))
                  .finally(() => record('late finally'));
            await ping();
            return 'returned';
        """
        api = {"slow": slow, "ping": ping, "record": record}
        assert await pool.run(code, api=api) == "returned"
        release.set()
        assert await pool.run(WAIT_300_MS + " return 2", api={"record": record}) == 2
        assert calls == []
        await assert_pool_works(pool)


async def test_promise_resolved_by_a_later_timer_never_calls_host_after_the_run() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        code = """
            new Promise((resolve) => setTimeout(resolve, 30)).then(() => record('late'));
            return 1;
        """
        await pool.run(code, api={"record": record})
        await pool.run(WAIT_300_MS + " return 2", api={"record": record})
        assert calls == []


async def test_microtask_chain_outliving_its_run_sets_no_global_for_the_next_run() -> None:
    async with small_pool() as pool:
        code = """
            let n = 0;
            (function step() {
                if (n++ < 1000) Promise.resolve().then(step);
                else globalThis.fromOldMicrotasks = 'run 1';
            })();
            return 'returned';
        """
        assert await pool.run(code) == "returned"
        assert await pool.run("return typeof fromOldMicrotasks") == "undefined"


async def test_atomics_wait_async_callback_does_not_reach_a_later_run() -> None:
    async with small_pool() as pool:
        code = """
            const cell = new Int32Array(new SharedArrayBuffer(4));
            Atomics.waitAsync(cell, 0, 0, 100).value.then(() => { globalThis.fromWaitAsync = 1 });
            return 'returned';
        """
        assert await pool.run(code) == "returned"
        assert await pool.run(WAIT_300_MS + " return typeof fromWaitAsync") == "undefined"


async def test_webassembly_compile_callback_does_not_reach_a_later_run() -> None:
    async with small_pool() as pool:
        code = """
            const empty = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);
            WebAssembly.compile(empty).then(() => { globalThis.fromWasmCompile = 1 });
            return 'returned';
        """
        assert await pool.run(code) == "returned"
        assert await pool.run(WAIT_300_MS + " return typeof fromWasmCompile") == "undefined"


# ---- legacy RegExp statics -----------------------------------------------------------


async def test_last_regexp_match_of_a_run_is_not_visible_in_the_next() -> None:
    async with small_pool() as pool:
        await pool.run("/token=(\\w+)/.exec('token=hunter2'); return 1")
        code = "return [RegExp.$1, RegExp.lastMatch, RegExp.input, RegExp['$_']]"
        leaked = await pool.run(code)
        assert "hunter2" not in repr(leaked)


async def test_regexp_input_written_by_a_run_is_not_visible_in_the_next() -> None:
    async with small_pool() as pool:
        await pool.run("try { RegExp.input = 'planted by run 1' } catch (e) {} return 1")
        assert await pool.run("return String(RegExp.input)") != "planted by run 1"


# ---- FinalizationRegistry ------------------------------------------------------------

GARBAGE = "for (let i = 0; i < 200; i++) new Array(1e5).fill(i);"


async def test_finalization_callbacks_fire_within_their_own_run() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        code = f"""
            const registry = new FinalizationRegistry((held) => record('finalized', held));
            (function () {{ for (let i = 0; i < 10; i++) registry.register({{ i }}, i) }})();
            {GARBAGE}
            await new Promise((resolve) => setTimeout(resolve, 100));
            return registry.constructor === FinalizationRegistry;
        """
        assert await pool.run(code, api={"record": record}) is True
        assert len(calls) > 0
        assert all(call[0] == "finalized" for call in calls)


async def test_finalization_callbacks_never_call_a_host_function_after_the_run() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        code = """
            const registry = new FinalizationRegistry((held) => {
                globalThis.fromOldFinalizer = held;
                record('late finalizer', held);
            });
            (function () { for (let i = 0; i < 10; i++) registry.register({ i }, i) })();
            // Keep the registry alive well into the next run if anything can.
            const cell = new Int32Array(new SharedArrayBuffer(4));
            Atomics.waitAsync(cell, 0, 0, 1000).value.then(() => registry);
            setTimeout(() => registry, 1000);
            return 'returned';
        """
        assert await pool.run(code, api={"record": record}) == "returned"
        later = GARBAGE + WAIT_300_MS + GARBAGE + " return typeof fromOldFinalizer"
        assert await pool.run(later, api={"record": record}) == "undefined"
        assert calls == []
        await assert_pool_works(pool)


# ---- old host functions --------------------------------------------------------------


async def test_host_function_stashed_by_an_earlier_run_cannot_be_called() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        code = """
            const stash = (holder) => { try { holder.oldRecord = record } catch (e) {} };
            stash(globalThis);
            stash(Object.prototype);
            stash(Object.getPrototypeOf(globalThis));
            stash(Function.prototype);
            try { Object.defineProperty(globalThis, 'pinned', { value: record }) } catch (e) {}
            // Stash again after the run's clean-up, through a microtask chain.
            let n = 0;
            (function step() {
                if (n++ < 1000) Promise.resolve().then(step);
                else stash(globalThis);
            })();
            return 'stashed';
        """
        assert await pool.run(code, api={"record": record}) == "stashed"
        probe = """
            const found = [globalThis.oldRecord, globalThis.pinned, ({}).oldRecord,
                           (function () {}).oldRecord].filter((f) => typeof f === 'function');
            const outcomes = [];
            for (const f of found) {
                try { await f('late call'); outcomes.push('called') }
                catch (e) { outcomes.push(e.message) }
            }
            return outcomes;
        """
        outcomes = await pool.run(probe, api={"record": record})
        assert "called" not in outcomes
        assert all("after its run ended" in text for text in outcomes)
        assert calls == []
        await assert_pool_works(pool)


async def test_host_function_kept_inside_its_run_fails_once_the_run_ended() -> None:
    calls, record = recorder()
    async with small_pool() as pool:
        code = """
            const cell = new Int32Array(new SharedArrayBuffer(4));
            Atomics.waitAsync(cell, 0, 0, 50).value
                .then(() => record('late waitAsync'))
                .catch((e) => { globalThis.lateError = e.message });
            return 'returned';
        """
        await pool.run(code, api={"record": record})
        await pool.run(WAIT_300_MS + " return 2", api={"record": record})
        assert calls == []


async def test_error_thrown_by_an_earlier_runs_leftover_callback_does_not_fail_a_later_run() -> (
    None
):
    async with small_pool() as pool:
        code = """
            const cell = new Int32Array(new SharedArrayBuffer(4));
            Atomics.waitAsync(cell, 0, 0, 50).value.then(() => { throw new Error('from run 1') });
            return 'returned';
        """
        assert await pool.run(code) == "returned"
        assert await pool.run(WAIT_300_MS + " return 'run 2 unharmed'") == "run 2 unharmed"
        await assert_pool_works(pool)


# ---- concurrent variants: two runs in flight at once on one runtime --------------------


class Meeting:
    """Async host functions that hold runs until every party has arrived."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.all_in = anyio.Event()

    async def meet(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_in.set()
        with anyio.fail_after(10):
            await self.all_in.wait()


def concurrent_pool() -> RuntimePool:
    return RuntimePool(size=1, concurrency=4, timeout=5.0)


async def both(
    pool: RuntimePool, a: tuple[str, dict[str, Any]], b: tuple[str, dict[str, Any]]
) -> tuple[Execution, Execution]:
    """Run two scripts at once on the pool's one worker; return both executions."""
    results: dict[str, Execution] = {}

    async def one(name: str, code: str, options: dict[str, Any]) -> None:
        results[name] = await pool.execute(code, **options)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "a", *a)
        tg.start_soon(one, "b", *b)
    return results["a"], results["b"]


@pytest.mark.parametrize(("patch", "probe", "expected"), PATCHES)
async def test_patched_builtin_does_not_reach_a_run_in_flight_at_the_same_time(
    patch: str, probe: str, expected: Any
) -> None:
    meeting = Meeting(2)
    api = {"meet": meeting.meet}
    patcher = f"try {{ {patch} }} catch (e) {{}} try {{ Function({patch!r})() }} catch (e) {{}}"
    async with concurrent_pool() as pool:
        _, probed = await both(
            pool,
            (patcher + " await meet(); return 1", {"api": api}),
            (f"await meet(); {probe}", {"api": api}),
        )
        assert probed.value == expected


async def test_runs_in_flight_at_once_cannot_see_each_others_inputs_logs_or_timers() -> None:
    meeting = Meeting(2)
    b_done = anyio.Event()

    async def wait_for_b() -> None:
        with anyio.fail_after(10):
            await b_done.wait()

    async def secret_fn() -> str:
        return "A only"

    run_a = """
        console.log('A line');
        let fired = 0;
        for (let i = 0; i < 20; i++) setTimeout(() => { fired++ }, 300);
        await meet();
        await waitForB();
        await new Promise((resolve) => setTimeout(resolve, 400));
        return [fired, deps.secret, await secretFn()];
    """
    run_b = """
        await meet();
        for (let i = 0; i < 1000; i++) { clearTimeout(i); clearInterval(i); }
        const mine = setTimeout(() => {}, 10);
        console.log('B line');
        const names = Object.getOwnPropertyNames(globalThis);
        return [typeof deps, typeof secretFn, typeof waitForB, 'deps' in globalThis,
                names.filter((k) => /secret|deps|wait/i.test(k)).length, mine];
    """

    async def run_b_then_release(pool: RuntimePool) -> Any:
        try:
            return await pool.execute(run_b, api={"meet": meeting.meet})
        finally:
            b_done.set()

    async with concurrent_pool() as pool:
        a_api = {"meet": meeting.meet, "waitForB": wait_for_b, "secretFn": secret_fn}
        results: dict[str, Any] = {}

        async def a() -> None:
            results["a"] = await pool.execute(
                run_a, globals={"deps": {"secret": "A-secret"}}, api=a_api
            )

        async def b() -> None:
            results["b"] = await run_b_then_release(pool)

        async with anyio.create_task_group() as tg:
            tg.start_soon(a)
            tg.start_soon(b)
    assert results["a"].value == [20, "A-secret", "A only"]  # B cleared none of A's timers
    assert results["b"].value == ["undefined", "undefined", "undefined", False, 0, 1]
    assert [line.text for line in results["a"].logs] == ["A line"]
    assert [line.text for line in results["b"].logs] == ["B line"]


async def test_a_host_function_cannot_be_stashed_for_a_run_in_flight_at_the_same_time() -> None:
    meeting = Meeting(2)
    calls, record = recorder()
    stasher = """
        const stash = (holder, key) => { try { holder[key] = record } catch (e) {} };
        for (const holder of [globalThis, Object.prototype, Function.prototype, Array.prototype,
                              Object.getPrototypeOf(globalThis), Promise.prototype, console]) {
            stash(holder, 'oldRecord');
        }
        try { Object.defineProperty(globalThis, 'pinned', { value: record }) } catch (e) {}
        await meet();
        return 'stashed';
    """
    finder = """
        await meet();
        const places = [globalThis.oldRecord, globalThis.pinned, ({}).oldRecord,
                        (function () {}).oldRecord, [].oldRecord, console.oldRecord,
                        Promise.resolve().oldRecord];
        return places.filter((f) => typeof f === 'function').length;
    """
    async with concurrent_pool() as pool:
        _, found = await both(
            pool,
            (stasher, {"api": {"meet": meeting.meet, "record": record}}),
            (finder, {"api": {"meet": meeting.meet}}),
        )
    assert found.value == 0
    assert calls == []


async def test_patching_everything_does_not_touch_the_host_call_of_a_run_in_flight() -> None:
    meeting = Meeting(2)
    calls: list[list[Any]] = []

    async def echo(*args: Any) -> Any:
        calls.append(list(args))
        return {"back": [1, "two", None]}

    async with concurrent_pool() as pool:
        _, called = await both(
            pool,
            (PATCH_EVERYTHING + " await meet(); return applied", {"api": {"meet": meeting.meet}}),
            (
                "await meet(); return await echo(1, 'two', { three: [3] }, null, true, [], {})",
                {"api": {"meet": meeting.meet, "echo": echo}},
            ),
        )
    assert called.value == {"back": [1, "two", None]}
    assert calls == [[1, "two", {"three": [3]}, None, True, [], {}]]
