"""A run's inbox: frames in order, the end after the queued ones, backpressure, and
nothing kept once its driver has gone."""

from __future__ import annotations

import anyio
import pytest

from runtime_pool._inbox import Frame, RunInbox

pytestmark = pytest.mark.anyio


def frame(n: int) -> Frame:
    return {"op": "log", "n": n}, b""


async def test_frames_arrive_in_order_and_the_end_comes_after_the_queued_ones() -> None:
    inbox = RunInbox(4)
    for n in range(3):
        inbox.send_nowait(frame(n))
    inbox.finish()
    assert [f[0]["n"] async for f in inbox] == [0, 1, 2]
    with pytest.raises(anyio.EndOfStream):
        await inbox.receive()


async def test_a_waiting_driver_wakes_for_a_frame_and_for_the_end() -> None:
    inbox = RunInbox(4)
    got: list[object] = []

    async def drive() -> None:
        got.extend([(await inbox.receive())[0]["n"], [f async for f in inbox]])

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(drive)
            await anyio.wait_all_tasks_blocked()
            inbox.send_nowait(frame(7))
            await anyio.wait_all_tasks_blocked()
            inbox.finish()
    assert got == [7, []]


async def test_a_full_inbox_refuses_send_nowait_and_send_waits_for_room() -> None:
    inbox = RunInbox(1)
    inbox.send_nowait(frame(0))
    with pytest.raises(anyio.WouldBlock):
        inbox.send_nowait(frame(1))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbox.send, frame(1))
            await anyio.wait_all_tasks_blocked()
            assert (await inbox.receive())[0]["n"] == 0  # makes room: the sender goes on
        assert (await inbox.receive())[0]["n"] == 1


async def test_once_closed_by_its_driver_frames_are_dropped_and_a_waiting_sender_goes_on() -> None:
    inbox = RunInbox(1)
    inbox.send_nowait(frame(0))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbox.send, frame(1))
            await anyio.wait_all_tasks_blocked()
            inbox.close()
    inbox.send_nowait(frame(2))
    with pytest.raises(anyio.EndOfStream):
        await inbox.receive()


async def test_frames_after_the_end_are_dropped() -> None:
    inbox = RunInbox(2)
    inbox.finish()
    inbox.send_nowait(frame(0))
    with pytest.raises(anyio.EndOfStream):
        await inbox.receive()
