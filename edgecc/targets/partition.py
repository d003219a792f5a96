"""Cost-aware partitioning: assign every node to a device, minimising estimated latency.

Model. Nodes run in the model's (topological) order; a partition is a maximal run of consecutive
nodes on one device. Latency = sum of node compute + one launch (context switch) per partition +
transfers. Tensors cross partitions through CPU memory, as the bundle runtime runs them: a tensor
leaving its producer's partition on an accelerator is copied out once (`export`); every later
partition on an accelerator that reads it copies it in once (`import`); graph inputs start, and graph
outputs end, in CPU memory. A copy costs `Memory.transfer_us(bytes)`: a synchronisation for shared
memory, setup + bytes / bandwidth for DMA; the CPU pays nothing.

Algorithms.
* `optimal`: dynamic programming over the execution order whose state is the device of the current
  partition plus, for each *live* tensor (produced, still to be read), its device and whether it was
  already exported / imported into the current partition. The cost is additive over these states, so
  the DP is exact whenever no state is pruned: always for chains (one live tensor) and for graphs whose
  frontier stays small (ResNet-like skips, every graph of <= 14 nodes with the default beam). On huge
  frontiers it keeps the `beam` cheapest states per step (then `exact` is False). The result is finally
  compared with greedy, first-split and all-CPU under the same cost function and the cheapest is kept,
  so it is provably never worse than greedy.
* `greedy`: every node an accelerator supports goes to it (onnxruntime execution-provider style:
  maximal supported subgraphs).
* `first-split`: the accelerator runs nodes until the first one it does not support; everything after
  goes to the CPU (Edge TPU compiler style).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgecc.targets.api import Memory

__all__ = [
    "STRATEGIES",
    "Breakdown",
    "Device",
    "Plan",
    "Problem",
    "all_host",
    "exhaustive",
    "first_split",
    "greedy",
    "optimal",
    "random_problem",
    "score",
    "solve",
]

STRATEGIES = ("optimal", "greedy", "first-split")


@dataclass(frozen=True)
class Device:
    """A device in a partitioning problem: index 0 is always the host CPU."""

    name: str
    launch_us: float
    memory: Memory
    bytes_per_element: int = 4


@dataclass
class Problem:
    """Nodes (in execution order) x devices with compute costs, and the tensors between nodes."""

    devices: list[Device]
    compute: list[list[float]]  # [node][device]; math.inf = unsupported
    node_inputs: list[list[int]]  # tensor ids read (unique, activations only)
    node_outputs: list[list[int]]
    tensor_elements: list[int]
    tensor_producer: list[int]  # node index, -1 for graph inputs
    graph_outputs: set[int] = field(default_factory=set)
    tensor_names: list[str] = field(default_factory=list)
    follows_next: set[int] = field(default_factory=set)  # nodes (constant producers) placed with the node after them
    glue: set[int] = field(default_factory=set)  # nodes (Q/DQ, layout) that never make an accelerator partition on their own

    def __post_init__(self) -> None:
        n_dev = len(self.devices)
        self.export_cost = [[d.memory.transfer_us(e * d.bytes_per_element) for d in self.devices] for e in self.tensor_elements]
        self.import_cost = self.export_cost  # symmetric links
        self.consumers: list[list[int]] = [[] for _ in self.tensor_elements]
        for index, inputs in enumerate(self.node_inputs):
            for t in inputs:
                self.consumers[t].append(index)
        n = len(self.compute)
        self.last_use = [max(c) if c else -1 for c in self.consumers]
        for t in self.graph_outputs:
            self.last_use[t] = n
        assert all(len(row) == n_dev for row in self.compute)

    def allowed(self, node: int) -> list[int]:
        """Devices that can run `node`."""
        return [d for d, cost in enumerate(self.compute[node]) if cost < math.inf]


@dataclass
class Breakdown:
    """The estimated latency of one assignment, by component."""

    total_us: float
    compute_us: float
    launch_us: float
    transfer_us: float
    partitions: int
    runs: list[tuple[int, int, int]]  # (device, first node, last node)
    transfers: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (without the per-transfer list)."""
        return {
            "total_us": round(self.total_us, 3),
            "compute_us": round(self.compute_us, 3),
            "launch_us": round(self.launch_us, 3),
            "transfer_us": round(self.transfer_us, 3),
            "partitions": self.partitions,
        }


@dataclass
class Plan:
    """An assignment chosen by a strategy, with its cost and whether the DP was exact."""

    strategy: str
    assignment: list[int]
    cost: Breakdown
    exact: bool = True
    chosen_from: str = ""


def runs_of(assignment: Sequence[int]) -> list[tuple[int, int, int]]:
    """Maximal runs of consecutive nodes on one device."""
    runs: list[tuple[int, int, int]] = []
    for index, device in enumerate(assignment):
        if runs and runs[-1][0] == device:
            runs[-1] = (device, runs[-1][1], index)
        else:
            runs.append((device, index, index))
    return runs


def score(problem: Problem, assignment: Sequence[int]) -> Breakdown:
    """The estimated latency of `assignment` (the reference definition the DP must agree with)."""
    runs = runs_of(assignment)
    run_of = [0] * len(assignment)
    for r, (_, first, last) in enumerate(runs):
        for i in range(first, last + 1):
            run_of[i] = r
    compute = sum(problem.compute[i][d] for i, d in enumerate(assignment))
    launch = sum(problem.devices[d].launch_us for d, _, _ in runs)
    transfer = 0.0
    transfers: list[dict[str, Any]] = []
    for t, producer in enumerate(problem.tensor_producer):
        p_run = run_of[producer] if producer >= 0 else -1
        p_dev = assignment[producer] if producer >= 0 else 0
        consumer_runs = sorted({run_of[c] for c in problem.consumers[t]} - {p_run})
        name = problem.tensor_names[t] if problem.tensor_names else str(t)
        if p_dev != 0 and (consumer_runs or t in problem.graph_outputs):
            cost = problem.export_cost[t][p_dev]
            transfer += cost
            transfers.append(
                {
                    "tensor": name,
                    "from": problem.devices[p_dev].name,
                    "to": "cpu-memory",
                    "from_partition": p_run,
                    "bytes": problem.tensor_elements[t] * problem.devices[p_dev].bytes_per_element,
                    "estimated_us": cost,
                }
            )
        for r in consumer_runs:
            c_dev = runs[r][0]
            if c_dev != 0:
                cost = problem.import_cost[t][c_dev]
                transfer += cost
                transfers.append(
                    {
                        "tensor": name,
                        "from": "cpu-memory",
                        "to": problem.devices[c_dev].name,
                        "to_partition": r,
                        "bytes": problem.tensor_elements[t] * problem.devices[c_dev].bytes_per_element,
                        "estimated_us": cost,
                    }
                )
    return Breakdown(compute + launch + transfer, compute, launch, transfer, len(runs), runs, transfers)


def _check_feasible(problem: Problem) -> None:
    for node in range(len(problem.compute)):
        if not problem.allowed(node):
            raise ValueError(f"node {node} can run on no device")


def greedy(problem: Problem) -> list[int]:
    """Every node on the cheapest accelerator that supports it; the rest on the CPU."""
    assignment = []
    for node in range(len(problem.compute)):
        accel = [d for d in problem.allowed(node) if d != 0]
        assignment.append(min(accel, key=lambda d: problem.compute[node][d]) if accel else 0)
    return assignment


def first_split(problem: Problem) -> list[int]:
    """The accelerator (device 1) until the first node it cannot run, then the CPU."""
    assignment = []
    split = False
    for node in range(len(problem.compute)):
        split = split or len(problem.devices) < 2 or problem.compute[node][1] == math.inf
        assignment.append(0 if split else 1)
    return assignment


def all_host(problem: Problem) -> list[int]:
    """Everything on the CPU."""
    return [0] * len(problem.compute)


def optimal(problem: Problem, *, beam: int | None = None, max_partitions: int | None = None) -> tuple[list[int], bool]:
    """The DP described in the module docstring; returns (assignment, exact)."""
    _check_feasible(problem)
    n = len(problem.compute)
    if n == 0:
        return [], True
    if beam is None:
        beam = max(24, min(1 << 15, 600_000 // max(1, n)))
    exact = True
    live = [t for t, p in enumerate(problem.tensor_producer) if p < 0 and problem.last_use[t] >= 0]
    start_codes = tuple(2 for _ in live)  # on host, "exported" (host tensors never pay an export)
    # state key: (device of current partition, partitions so far (when limited), codes of live tensors)
    states: dict[tuple, float] = {(-1, 0, start_codes): 0.0}
    back: list[dict[tuple, tuple[tuple, int]]] = []
    launch = [d.launch_us for d in problem.devices]
    export_cost, import_cost, compute = problem.export_cost, problem.import_cost, problem.compute
    last_use = problem.last_use
    for i in range(n):
        pos = {t: k for k, t in enumerate(live)}
        in_pos = [(pos[t], t) for t in problem.node_inputs[i] if t in pos]
        keep = [k for k, t in enumerate(live) if last_use[t] > i]
        outs = [t for t in problem.node_outputs[i] if last_use[t] > i]
        devices = [d for d in range(len(problem.devices)) if compute[i][d] < math.inf]
        nxt: dict[tuple, float] = {}
        step_back: dict[tuple, tuple[tuple, int]] = {}
        for key, base in states.items():
            cur, parts, codes = key
            for d in devices:
                new_run = d != cur
                cost = base + compute[i][d]
                new_parts = parts
                if new_run:
                    cost += launch[d]
                    if max_partitions is not None:
                        new_parts += 1
                        if new_parts > max_partitions:
                            continue
                    work = [c & ~5 for c in codes]
                else:
                    work = list(codes)
                for p, t in in_pos:
                    c = work[p]
                    if c & 4:
                        continue
                    pdev = c >> 3
                    if pdev and not c & 2:
                        cost += export_cost[t][pdev]
                        c |= 2
                    if d and not c & 1:
                        cost += import_cost[t][d]
                        c |= 1
                    work[p] = c
                out_code = (d << 3) | 4 | (0 if d else 2)
                new_codes = tuple([work[k] for k in keep] + [out_code] * len(outs))
                new_key = (d, new_parts, new_codes)
                old = nxt.get(new_key)
                if old is None or cost < old:
                    nxt[new_key] = cost
                    step_back[new_key] = (key, d)
        if not nxt:
            raise ValueError("no assignment satisfies the partition limit")
        if len(nxt) > beam:
            exact = False
            best = sorted(nxt.items(), key=lambda kv: (kv[1], kv[0]))[:beam]
            nxt = dict(best)
        states = nxt
        back.append(step_back)
        live = [live[k] for k in keep] + outs
    finals = []
    out_positions = [(k, t) for k, t in enumerate(live) if t in problem.graph_outputs]
    for key, cost in states.items():
        codes = key[2]
        for k, t in out_positions:
            c = codes[k]
            if c >> 3 and not c & 2:
                cost += export_cost[t][c >> 3]
        finals.append((cost, key))
    _, key = min(finals)
    assignment = [0] * n
    for i in range(n - 1, -1, -1):
        key, d = back[i][key]
        assignment[i] = d
    return assignment, exact


def exhaustive(problem: Problem, *, max_partitions: int | None = None) -> list[int]:
    """The optimum by trying every assignment (tests and tiny graphs only)."""
    _check_feasible(problem)
    choices = [problem.allowed(i) for i in range(len(problem.compute))]
    best: tuple[float, list[int]] | None = None
    for combo in itertools.product(*choices):
        if max_partitions is not None and len(runs_of(combo)) > max_partitions:
            continue
        total = score(problem, combo).total_us
        if best is None or total < best[0] - 1e-9:
            best = (total, list(combo))
    assert best is not None
    return best[1]


def follow_next(problem: Problem, assignment: Sequence[int]) -> list[int]:
    """`assignment` with each node of `problem.follows_next` on the device of the node after it (when allowed there),
    and accelerator runs made only of `problem.glue` nodes (quantise/dequantise, layout) moved to the CPU."""
    result = list(assignment)
    for index in sorted(problem.follows_next, reverse=True):
        if index + 1 < len(result) and problem.compute[index][result[index + 1]] < math.inf:
            result[index] = result[index + 1]
    if problem.glue:
        for device, first, last in runs_of(result):
            nodes = range(first, last + 1)
            if (
                device != 0
                and all(i in problem.glue or i in problem.follows_next for i in nodes)
                and all(problem.compute[i][0] < math.inf for i in nodes)
            ):
                for i in nodes:
                    result[i] = 0
    return result


def solve(
    problem: Problem, strategy: str = "optimal", *, max_partitions: int | None = None, beam: int | None = None
) -> tuple[Plan, dict[str, Breakdown]]:
    """The plan of `strategy` and the scores of every strategy (for the placement report)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown partitioner {strategy!r}")
    candidates = {
        name: follow_next(problem, a)
        for name, a in (("greedy", greedy(problem)), ("first-split", first_split(problem)), ("all-cpu", all_host(problem)))
    }
    scores = {name: score(problem, a) for name, a in candidates.items()}
    dp, exact = optimal(problem, beam=beam, max_partitions=max_partitions)
    dp = follow_next(problem, dp)
    best_name, best_assign, best_cost = "dp", dp, score(problem, dp)
    for name, assign in candidates.items():  # never worse than the simple strategies
        cost = scores[name]
        fits = max_partitions is None or cost.partitions <= max_partitions
        if fits and cost.total_us < best_cost.total_us - 1e-9:
            best_name, best_assign, best_cost = name, assign, cost
    scores["optimal"] = best_cost
    if strategy == "optimal":
        return Plan("optimal", best_assign, best_cost, exact, best_name), scores
    assign = candidates[strategy]
    if max_partitions is not None and scores[strategy].partitions > max_partitions:
        raise ValueError(
            f"the {strategy} placement has {scores[strategy].partitions} partitions, more than the limit of {max_partitions} "
            "(only the optimal partitioner honours --max-partitions)"
        )
    return Plan(strategy, assign, scores[strategy], True, strategy), scores


def random_problem(
    n: int, seed: int, *, support: float = 0.7, fan_in: int = 2, window: int = 4, dma: bool = True, outputs: int = 1
) -> Problem:
    """A random DAG of `n` nodes (each reads up to `fan_in` tensors of the last `window` nodes) with a random
    support mask for one accelerator: for tests and `benchmarks/partition.py`."""
    import random

    rng = random.Random(seed)
    host = Device("cpu", 5.0, Memory(kind="host"))
    memory = Memory(kind="dma", bandwidth_gbps=8.0, setup_us=30.0) if dma else Memory(kind="shared", sync_us=20.0)
    accel = Device("npu", rng.choice([50.0, 200.0, 500.0]), memory, bytes_per_element=1)
    elements = [rng.choice([256, 4096, 65536, 262144]) for _ in range(n + 1)]  # tensor n = graph input
    producer = list(range(n)) + [-1]
    node_inputs: list[list[int]] = []
    for i in range(n):
        pool = list(range(max(0, i - window), i)) or [n]
        picks = sorted(set(rng.sample(pool, min(len(pool), rng.randint(1, fan_in)))))
        node_inputs.append(picks)
    compute = []
    for _ in range(n):
        cpu_cost = rng.uniform(10.0, 2000.0)
        accel_cost = cpu_cost / rng.uniform(2.0, 30.0) if rng.random() < support else math.inf
        compute.append([cpu_cost, accel_cost])
    graph_outputs = set(range(max(0, n - outputs), n))
    return Problem(
        [host, accel],
        compute,
        node_inputs,
        [[i] for i in range(n)],
        elements,
        producer,
        graph_outputs,
        [f"t{i}" for i in range(n)] + ["input"],
    )
