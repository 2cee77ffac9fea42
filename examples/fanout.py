"""Data processing: fan out over chunks in parallel, then merge.

A day of sensor readings sits in an object store as ``CHUNKS`` CSV parts. One
``chunk`` step fans out over the parts with ``for_each`` (read one, apply the
user's transformation from the shared ``lib``, compute partial statistics), and
``merge`` gets the array of partial results, in order::

    chunk (for each part: 0..7) --> merge

The engine gets an explicit pool of 2 sandboxed workers; each serves many steps
at once (they interleave while awaiting the store), so all 8 chunks' reads
overlap; the object store counts how many did.

Run it: ``python examples/fanout.py``.
"""

from __future__ import annotations

import logging
import random
import sys
import time

import anyio
import structlog

from actors import Engine, Workflow
from runtime_pool import RuntimePool

CHUNKS = 8
LINES_PER_CHUNK = 500
SENSORS = ("boiler", "freezer", "lab", "server_room")
BASELINE_C = {"boiler": 71.0, "freezer": -18.0, "lab": 21.0, "server_room": 24.0}


class ObjectStore:
    """An S3-like store: ``object_get(bucket, key)`` returns the object's text."""

    def __init__(self, objects: dict[tuple[str, str], str]) -> None:
        self.objects = objects
        self.reads: list[tuple[float, float]] = []

    async def object_get(self, bucket: str, key: str) -> str:
        start = time.monotonic()
        await anyio.sleep(0.08)  # first byte latency of an object store
        self.reads.append((start, time.monotonic()))
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise FileNotFoundError(f"s3://{bucket}/{key}: NoSuchKey") from None

    def max_concurrent_reads(self) -> int:
        edges = sorted([(s, 1) for s, _ in self.reads] + [(e, -1) for _, e in self.reads])
        running = peak = 0
        for _, step in edges:
            running += step
            peak = max(peak, running)
        return peak


def make_readings(day: str) -> dict[tuple[str, str], str]:
    """CHUNKS parts of CSV ``sensor,timestamp,celsius``; a few lines are malformed."""
    rng = random.Random(day)
    objects = {}
    for part in range(CHUNKS):
        lines = []
        for n in range(LINES_PER_CHUNK):
            sensor = rng.choice(SENSORS)
            celsius = round(BASELINE_C[sensor] + rng.gauss(0, 1.5), 2)
            stamp = f"{day}T{(part * LINES_PER_CHUNK + n) // 240 % 24:02d}:00:00Z"
            lines.append(f"{sensor},{stamp},{'n/a' if rng.random() < 0.003 else celsius}")
        objects[("telemetry", f"readings/{day}/part-{part:04d}.csv")] = "\n".join(lines)
    return objects


# The user's transformation, shared by every element as lib.transform.
LIB_JS = "function transform(celsius) { return celsius * 9 / 5 + 32; } // to Fahrenheit"

# The parts: 0 .. chunks - 1, one element each.
PARTS_JS = "Array.from({length: ctx.event.chunks}, (_, part) => part)"

CHUNK_JS = """
const key = `readings/${ctx.event.day}/part-${String(item).padStart(4, "0")}.csv`;
const text = await object_get("telemetry", key);
const stats = {};
let lines = 0, malformed = 0;
for (const line of text.split("\\n")) {
  lines++;
  const [sensor, , raw] = line.split(",");
  const celsius = Number(raw);
  if (!sensor || raw === undefined || !Number.isFinite(celsius)) { malformed++; continue; }
  const value = lib.transform(celsius);
  const s = (stats[sensor] ??= { count: 0, sum: 0, min: value, max: value });
  s.count++;
  s.sum += value;
  s.min = Math.min(s.min, value);
  s.max = Math.max(s.max, value);
}
return { chunk: item, lines, malformed, stats };
"""

MERGE_JS = """
const merged = {};
let lines = 0, malformed = 0;
for (const part of deps.chunk) {
  lines += part.lines;
  malformed += part.malformed;
  for (const [sensor, s] of Object.entries(part.stats)) {
    const m = (merged[sensor] ??= { count: 0, sum: 0, min: s.min, max: s.max });
    m.count += s.count;
    m.sum += s.sum;
    m.min = Math.min(m.min, s.min);
    m.max = Math.max(m.max, s.max);
  }
}
const round = (x) => Math.round(x * 10) / 10;
const sensors = Object.fromEntries(Object.entries(merged).sort().map(([name, m]) =>
  [name, { count: m.count, mean: round(m.sum / m.count), min: round(m.min), max: round(m.max) }]));
return { chunks: deps.chunk.length, lines, malformed, sensors };
"""


def build_workflow() -> Workflow:
    wf = Workflow("sensor_fanout", lib=LIB_JS)
    wf.add_step("chunk", js=CHUNK_JS, for_each=PARTS_JS, timeout=5.0)
    wf.add_step("merge", js=MERGE_JS, after=["chunk"])
    return wf


async def main() -> int:
    day = "2024-05-01"
    store = ObjectStore(make_readings(day))
    workflow = build_workflow()
    async with Engine(api={"object_get": store.object_get}, pool=RuntimePool(size=2)) as engine:
        result = await engine.run(workflow, event={"day": day, "chunks": CHUNKS})
    if result.status != "completed":
        print(f"fan-out failed: {[str(result.steps[s].error) for s in result.failed_steps]}")
        return 1
    out = result.output
    print(f"{out['chunks']} chunks, {out['lines']} lines, {out['malformed']} malformed skipped")
    print(f"{'sensor':<12} {'readings':>8} {'mean F':>7} {'min F':>7} {'max F':>7}")
    for name, s in out["sensors"].items():
        print(f"{name:<12} {s['count']:>8} {s['mean']:>7.1f} {s['min']:>7.1f} {s['max']:>7.1f}")
    print(f"up to {store.max_concurrent_reads()} chunks read at the same time;", end=" ")
    print(f"run took {result.duration:.2f} s")
    return 0


if __name__ == "__main__":
    # Library logs (worker start-up, ...) go to stderr, warnings and up only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    sys.exit(anyio.run(main))
