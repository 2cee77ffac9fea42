"""Predicting V8's Math.random from a few of its values (issue 14, finding 5).

The V8 that jsrun 0.3.0 embeds (rusty_v8 150) hands out ``(s0 + s1) >> 11``
scaled to [0, 1) after each xorshift128+ step, in generation order. Six values
pin the 128-bit state down (z3 solves it in about a second); every value the
generator gave before and will give after follows.
"""

from __future__ import annotations

import z3

MASK = 2**64 - 1
SAMPLES = 6


def _step(s0: int, s1: int) -> tuple[int, int]:
    x, y = s0, s1
    x ^= (x << 23) & MASK
    x ^= x >> 17
    x ^= y ^ (y >> 26)
    return y, x


def _unshift_left(v: int, k: int) -> int:
    x = v
    for _ in range(64 // k + 1):
        x = v ^ ((x << k) & MASK)
    return x


def _unshift_right(v: int, k: int) -> int:
    x = v
    for _ in range(64 // k + 1):
        x = v ^ (x >> k)
    return x


def _step_back(s0: int, s1: int) -> tuple[int, int]:
    y = s0
    x = _unshift_left(_unshift_right(s1 ^ y ^ (y >> 26), 17), 23)
    return x, y


def _value(s0: int, s1: int) -> float:
    return (((s0 + s1) & MASK) >> 11) / 2**53


def v8_sequence(s0: int, s1: int, count: int) -> list[float]:
    """What ``Math.random()`` returns, one after another, from state (s0, s1)."""
    out = []
    for _ in range(count):
        s0, s1 = _step(s0, s1)
        out.append(_value(s0, s1))
    return out


def _solve(samples: list[float]) -> tuple[int, int] | None:
    """The state before ``samples`` were drawn, or None if no V8 state gives them."""
    a, b = z3.BitVecs("a b", 64)
    solver = z3.Solver()
    s0, s1 = a, b
    for value in samples:
        s0, s1 = s1, s0 ^ (s0 << 23) ^ z3.LShR(s0 ^ (s0 << 23), 17) ^ s1 ^ z3.LShR(s1, 26)
        solver.add(z3.LShR(s0 + s1, 11) == int(value * 2**53))
    if solver.check() != z3.sat:
        return None
    model = solver.model()
    return model[a].as_long(), model[b].as_long()


def predict(samples: list[float], around: int = 200) -> set[float]:
    """Values V8 hands out within ``around`` draws of ``samples``, or {} if not V8's."""
    state = _solve(samples[:SAMPLES])
    if state is None:
        return set()
    s0, s1 = state
    for _ in range(around):
        s0, s1 = _step_back(s0, s1)
    return set(v8_sequence(s0, s1, 2 * around + len(samples)))
