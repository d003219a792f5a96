"""The `edgecc` command line: a click group whose subcommands live in `edgecc.commands.*`.

Subcommands are imported only when run, so `edgecc --help` stays fast; errors
are mapped here to one-line messages and the exit codes of DESIGN.md.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from edgecc import __version__

__all__ = ["cli", "main", "COMMANDS"]

#: command name -> (module, one-line help); the module defines `command`
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("edgecc.commands.convert", "Convert a model from any supported framework to ONNX, verified against it."),
    "inspect": ("edgecc.commands.inspect", "Show inputs, outputs, opsets, operators, parameters and MACs of a model."),
    "verify": ("edgecc.commands.verify", "Compare the outputs of two models on the same inputs."),
    "optimize": ("edgecc.commands.optimize", "Run cleanup and fusion passes on an ONNX model, verified against it."),
    "passes": ("edgecc.commands.passes", "List the optimisation passes and levels."),
    "quantize": (
        "edgecc.commands.quantize",
        "Quantise a model: static int8 with calibration, dynamic or fp16, with an accuracy report.",
    ),
    "compile": ("edgecc.commands.compile", "Partition a model by cost for an accelerator target and write a verified bundle."),
    "run": ("edgecc.commands.run", "Run a bundle (or an ONNX model) partition by partition; optionally benchmark."),
    "targets": ("edgecc.commands.targets", "List targets, show their operator support and costs, check a model against them."),
    "bench": (
        "edgecc.commands.bench",
        "Benchmark a model or bundle per target: latency, throughput, memory, size, accuracy, speed-up.",
    ),
    "zoo": ("edgecc.commands.zoo", "Run a model zoo over targets, report it, and compare it with a baseline."),
}

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 internal error, 2 usage, 3 invalid or corrupt input, "
    "4 unsupported operator/feature, 5 numerics outside tolerance, 6 missing optional dependency."
)


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[name][0])
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in COMMANDS.items()])


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edgecc", message="%(prog)s %(version)s")
def cli() -> None:
    """edgecc: convert, optimise, quantise and compile neural networks for edge accelerators."""


def _report_error(exc: BaseException, debug: bool, json_mode: bool) -> int:
    from edgecc.errors import EXIT_INTERNAL, EdgeccError

    if isinstance(exc, EdgeccError):
        code, line, data = exc.exit_code, exc.one_line(), exc.to_dict()
    else:
        code = EXIT_INTERNAL
        line = (
            f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:500]} "
            "(this is a bug; rerun with --debug for the traceback)"
        )
        data = {"kind": "internal", "exit_code": code, "message": line}
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"edgecc: error: {line}", file=sys.stderr)
    if json_mode:
        import json

        print(json.dumps({"ok": False, "error": data}, indent=2, default=str))
    return code


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `edgecc` console script."""
    from edgecc.commands import common

    common.forget_active_ui()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("EDGECC_DEBUG") == "1"
    json_mode = "--json" in args
    try:
        cli.main(args=args, prog_name="edgecc", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        print("edgecc: aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        if json_mode:
            import json

            error = {"kind": "usage", "exit_code": exc.exit_code, "message": exc.format_message(), "hint": None, "path": None}
            print(json.dumps({"ok": False, "error": error}, indent=2))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("edgecc: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 -- the CLI's last resort: every failure becomes one line and an exit code
        active = common.active_ui()
        json_wanted = json_mode or bool(active and active.json_mode)
        already_emitted = bool(active and active.json_emitted)
        sys.exit(_report_error(exc, debug or bool(active and active.debug), json_wanted and not already_emitted))
    sys.exit(0)
