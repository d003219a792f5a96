"""How much of a compiled model the accelerator runs: shares of nodes and of MACs per device, and the goal check.

A node the vendor compiler leaves on its own CPU (Vela's fallback) counts for "<target> (vendor CPU fallback)", not
for the target. The shares are the manifest's `offload` entry, which `compile`, `bench`, `run --benchmark` and the
zoo report show; `--min-offload FRACTION` turns a share below the goal into an error (exit 5) before anything is
written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgecc.errors import GoalNotMetError

if TYPE_CHECKING:
    from edgecc.targets.graph import ModelGraph
    from edgecc.targets.plan import PartitionSpec

__all__ = [
    "HOST_DEVICE",
    "LOW_OFFLOAD",
    "check_offload",
    "describe_offload",
    "low_offload_warning",
    "offload_summary",
    "share_cell",
    "target_share",
]

#: the device every target falls back to (the partitioner's device 0)
HOST_DEVICE = "cpu"

#: below this share of the MACs on the accelerator, compile warns (DESIGN: an accelerator that gets little is a finding)
LOW_OFFLOAD = 0.5


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def offload_summary(
    graph: "ModelGraph",
    partitions: Sequence["PartitionSpec"],
    target: str,
    vendor_fallback: Mapping[tuple[int, int], str] = {},  # noqa: B006 -- read only
) -> dict[str, Any]:
    """Per device: nodes, MACs, their shares and the precisions its partitions run; and the same for the target alone.

    `vendor_fallback`: (partition, node index) pairs the vendor compiler left on its CPU (counted apart)."""
    counts: dict[str, dict[str, Any]] = {}
    for part in partitions:
        for index in part.nodes:
            device = part.device
            if (part.index, index) in vendor_fallback:
                device = f"{part.device} (vendor CPU fallback)"
            entry = counts.setdefault(device, {"device": device, "nodes": 0, "macs": 0, "precisions": set()})
            entry["nodes"] += 1
            entry["macs"] += int(graph.macs[index]) if index < len(graph.macs) else 0
            entry["precisions"].add(part.precision)
    nodes = sum(e["nodes"] for e in counts.values())
    macs = sum(e["macs"] for e in counts.values())
    devices = []
    for entry in sorted(counts.values(), key=lambda e: (e["device"] != target, e["device"])):
        devices.append(
            {
                **entry,
                "precisions": sorted(entry["precisions"]),
                "node_share": _share(entry["nodes"], nodes),
                "mac_share": _share(entry["macs"], macs),
            }
        )
    own = counts.get(target, {"nodes": 0, "macs": 0, "precisions": set()})
    return {
        "target": target,
        "accelerator": target != HOST_DEVICE,
        "nodes": nodes,
        "macs": macs,
        "devices": devices,
        "on_target": {
            "nodes": own["nodes"],
            "macs": own["macs"],
            "node_share": _share(own["nodes"], nodes),
            "mac_share": _share(own["macs"], macs),
            "precisions": sorted(own["precisions"]),
        },
    }


def _judged_on(offload: Mapping[str, Any]) -> str:
    """What the share counts: "MACs", or "nodes" when the model has no MACs (e.g. pure layout)."""
    return "MACs" if offload["macs"] else "nodes"


def target_share(offload: Mapping[str, Any]) -> float:
    """The share the goal is judged on: of the MACs, or of the nodes when the model has no MACs."""
    own = offload["on_target"]
    return float(own["mac_share"] if _judged_on(offload) == "MACs" else own["node_share"])


def share_cell(offload: Mapping[str, Any] | None) -> str:
    """A table cell: the target's share ("87%"), "CPU-only" when it runs nothing, "-" for the CPU target or no data."""
    if not offload or not offload.get("accelerator"):
        return "-"
    share = target_share(offload)
    return "CPU-only" if share == 0 else f"{100 * share:.0f}%"


def describe_offload(offload: Mapping[str, Any]) -> str:
    """One line: what the target runs, in nodes and MACs, and its precisions; then the other devices."""
    own = offload["on_target"]
    precisions = "/".join(own["precisions"]) or "nothing"
    line = (
        f"offload: {offload['target']} runs {own['nodes']}/{offload['nodes']} nodes ({100 * own['node_share']:.1f}%), "
        f"{100 * own['mac_share']:.1f}% of {offload['macs']:,} MACs, in {precisions}"
    )
    others = [d for d in offload["devices"] if d["device"] != offload["target"]]
    if others:
        line += "; " + ", ".join(
            f"{d['device']} {d['nodes']} nodes ({100 * d['mac_share']:.1f}% of MACs, {'/'.join(d['precisions'])})"
            for d in others
        )
    return line


def low_offload_warning(offload: Mapping[str, Any]) -> str | None:
    """The warning for an accelerator that runs less than `LOW_OFFLOAD` of the MACs (None when it runs enough)."""
    if not offload.get("accelerator") or target_share(offload) >= LOW_OFFLOAD:
        return None
    share = 100 * target_share(offload)
    return (
        f"{offload['target']} runs only {share:.1f}% of the {_judged_on(offload)} (under {100 * LOW_OFFLOAD:.0f}%): "
        "most of the model stays on the CPU; the placement table says why (require a share with --min-offload)"
    )


def check_offload(offload: Mapping[str, Any], minimum: float | None) -> None:
    """Raise GoalNotMetError (exit 5) when the target's share is below `minimum` (None: no goal)."""
    if minimum is None or not offload.get("accelerator"):
        return
    share = target_share(offload)
    if share < minimum:
        raise GoalNotMetError(
            f"{offload['target']} runs {100 * share:.1f}% of the model's {_judged_on(offload)}, below --min-offload "
            f"{100 * minimum:.1f}%; nothing written",
            hint="the placement table gives each CPU node's reason; lower --min-offload or change the model",
        )
