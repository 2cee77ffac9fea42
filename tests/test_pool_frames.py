"""The pool's reading of worker frames from a pipe, whatever the pipe's reads cut them into."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from runtime_pool import _protocol
from runtime_pool._process import WorkerProcess

pytestmark = pytest.mark.anyio


class _Pipe:
    """A worker's stdout that gives back the given chunks, one per read, then ends."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.asked: list[int] = []

    async def receive(self, max_bytes: int = 65536) -> bytes:
        self.asked.append(max_bytes)
        if not self._chunks:
            raise anyio.EndOfStream
        return self._chunks.pop(0)


def _worker(chunks: list[bytes], max_frame: int = 2**20) -> tuple[WorkerProcess, _Pipe]:
    pipe = _Pipe(chunks)
    process: Any = SimpleNamespace(stdout=pipe, stdin=object(), stderr=None, pid=0)
    return WorkerProcess(process, max_frame=max_frame), pipe


FRAMES = [
    ({"op": "result", "id": 1, "kind": "ok"}, b"[1,2]"),
    ({"op": "log", "id": 2, "level": "log", "text": "\u00e9"}, b""),
    ({"op": "call", "id": 1, "call": 0, "name": "f"}, b'{"x":"' + b"y" * 70_000 + b'"}'),
]


async def _read_all(worker: WorkerProcess) -> list[tuple[dict[str, Any], bytes]]:
    frames = []
    while True:
        try:
            frames.append(await worker.receive())
        except anyio.EndOfStream:
            return frames


@pytest.mark.parametrize("cut", [1, 3, 8, 13, 4096, 10**9])
async def test_frames_come_out_whole_and_in_order_however_the_reads_cut_them(cut: int) -> None:
    data = b"".join(_protocol.encode(header, payload) for header, payload in FRAMES)
    worker, _ = _worker([data[i : i + cut] for i in range(0, len(data), cut)])
    assert await _read_all(worker) == FRAMES


async def test_a_large_frame_is_asked_of_the_pipe_in_one_read() -> None:
    frame = _protocol.encode(*FRAMES[2])
    worker, pipe = _worker([frame[:100], frame[100:]])
    assert await worker.receive() == FRAMES[2]
    assert pipe.asked[1] >= len(frame) - 100


async def test_a_pipe_that_ends_inside_a_frame_is_an_incomplete_read() -> None:
    frame = _protocol.encode(*FRAMES[0])
    worker, _ = _worker([frame, frame[:-1]])
    assert await worker.receive() == FRAMES[0]
    with pytest.raises(anyio.IncompleteRead):
        await worker.receive()


async def test_a_frame_over_the_limit_is_refused_before_it_is_read() -> None:
    frame = _protocol.encode(*FRAMES[2])
    worker, pipe = _worker([frame[:8]], max_frame=1000)
    with pytest.raises(ValueError, match="frame of"):
        await worker.receive()
    assert len(pipe.asked) == 1


async def test_a_header_that_is_not_a_frame_header_is_refused() -> None:
    head = b'["op"]'
    worker, _ = _worker([_protocol._PREFIX.pack(len(head), 0) + head])
    with pytest.raises(ValueError, match="malformed"):
        await worker.receive()
