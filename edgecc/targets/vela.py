"""Driver for Arm's Vela compiler (`ethos-u-vela`): find it, run it on a TFLite file, read back its reports.

Vela is run as a subprocess (its CLI is its stable interface; it prints its CPU-fallback warnings and
performance tables on file descriptor 1 and exits 0 even when operators fall back to the CPU), so
edgecc captures both streams and parses them together with the summary CSV Vela writes.

Which Vela: `EDGECC_VELA` names the executable when set (a path that does not exist means "no Vela",
which tests use to make it missing for real); otherwise the `vela` script beside the running Python,
then `vela` on PATH, then `python -m ethosu.vela` when the package is importable.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecc.errors import MissingDependencyError, UnsupportedError, UsageError

__all__ = [
    "ACCELERATORS",
    "FAMILIES",
    "Family",
    "VELA_ENV",
    "VelaReport",
    "family_of",
    "parse_cpu_fallback",
    "parse_supported_ops",
    "require_vela",
    "run_vela",
    "supported_ops_report",
    "vela_command",
    "vela_version",
]

log = logging.getLogger(__name__)

VELA_ENV = "EDGECC_VELA"
INSTALL_HINT = "pip install 'edgecc[ethos-u]' (installs ethos-u-vela), or set EDGECC_VELA to a vela executable"


@dataclass(frozen=True)
class Family:
    """An Ethos-U NPU family as Vela knows it: the MACs/cycle of its accelerator configurations (`--accelerator-config
    FAMILY-MACS`), and its default system config and memory mode in Vela's shipped Arm/vela.ini (the pairs Arm's docs
    use) with that system config's core clock and SRAM bandwidth."""

    macs: tuple[int, ...]
    system_config: str
    memory_mode: str
    clock_ghz: float
    sram_gbps: float


#: the one table of Ethos-U configurations: ACCELERATORS and the ethos-u* targets (edgecc.targets.ethos_u) derive from it
FAMILIES: dict[str, Family] = {
    "ethos-u55": Family((32, 64, 128, 256), "Ethos_U55_High_End_Embedded", "Shared_Sram", clock_ghz=0.5, sram_gbps=4.0),
    "ethos-u65": Family((256, 512), "Ethos_U65_High_End", "Dedicated_Sram", clock_ghz=1.0, sram_gbps=16.0),
    "ethos-u85": Family((128, 256, 512, 1024, 2048), "Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram", clock_ghz=1.0, sram_gbps=32.0),
}

#: accelerator configurations Vela 5.x accepts (`vela --help`, --accelerator-config)
ACCELERATORS = tuple(f"{family}-{macs}" for family, spec in FAMILIES.items() for macs in spec.macs)


def family_of(accelerator: str) -> tuple[str, int]:
    """(family, MACs/cycle) of an accelerator configuration ("ethos-u55-128" -> ("ethos-u55", 128))."""
    family, _, macs = accelerator.rpartition("-")
    return family, int(macs)


#: --vendor-option keys passed through to Vela (value checked by Vela itself)
PASS_THROUGH = {
    "system-config": "--system-config",
    "memory-mode": "--memory-mode",
    "optimise": "--optimise",
    "arena-cache-size": "--arena-cache-size",
    "tensor-allocator": "--tensor-allocator",
    "config": "--config",
    "cpu-tensor-alignment": "--cpu-tensor-alignment",
}


def vela_command() -> list[str] | None:
    """The command that starts Vela here, or None when it is not installed (EDGECC_VELA overrides the search)."""
    override = os.environ.get(VELA_ENV)
    if override is not None:
        return [override] if override and Path(override).is_file() and os.access(override, os.X_OK) else None
    beside = Path(sys.executable).with_name("vela")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("vela")
    if found:
        return [found]
    if importlib.util.find_spec("ethosu") is not None and importlib.util.find_spec("ethosu.vela") is not None:
        return [sys.executable, "-m", "ethosu.vela"]
    return None


def require_vela(feature: str) -> list[str]:
    """Vela's command, or MissingDependencyError (exit 6) with the install hint."""
    command = vela_command()
    if command is None:
        override = os.environ.get(VELA_ENV)
        where = f" (EDGECC_VELA={override!r} is not an executable)" if override is not None else ""
        error = MissingDependencyError("ethos-u-vela", feature=feature + where, extra="ethos-u")
        error.hint = INSTALL_HINT
        raise error
    return command


def _run(command: list[str], *, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False)
    except OSError as exc:
        error = MissingDependencyError(
            "ethos-u-vela", feature=f"running Vela ({' '.join(command)}: {exc.strerror})", extra="ethos-u"
        )
        error.hint = INSTALL_HINT
        raise error from None


def vela_version(command: list[str] | None = None) -> str:
    """Vela's version string (`vela --version`)."""
    command = command or require_vela("Vela version")
    return _run([*command, "--version"], timeout=60).stdout.strip()


def supported_ops_report(directory: Path, command: list[str] | None = None) -> Path:
    """Run `vela --supported-ops-report` in `directory`; the SUPPORTED_OPS.md it writes."""
    command = command or require_vela("Vela's supported-operator report")
    proc = _run([*command, "--supported-ops-report"], cwd=directory, timeout=120)
    path = directory / "SUPPORTED_OPS.md"
    if proc.returncode != 0 or not path.is_file():
        raise UnsupportedError(f"vela --supported-ops-report failed (exit {proc.returncode}): {_tail(proc.stderr)}")
    return path


_FAMILIES = {"Ethos-U55 and Ethos-U65": "ethos-u55", "Ethos-U85": "ethos-u85"}


def parse_supported_ops(text: str) -> dict[str, dict[str, Any]]:
    """SUPPORTED_OPS.md as {family: {"ops": [TFLite ops], "generic": [rules], "specific": {op: [rules]}}}.

    Families are "ethos-u55" (Vela's "Ethos-U55 and Ethos-U65" tables, also used for the U65) and "ethos-u85";
    a rule is one top-level bullet with its nested bullets appended (joined with spaces).
    """
    result: dict[str, dict[str, Any]] = {f: {"ops": [], "generic": [], "specific": {}} for f in _FAMILIES.values()}
    section: tuple[str, str, str] | None = None  # (family, kind, op)
    lines: list[str] = []

    def close() -> None:
        if section is None:
            return
        family, kind, op = section
        rules: list[str] = []
        for line in lines:
            stripped = line.strip()
            if not stripped.startswith("-"):
                continue
            text = stripped.lstrip("-").strip()
            if line.startswith("-") or not rules:
                rules.append(text)
            else:
                rules[-1] = f"{rules[-1]} {text}"
        if kind == "generic":
            result[family]["generic"] = rules
        elif kind == "specific":
            result[family]["specific"][op] = rules

    for line in text.splitlines():
        heading = re.match(r"^(#{2,3}) (Ethos-U55 and Ethos-U65|Ethos-U85) (TFLite|TOSA) (.*)$", line)
        if heading or line.startswith("## ") or line.startswith("### "):
            close()
            section, lines = None, []
            if heading and heading.group(3) == "TFLite":
                family = _FAMILIES[heading.group(2)]
                rest = heading.group(4)
                if rest.startswith("Summary Table"):
                    section = (family, "summary", "")
                elif rest.startswith("Generic Constraints"):
                    section = (family, "generic", "")
                elif rest.endswith(" Constraints"):
                    section = (family, "specific", rest[: -len(" Constraints")])
            elif re.match(r"^## (Ethos-U55 and Ethos-U65|Ethos-U85) Specific", line):
                section = None
            continue
        if section is not None and section[1] == "summary":
            row = re.match(r"^\| ([A-Z0-9_]+) \|", line)
            if row and row.group(1) != "Operator":
                result[section[0]]["ops"].append(row.group(1))
            continue
        lines.append(line)
    close()
    return result


@dataclass
class VelaReport:
    """What one Vela run produced and reported."""

    command: list[str]
    output: Path
    summary_csv: Path | None
    per_layer_csv: Path | None
    version: str
    estimates: dict[str, Any] = field(default_factory=dict)
    cpu_fallback: list[dict[str, str]] = field(default_factory=list)
    npu_operators: int = 0
    cpu_operators: int = 0
    stdout: str = ""

    def summary(self, accelerator: str) -> str:
        """One line for `edgecc compile`."""
        est = self.estimates
        fps = est.get("inferences_per_second")
        text = f"Vela {self.version} {accelerator}: {self.npu_operators} NPU op(s), {self.cpu_operators} on CPU"
        if fps:
            text += f", est. {est.get('cycles_total', 0):,} cycles = {fps:,.1f} inf/s at {est.get('core_clock_mhz', 0):g} MHz"
            text += f", SRAM {est.get('sram_used_kib', 0):g} KiB, flash/DRAM {est.get('off_chip_used_kib', 0):g} KiB"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (paths as file names)."""
        return {
            "command": " ".join(self.command),
            "vela_version": self.version,
            "estimates": self.estimates,
            "cpu_fallback": self.cpu_fallback,
            "npu_operators": self.npu_operators,
            "cpu_operators": self.cpu_operators,
        }


_WARNING = re.compile(r"^Warning \(supported operators\) operator: (?P<op>[A-Z0-9_]+), ofm: '(?P<ofm>.*)'$")


def parse_cpu_fallback(stdout: str) -> list[dict[str, str]]:
    """Vela's CPU-fallback warnings: [{op, tensor, reason, rule}] (one per operator it leaves on the CPU)."""
    found: list[dict[str, str]] = []
    lines = stdout.splitlines()
    for index, line in enumerate(lines):
        match = _WARNING.match(line.strip())
        if not match:
            continue
        entry = {"op": match.group("op"), "tensor": match.group("ofm"), "reason": "", "rule": ""}
        following = [ln.strip() for ln in lines[index + 1 : index + 4]]
        if following and following[0].startswith("Reason:"):
            entry["reason"] = following[0][len("Reason:") :].strip()
            if len(following) > 1 and following[1] and not following[1].startswith(("Warning", "#")):
                entry["rule"] = following[1]
        found.append(entry)
    return found


def _count(stdout: str, kind: str) -> int:
    match = re.search(rf"^{kind} operators = (\d+)", stdout, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _estimates(summary: Path | None) -> dict[str, Any]:
    if summary is None or not summary.is_file():
        return {}
    with summary.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    row = rows[0]

    def number(key: str) -> float:
        try:
            return float(row.get(key) or 0.0)
        except ValueError:
            return 0.0

    return {
        "accelerator": row.get("accelerator_configuration", ""),
        "system_config": row.get("system_config", ""),
        "memory_mode": row.get("memory_mode", ""),
        "core_clock_mhz": round(number("core_clock") / 1e6, 3),
        "cycles_npu": int(number("cycles_npu")),
        "cycles_total": int(number("cycles_total")),
        "inference_time_s": number("inference_time"),
        "inferences_per_second": round(number("inferences_per_second"), 3),
        "nn_macs": int(number("nn_macs")),
        "sram_used_kib": round(number("sram_memory_used"), 3),
        "dram_used_kib": round(number("dram_memory_used"), 3),
        "off_chip_used_kib": round(number("off_chip_flash_memory_used") + number("dram_memory_used"), 3),
        "sram_bytes_per_inference": int(number("sram_total_bytes")),
        "off_chip_flash_bytes_per_inference": int(number("off_chip_flash_total_bytes")),
        "dram_bytes_per_inference": int(number("dram_total_bytes")),
        "weights_original_bytes": int(number("total_original_weights")),
        "weights_npu_encoded_bytes": int(number("total_npu_encoded_weights")),
        "weights_storage": row.get("weights_storage_area", ""),
        "feature_map_storage": row.get("feature_map_storage_area", ""),
    }


def _tail(text: str, limit: int = 400) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " ".join(" | ".join(lines[-4:]).split())[-limit:] if lines else "no output"


def vela_arguments(accelerator: str, options: Mapping[str, str]) -> list[str]:
    """Vela's configuration arguments: accelerator, config file, system config and memory mode, pass-through options."""
    if accelerator not in ACCELERATORS:
        raise UsageError(f"unknown Ethos-U accelerator configuration '{accelerator}'", hint=f"one of {', '.join(ACCELERATORS)}")
    unknown = sorted(set(options) - set(PASS_THROUGH))
    if unknown:
        raise UsageError(f"unknown Vela --vendor-option {', '.join(unknown)}", hint=f"known: {', '.join(sorted(PASS_THROUGH))}")
    spec = FAMILIES[family_of(accelerator)[0]]
    values = {"config": "Arm/vela.ini", "system-config": spec.system_config, "memory-mode": spec.memory_mode, **dict(options)}
    args = ["--accelerator-config", accelerator]
    for key in (
        "config",
        "system-config",
        "memory-mode",
        *sorted(k for k in values if k not in ("config", "system-config", "memory-mode")),
    ):
        args += [PASS_THROUGH[key], str(values[key])]
    return args


def run_vela(tflite: Path, out_dir: Path, *, accelerator: str, options: Mapping[str, str] = {}, timeout: int = 600) -> VelaReport:
    """Compile `tflite` with Vela into `out_dir` (output TFLite + summary CSVs) and parse its reports."""
    command = require_vela(f"compiling for {accelerator} with Vela")
    out_dir.mkdir(parents=True, exist_ok=True)
    full = [
        *command,
        str(tflite),
        *vela_arguments(accelerator, options),
        "--output-dir",
        str(out_dir),
        "--output-format",
        "tflite",
        "--verbose-performance",
        "--show-cpu-operations",
    ]
    proc = _run(full, timeout=timeout)
    stem = tflite.stem
    output = out_dir / f"{stem}_vela.tflite"
    if proc.returncode != 0 or not output.is_file():
        raise UnsupportedError(
            f"Vela could not compile {tflite.name} for {accelerator} (exit {proc.returncode}): "
            f"{_tail(proc.stderr or proc.stdout)}"
        )
    summaries = sorted(out_dir.glob(f"{stem}_summary_*.csv"))
    per_layer = out_dir / f"{stem}_per-layer.csv"
    report = VelaReport(
        command=["vela", tflite.name, *full[len(command) + 1 : -6], "--output-dir", ".", *full[-4:]],
        output=output,
        summary_csv=summaries[0] if summaries else None,
        per_layer_csv=per_layer if per_layer.is_file() else None,
        version=vela_version(command),
        stdout=proc.stdout,
    )
    report.estimates = _estimates(report.summary_csv)
    report.cpu_fallback = parse_cpu_fallback(proc.stdout)
    report.npu_operators = _count(proc.stdout, "NPU")
    report.cpu_operators = _count(proc.stdout, "CPU")
    for line in proc.stderr.splitlines():
        if line.strip():
            log.info("vela: %s", line.strip())
    return report
