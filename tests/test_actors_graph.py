"""Graph validation and planning: pure, no event loop."""

from __future__ import annotations

import pytest

from actors._graph import check_graph, find_cycle, plan
from actors.errors import CycleDetected, UnknownDependency


def test_unknown_dependency_names_the_step_and_the_missing_upstream() -> None:
    with pytest.raises(UnknownDependency) as info:
        check_graph({"a": [], "b": ["a", "ghost"]}, workflow="wf")
    assert (info.value.step, info.value.dependency) == ("b", "ghost")
    assert "ghost" in str(info.value) and "'wf'" in str(info.value)


def test_cycle_error_lists_exactly_the_steps_on_the_cycle() -> None:
    graph = {"root": [], "a": ["root", "c"], "b": ["a"], "c": ["b"], "leaf": ["c"]}
    with pytest.raises(CycleDetected) as info:
        check_graph(graph)
    assert set(info.value.steps) == {"a", "b", "c"}
    assert "->" in str(info.value)


def test_a_step_after_itself_is_a_cycle() -> None:
    assert find_cycle({"a": ["a"]}) == ("a",)


def test_acyclic_graph_has_no_cycle() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}) is None


def test_long_chain_does_not_hit_the_recursion_limit() -> None:
    graph = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(5000)}
    assert find_cycle(graph) is None
    graph["s0"] = ["s4999"]
    cycle = find_cycle(graph)
    assert cycle is not None and len(cycle) == 5000


def test_plan_orders_upstreams_first_and_finds_sinks() -> None:
    p = plan({"d": ["b", "c"], "b": ["a"], "c": ["a"], "a": [], "e": ["a"]})
    assert p.order.index("a") < p.order.index("b") < p.order.index("d")
    assert p.order.index("c") < p.order.index("d")
    assert p.sinks == ("d", "e")
    assert p.downstream["a"] == ("b", "c", "e")
    assert p.upstream["d"] == ("b", "c")


def test_plan_merges_a_repeated_dependency() -> None:
    p = plan({"a": [], "b": ["a", "a"]})
    assert p.upstream["b"] == ("a",)
    assert p.downstream["a"] == ("b",)
