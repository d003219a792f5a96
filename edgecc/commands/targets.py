"""`edgecc targets [show T | check MODEL]`: list targets, show one's support table and costs, or a compatibility matrix."""

from __future__ import annotations

import click

from edgecc.commands.common import common_options
from edgecc.ui import Ui

__all__ = ["command"]


@click.command("targets")
@click.argument("args", nargs=-1)
@click.option("--target", "only", multiple=True, help="check: only these targets (default: all).")
@click.option("--input", "input_specs", multiple=True, metavar="NAME:DIMS[:DTYPE]", help="check: fix dynamic input shapes first.")
@common_options
def command(args: tuple[str, ...], only: tuple[str, ...], input_specs: tuple[str, ...], ui: Ui) -> None:
    """List targets; `show T` prints T's operator support table and cost parameters; `check MODEL` prints, per target,
    the nodes it would run and why each other node would fall back to the CPU; `docs [T...]` prints the support tables
    as Markdown.

    \b
    Examples:
      edgecc targets
      edgecc targets show hisilicon-npu
      edgecc targets check model.onnx --json
      edgecc targets docs > SUPPORTED_TARGETS.md
    """
    from edgecc.errors import UsageError
    from edgecc.targets import get_target, load_targets

    if not args:
        registry = load_targets()
        rows = [
            [name, "/".join(t.precisions), t.memory.kind, len(t.ops) if not t.supports_any_op else "all", t.source, t.description]
            for name, t in registry.items()
        ]
        ui.table("targets", ["name", "precisions", "memory", "ops", "source", "description"], rows)
        if ui.json_mode:
            ui.emit_json({"ok": True, "command": "targets", "targets": [t.to_dict() for _, t in registry.items()]})
        return
    action, rest = args[0], list(args[1:])
    if action == "docs":
        from edgecc.targets.docs import support_markdown

        targets = [get_target(n) for n in rest] if rest else [t for _, t in load_targets().items()]
        text = support_markdown(targets)
        if ui.json_mode:
            ui.emit_json({"ok": True, "command": "targets docs", "markdown": text})
        else:
            click.echo(text)
        return
    if action == "show" or (action not in ("check",) and not rest):
        name = rest[0] if action == "show" and rest else action
        if action == "show" and not rest:
            raise UsageError("`edgecc targets show` needs a target name")
        _show(ui, get_target(name))
        return
    if action == "check":
        if len(rest) != 1:
            raise UsageError("`edgecc targets check` needs one ONNX model")
        _check(ui, rest[0], only, input_specs)
        return
    raise UsageError(
        f"unknown targets action '{action}'",
        hint="use `edgecc targets`, `edgecc targets show T`, `edgecc targets check MODEL` or `edgecc targets docs`",
    )


def _show(ui: Ui, target) -> None:
    data = target.to_dict()
    ui.message(f"[bold]{target.name}[/bold]: {target.description}")
    memory = target.memory
    link = {
        "host": "the CPU itself",
        "shared": f"memory shared with the CPU (sync {memory.sync_us} us per tensor)",
        "dma": f"own memory over DMA ({memory.bandwidth_gbps} GB/s, {memory.setup_us} us setup)",
    }[memory.kind]
    ui.message(
        f"precisions {', '.join(target.precisions)}; {link}; launch {target.cost.launch_us} us per partition; "
        f"{', '.join(f'{k} {v} GMAC/s' for k, v in target.cost.gmacs.items())}; memory {target.cost.memory_gbps} GB/s; "
        f"{target.cost.op_overhead_us} us per op; quantisation {target.quant_scheme.describe()}; "
        f"static shapes {target.static_shapes}"
    )
    rows = [[row["op_type"], "\n".join(row["rules"]) or "-"] for row in data["ops"]]
    ui.table(
        f"{target.name} operator support" + (" (every op, see rules)" if target.supports_any_op else ""),
        ["op type", "constraints"],
        rows,
    )
    for ref in target.references:
        ui.message(f"reference: {ref}")
    if ui.json_mode:
        ui.emit_json({"ok": True, "command": "targets show", "target": data})


def _check(ui: Ui, model_path: str, only: tuple[str, ...], input_specs: tuple[str, ...]) -> None:
    from edgecc.inputs import parse_input_specs
    from edgecc.onnxutil import apply_input_specs, load_onnx
    from edgecc.targets import get_target, load_targets
    from edgecc.targets.plan import check_support

    model = apply_input_specs(load_onnx(model_path), parse_input_specs(input_specs), path=model_path)
    targets = [get_target(n) for n in only] if only else [t for _, t in load_targets().items()]
    matrix = []
    for target in targets:
        graph, support = check_support(model, target, precision=target.default_precision)
        nodes = [
            {"node": v.name, "op_type": v.op_type, "supported": s.supported, "reasons": list(s.reasons)}
            for v, s in zip(graph.views, support)
        ]
        matrix.append(
            {"target": target.name, "supported": sum(s.supported for s in support), "nodes": len(support), "node_results": nodes}
        )
    if matrix:
        names = [m["target"] for m in matrix]
        rows = []
        for index, first in enumerate(matrix[0]["node_results"]):
            cells = []
            for m in matrix:
                result = m["node_results"][index]
                cells.append("yes" if result["supported"] else "no: " + "; ".join(result["reasons"])[:60])
            rows.append([first["node"], first["op_type"], *cells])
        rows.append(["total", "", *[f"{m['supported']}/{m['nodes']}" for m in matrix]])
        ui.table(f"compatibility of {model_path}", ["node", "op", *names], rows)
    if ui.json_mode:
        ui.emit_json({"ok": True, "command": "targets check", "model": model_path, "targets": matrix})
