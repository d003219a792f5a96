"""Options every command takes (--json, -q, -v, --debug) and shared option parsers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from edgecc.ui import Ui

__all__ = [
    "active_ui",
    "common_options",
    "data_option",
    "image_options",
    "keep_initializer_inputs_option",
    "SEED",
    "model_files",
    "forget_active_ui",
    "model_files_arguments",
    "split_names",
    "tolerance_options",
]

#: the type of every --seed option: numpy's random generators take 0..2**32-1 here (edgecc.data.synthetic.MAX_SEED)
SEED = click.IntRange(0, 2**32 - 1)

#: files after MODEL: WEIGHTS, and for Caffe2 the documented third file (predict_net init_net value_info.json)
MAX_EXTRA_FILES = 2

_ACTIVE: list[Ui] = []


def active_ui() -> Ui | None:
    """The Ui of the command now running (for error reporting in `edgecc.cli.main`)."""
    return _ACTIVE[-1] if _ACTIVE else None


def forget_active_ui() -> None:
    """Start an invocation with no command running (`edgecc.cli.main` may be called more than once in a process)."""
    _ACTIVE.clear()


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --json/-q/-v/--debug and pass a configured `ui` to the command."""

    @click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout and nothing else.")
    @click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
    @click.option("-v", "--verbose", count=True, help="More detail (-vv for debug logging).")
    @click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
    @functools.wraps(func)
    def wrapper(*args: Any, json_mode: bool, quiet: bool, verbose: int, debug: bool, **kwargs: Any) -> Any:
        ui = Ui(json_mode=json_mode, quiet=quiet, verbose=verbose, debug=debug)
        ui.setup_logging()
        _ACTIVE.append(ui)
        return func(*args, ui=ui, **kwargs)

    return wrapper


def tolerance_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --atol/--rtol/--min-cosine."""
    func = click.option("--min-cosine", type=float, default=None, help="Minimum cosine similarity per output.")(func)
    func = click.option(
        "--rtol",
        type=float,
        default=None,
        help="Max abs error allowed relative to the reference output range (fp32 default 1e-4).",
    )(func)
    func = click.option(
        "--atol", type=float, default=None, help="Absolute max abs error allowed on top of rtol (fp32 default 1e-6)."
    )(func)
    return func


def keep_initializer_inputs_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --keep-initializer-inputs (edgecc.passes' constant-initializer-inputs is skipped)."""
    return click.option(
        "--keep-initializer-inputs",
        is_flag=True,
        help="Keep initializers that are also listed as graph inputs overridable (default: treated as constants, "
        "as IR < 4 files and exporters that list every weight mean them).",
    )(func)


def model_files_arguments(func: Callable[..., Any]) -> Callable[..., Any]:
    """MODEL [WEIGHTS [VALUE_INFO]]: the model and up to MAX_EXTRA_FILES files that belong to it (`model_files`)."""
    func = click.argument("weights", nargs=-1, metavar="[WEIGHTS [VALUE_INFO]]")(func)
    return click.argument("model")(func)


def model_files(model: str, weights: tuple[str, ...]) -> list[str]:
    """The model's files in order; more than MAX_EXTRA_FILES after MODEL is a usage error."""
    from edgecc.errors import UsageError

    if len(weights) > MAX_EXTRA_FILES:
        raise UsageError(
            f"too many files: '{weights[MAX_EXTRA_FILES]}' after MODEL {model} and {', '.join(weights[:MAX_EXTRA_FILES])}",
            hint="give MODEL [WEIGHTS]; a Caffe2 model takes predict_net init_net [value_info.json]",
        )
    return [model, *weights]


def split_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """Flatten repeated and comma-separated option values."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def data_option(
    name: str = "--data", dest: str = "data", *, what: str = "Inputs"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A repeatable DATA option (`--data` or `--calibration`): the same grammar and meaning in every command (edgecc.data)."""
    from edgecc.data.sources import DATA_HELP

    return click.option(name, dest, multiple=True, metavar="DATA", help=f"{what}: {DATA_HELP}.")


def image_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --mean/--std/--layout/--size/--bgr (how image folders of DATA become tensors) and pass `images: ImageOptions`."""

    @click.option("--mean", default=None, help="Images: per-channel mean of pixels/255 (e.g. 0.485,0.456,0.406).")
    @click.option("--std", default=None, help="Images: per-channel std of pixels/255.")
    @click.option(
        "--layout", type=click.Choice(["nchw", "nhwc"]), default=None, help="Images: input layout (guessed from the shape)."
    )
    @click.option("--size", default=None, metavar="N|HxW", help="Images: resize+centre-crop size (default the input's).")
    @click.option("--bgr", is_flag=True, help="Images: keep BGR channel order.")
    @functools.wraps(func)
    def wrapper(
        *args: Any, mean: str | None, std: str | None, layout: str | None, size: str | None, bgr: bool, **kwargs: Any
    ) -> Any:
        from edgecc.data import ImageOptions, parse_size, to_float_list

        images = ImageOptions(
            mean=to_float_list(mean, "--mean") or (0.0,),
            std=to_float_list(std, "--std") or (1.0,),
            layout=layout,
            size=parse_size(size),
            bgr=bgr,
        )
        return func(*args, images=images, **kwargs)

    return wrapper
