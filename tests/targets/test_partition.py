"""Partitioner: optimality against exhaustive search, cost accounting (shared vs DMA), strategies, scale."""

from __future__ import annotations

import math
import random
import time

import pytest

from edgecc.targets.api import Memory
from edgecc.targets.partition import (
    Device,
    Problem,
    exhaustive,
    first_split,
    greedy,
    optimal,
    random_problem,
    score,
    solve,
)


def _random_case(seed: int, max_nodes: int) -> Problem:
    rng = random.Random(seed)
    return random_problem(
        rng.randint(1, max_nodes),
        seed,
        support=rng.uniform(0.3, 0.95),
        fan_in=rng.randint(1, 3),
        window=rng.randint(1, 7),
        dma=seed % 2 == 0,
        outputs=rng.randint(1, 3),
    )


@pytest.mark.parametrize("block", range(4))
def test_dp_reaches_the_exhaustive_optimum_on_random_small_dags(block: int) -> None:
    for seed in range(block * 60, block * 60 + 60):
        problem = _random_case(seed, 11)
        assignment, exact = optimal(problem)
        best = exhaustive(problem)
        assert exact
        assert score(problem, assignment).total_us == pytest.approx(score(problem, best).total_us, rel=1e-12, abs=1e-9), seed


def test_dp_reaches_the_optimum_on_14_node_dags() -> None:
    for seed in range(1000, 1004):
        problem = random_problem(14, seed, support=0.9, fan_in=3, window=5, dma=seed % 2 == 0, outputs=2)
        assignment, exact = optimal(problem)
        assert exact
        assert score(problem, assignment).total_us == pytest.approx(score(problem, exhaustive(problem)).total_us, abs=1e-9)


def test_partition_limit_is_respected_and_optimal_under_it() -> None:
    for seed in range(40):
        problem = _random_case(seed + 500, 9)
        for limit in (1, 2, 3):
            assignment, _ = optimal(problem, max_partitions=limit)
            assert score(problem, assignment).partitions <= limit
            best = exhaustive(problem, max_partitions=limit)
            assert score(problem, assignment).total_us == pytest.approx(score(problem, best).total_us, abs=1e-9)


def test_solution_is_never_worse_than_greedy_or_first_split_even_with_a_tiny_beam() -> None:
    for seed in range(30):
        problem = random_problem(300, seed, window=8, fan_in=3)
        plan, scores = solve(problem, beam=2)
        assert plan.cost.total_us <= scores["greedy"].total_us + 1e-9
        assert plan.cost.total_us <= scores["first-split"].total_us + 1e-9


def _chain(memory: Memory, supported: list[bool]) -> Problem:
    host = Device("cpu", 5.0, Memory(kind="host"))
    accel = Device("npu", 100.0, memory, bytes_per_element=1)
    n = len(supported)
    compute = [[50.0, 10.0 if ok else math.inf] for ok in supported]
    return Problem(
        [host, accel],
        compute,
        [[n]] + [[i - 1] for i in range(1, n)],
        [[i] for i in range(n)],
        [1000] * n + [1000],
        list(range(n)) + [-1],
        {n - 1},
        [f"t{i}" for i in range(n)] + ["x"],
    )


def test_shared_memory_pays_synchronisation_only() -> None:
    problem = _chain(Memory(kind="shared", sync_us=7.0), [True, True, False, True])
    cost = score(problem, [1, 1, 0, 1])
    # input in (sync), t1 out (sync), t2 in (sync), output t3 out (sync): 4 syncs regardless of size
    assert cost.transfer_us == pytest.approx(4 * 7.0)
    assert cost.launch_us == pytest.approx(100 + 5 + 100)
    assert cost.compute_us == pytest.approx(10 + 10 + 50 + 10)
    assert cost.total_us == pytest.approx(cost.compute_us + cost.launch_us + cost.transfer_us)


def test_dma_pays_setup_plus_bytes_over_bandwidth() -> None:
    problem = _chain(Memory(kind="dma", bandwidth_gbps=2.0, setup_us=3.0), [True, True, False, True])
    cost = score(problem, [1, 1, 0, 1])
    per_transfer = 3.0 + 1000 / (2.0 * 1e3)  # 1000 int8 bytes at 2 GB/s
    assert cost.transfer_us == pytest.approx(4 * per_transfer)
    assert len(cost.transfers) == 4
    assert {t["bytes"] for t in cost.transfers} == {1000}


def test_a_tensor_read_twice_by_one_partition_is_moved_once() -> None:
    host = Device("cpu", 0.0, Memory(kind="host"))
    accel = Device("npu", 0.0, Memory(kind="shared", sync_us=1.0))
    # x -> a (cpu) -> b, c (npu) both read a; output c
    problem = Problem(
        [host, accel], [[1, math.inf], [1, 1], [1, 1]], [[3], [0], [0, 1]], [[0], [1], [2]], [1, 1, 1, 1], [0, 1, 2, -1], {2}
    )
    cost = score(problem, [0, 1, 1])
    assert cost.transfer_us == pytest.approx(2.0)  # a in once, c out once
    assert optimal(problem)[0] in ([0, 1, 1], [0, 0, 0])


def test_strategies_behave_as_users_know_them() -> None:
    problem = _chain(Memory(kind="shared", sync_us=1.0), [True, False, True, True])
    assert greedy(problem) == [1, 0, 1, 1]
    assert first_split(problem) == [1, 0, 0, 0]


def test_ten_thousand_nodes_partition_in_seconds() -> None:
    problem = random_problem(10_000, 7, window=4, fan_in=2)
    start = time.perf_counter()
    plan, scores = solve(problem)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    assert plan.cost.total_us <= min(scores["greedy"].total_us, scores["first-split"].total_us)
    assert len(plan.assignment) == 10_000
