"""The pool's everyday behaviour: values in and out, host calls, logs, errors, lifecycle."""

from __future__ import annotations

import threading

import anyio
import pytest

from runtime_pool import Execution, LogLine, RuntimePool, errors

pytestmark = pytest.mark.anyio


async def test_run_returns_the_value_of_the_async_function_body() -> None:
    async with RuntimePool(size=1) as pool:
        assert await pool.run("return 1 + 1") == 2
        assert await pool.run("await null; return {a: [1, 'x', null, true]}") == {
            "a": [1, "x", None, True]
        }
        assert await pool.run("const x = 1;") is None


async def test_globals_are_visible_as_names_and_arrive_as_fresh_copies() -> None:
    deps = {"fetch_a": [1, 2], "nested": {"k": "v"}}
    async with RuntimePool(size=1) as pool:
        value = await pool.run(
            "deps.fetch_a.push(3); return [deps.fetch_a, deps.nested.k, ctx.n]",
            globals={"deps": deps, "ctx": {"n": 7}},
        )
    assert value == [[1, 2, 3], "v", 7]
    assert deps["fetch_a"] == [1, 2]


async def test_async_and_sync_host_functions_are_awaited_by_the_script() -> None:
    calls: list[tuple[str, object]] = []

    async def fetch_data(source: str) -> list[int]:
        await anyio.sleep(0.01)
        calls.append(("async", source))
        return [1, 2] if source == "a" else [10]

    def lookup(key: str, options: dict[str, int]) -> dict[str, object]:
        calls.append(("sync", threading.current_thread() is threading.main_thread()))
        return {"key": key, "size": options["size"]}

    async with RuntimePool(size=1) as pool:
        value = await pool.run(
            "const [a, b] = await Promise.all([fetch_data('a'), fetch_data('b')]);"
            "return {a, b, l: await lookup('k', {size: 3})};",
            api={"fetch_data": fetch_data, "lookup": lookup},
        )
    assert value == {"a": [1, 2], "b": [10], "l": {"key": "k", "size": 3}}
    assert sorted(calls[:2]) == [("async", "a"), ("async", "b")]
    assert calls[2] == ("sync", False)  # sync host functions run off the event loop


async def test_a_host_exception_reaches_the_script_as_an_error_with_only_its_message() -> None:
    def broken(x: int) -> int:
        raise KeyError(f"no record {x}")

    async with RuntimePool(size=1) as pool:
        value = await pool.run(
            "try { await broken(4); } catch (e) {"
            "  return [e instanceof Error, e.name, e.message, e.stack.includes('Traceback')];"
            "}",
            api={"broken": broken},
        )
    assert value == [True, "Error", "'no record 4'", False]


@pytest.mark.parametrize(
    "argument",
    ["Symbol('s')", "() => 1", "(() => { const o = {}; o.self = o; return o; })()", "new Map()"],
)
async def test_non_json_host_arguments_are_a_type_error_in_the_script(argument: str) -> None:
    received: list[object] = []
    async with RuntimePool(size=1) as pool:
        with pytest.raises(errors.RuntimePoolError) as caught:
            await pool.run(f"return await f({argument})", api={"f": received.append})
        assert await pool.run("return 'still fine'") == "still fine"
    assert isinstance(caught.value, errors.ScriptError | errors.ValueTooLarge)
    if isinstance(caught.value, errors.ScriptError):
        assert caught.value.name == "TypeError"
    assert received == []


async def test_execute_captures_console_output_per_run() -> None:
    async with RuntimePool(size=1) as pool:
        first = await pool.execute(
            "console.log('hello', {a: 1}); console.warn('careful'); console.error(1, 2);"
            "console.info('i'); return 5"
        )
        second = await pool.execute("return 6")
    assert isinstance(first, Execution)
    assert first.value == 5
    assert first.logs == (
        LogLine("log", 'hello {"a":1}'),
        LogLine("warn", "careful"),
        LogLine("error", "1 2"),
        LogLine("info", "i"),
    )
    assert first.duration > 0
    assert second.logs == ()


async def test_console_output_is_bounded_and_truncation_is_marked(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async with RuntimePool(size=1, max_log_lines=10) as pool:
        execution = await pool.execute("for (let i = 0; i < 1000; i++) console.log('line', i)")
    assert len(execution.logs) == 11
    assert execution.logs[-1] == LogLine("warn", "[console output truncated: 990 lines dropped]")
    assert "line" not in capfd.readouterr().out


async def test_logs_written_before_a_failure_travel_with_the_error() -> None:
    async with RuntimePool(size=1) as pool:
        with pytest.raises(errors.ScriptError) as caught:
            await pool.execute("console.log('before'); throw new RangeError('bad')")
    assert caught.value.name == "RangeError"
    assert caught.value.message == "bad"
    assert "RangeError: bad" in (caught.value.stack or "")
    assert caught.value.logs == (LogLine("log", "before"),)


async def test_a_syntax_error_is_a_script_error() -> None:
    async with RuntimePool(size=1) as pool:
        with pytest.raises(errors.ScriptError) as caught:
            await pool.run("return {{")
        assert caught.value.name == "SyntaxError"
        assert await pool.run("return 3") == 3


async def test_bad_inputs_are_refused_before_any_script_runs() -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    async with RuntimePool(size=1, max_value_bytes=1000) as pool:
        with pytest.raises(errors.ValueTooLarge):
            await pool.run("return 1", globals={"deps": {"big": "x" * 2000}})
        with pytest.raises(errors.ValueTooLarge):
            await pool.run("return 1", globals={"deps": cyclic})
        with pytest.raises(errors.InvalidValue):
            await pool.run("return 1", globals={"deps": {"when": object()}})
        with pytest.raises(ValueError, match="cannot be a JS global name"):
            await pool.run("return 1", globals={"class": 1})
        with pytest.raises(ValueError, match="both as globals and api"):
            await pool.run("return 1", globals={"f": 1}, api={"f": print})
        with pytest.raises(TypeError):
            await pool.run("return 1", api={"f": 3})  # type: ignore[dict-item]
        assert pool.statistics().runs == 0
        assert await pool.run("return 1") == 1


async def test_results_over_the_caps_are_value_too_large() -> None:
    async with RuntimePool(size=1, max_value_bytes=10_000) as pool:
        with pytest.raises(errors.ValueTooLarge):
            await pool.run("return 'x'.repeat(20000)")
        with pytest.raises(errors.ValueTooLarge):
            await pool.run("let v = 1; for (let i = 0; i < 200; i++) v = [v]; return v")
        with pytest.raises(errors.ValueTooLarge):
            await pool.run("const a = []; a.push(a); return a")
        assert await pool.run("return 'ok'") == "ok"


async def test_a_closed_or_unopened_pool_refuses_runs() -> None:
    pool = RuntimePool(size=1)
    assert not pool.is_open
    with pytest.raises(errors.PoolClosed):
        await pool.run("return 1")
    async with pool:
        assert pool.is_open
    assert not pool.is_open
    with pytest.raises(errors.PoolClosed):
        await pool.run("return 1")
    with pytest.raises(errors.PoolClosed):
        async with pool:
            pass


async def test_runs_beyond_size_times_concurrency_wait_for_a_worker() -> None:
    async with RuntimePool(size=2, concurrency=3) as pool:
        results: list[int] = []

        async def one(i: int) -> None:
            results.append(
                await pool.run(
                    "await new Promise(r => setTimeout(r, 20)); return n", globals={"n": i}
                )
            )

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(one, i)
        stats = pool.statistics()
    assert sorted(results) == list(range(10))
    assert stats.runs == 10
    assert stats.live == 2
    assert stats.waits >= 4  # at most 2 x 3 ran at once


def test_invalid_pool_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        RuntimePool(size=0)
    with pytest.raises(ValueError):
        RuntimePool(heap_limit=4 * 2**20)
    with pytest.raises(ValueError):
        RuntimePool(isolation="shared")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ("slow(); return 'done early'", None),
        ("await slow()", errors.ScriptTimeout),
    ],
    ids=["run_returned", "run_timed_out"],
)
async def test_a_host_call_still_running_when_its_run_ends_is_cancelled(
    script: str, error: type[Exception] | None
) -> None:
    entered, cancelled = anyio.Event(), anyio.Event()

    async def slow() -> None:
        entered.set()
        try:
            await anyio.sleep(30)
        finally:
            cancelled.set()

    async with RuntimePool(size=1) as pool:
        if error is None:
            assert await pool.run(script, api={"slow": slow}, timeout=5) == "done early"
        else:
            with pytest.raises(error):
                await pool.run(script, api={"slow": slow}, timeout=0.3)
        with anyio.fail_after(10):
            await entered.wait()
            await cancelled.wait()
        assert await pool.run("return 1") == 1


async def test_on_start_is_called_when_a_worker_takes_the_script_not_while_it_waits() -> None:
    order: list[str] = []
    running, release = anyio.Event(), anyio.Event()

    async def hold() -> None:
        order.append("first running")
        running.set()
        await release.wait()

    async with RuntimePool(size=1, concurrency=1) as pool, anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: pool.execute("await hold()", api={"hold": hold}, on_start=lambda: None)
        )
        with anyio.fail_after(10):
            await running.wait()
        tg.start_soon(
            lambda: pool.execute("return 1", on_start=lambda: order.append("second started"))
        )
        await anyio.sleep(0.2)  # the second run waits for the only worker meanwhile
        assert order == ["first running"]
        release.set()
    assert order == ["first running", "second started"]
