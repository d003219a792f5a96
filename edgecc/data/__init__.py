"""Sample data: one grammar for `--data`/`--calibration` values, one reader per kind of source, one `bind`.

`load_samples(values, inputs, options)` reads DATA values (see `edgecc.data.sources` for the grammar) and binds
them to the model's inputs; `bind(samples, inputs)` checks samples made elsewhere with the same rules and wording.
Errors: a malformed value or a missing path is exit 2; unreadable data or data that does not fit the model is
exit 3, naming the option, the file and the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgecc.data.bind import bind
from edgecc.data.evaluation import read_evaluation
from edgecc.data.images import IMAGE_SUFFIXES, ImageOptions, parse_size, to_float_list
from edgecc.data.sources import DATA_HELP, DataOptions, DataSource, SampleSet, parse_data_value, parse_data_values, read_samples
from edgecc.data.synthetic import concrete_shape, random_feeds
from edgecc.inputs import TensorInfo

__all__ = [
    "DATA_HELP",
    "IMAGE_SUFFIXES",
    "DataOptions",
    "DataSource",
    "ImageOptions",
    "SampleSet",
    "bind",
    "concrete_shape",
    "load_samples",
    "parse_data_value",
    "parse_data_values",
    "parse_size",
    "random_feeds",
    "random_samples",
    "samples_or_random",
    "read_evaluation",
    "read_samples",
    "to_float_list",
]


def load_samples(
    values: str | Sequence[str] | Sequence[DataSource] | SampleSet | Sequence[Mapping[str, Any]],
    inputs: Sequence[TensorInfo],
    options: DataOptions | None = None,
) -> SampleSet:
    """Read DATA values and bind them to `inputs`: checked feeds, their origins and a description (empty for no values).

    Samples already in memory (a SampleSet, or dicts of input name -> array) are checked by the same rules.
    """
    options = options or DataOptions()
    if isinstance(values, SampleSet):
        read = SampleSet(list(values.feeds), list(values.origins), values.description, values.random)
    elif not isinstance(values, str) and values and isinstance(values[0], Mapping):
        read = SampleSet(list(values), [f"sample {i}" for i in range(len(values))], f"{len(values)} samples")
    else:
        read = read_samples(values, inputs, options)
    read.feeds = bind(read.feeds, inputs, option=options.option, origins=read.origins, finite=options.finite)
    return read


def random_samples(inputs: Sequence[TensorInfo], *, count: int, seed: int = 0) -> SampleSet:
    """`count` deterministic random samples (the default data of commands given none)."""
    feeds = random_feeds(inputs, seed=seed, count=count)
    return SampleSet(feeds, [f"random sample {i}" for i in range(count)], f"random ({count} samples, seed {seed})", random=True)


def samples_or_random(values: Any, inputs: Sequence[TensorInfo], options: DataOptions | None = None) -> SampleSet:
    """The samples of DATA values (`load_samples`), or without any `options.random_count` random ones (`.random` set)."""
    options = options or DataOptions()
    if values:
        return load_samples(values, inputs, options)
    return random_samples(inputs, count=options.random_count, seed=options.seed)
