"""Zoo files: strict keys and types, missing files and unknown targets are exit 3 naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecc.errors import InvalidInputError
from edgecc.zoo.config import find_line, load_zoo
from tests.conftest import assert_clean_failure, make_conv_onnx, run_edgecc

GOOD = """# a zoo
[zoo]
name = "t"
targets = ["cpu", "mali-gpu"]
runs = 5

[[model]]
name = "a"
files = ["cnn.onnx"]

[[model]]
name = "b"
files = ["cnn.onnx"]
targets = ["cpu"]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    make_conv_onnx(tmp_path / "cnn.onnx", batch=1)
    return tmp_path


def _error(folder: Path, text: str) -> str:
    path = folder / "zoo.toml"
    path.write_text(text)
    with pytest.raises(InvalidInputError) as info:
        load_zoo(path)
    return info.value.one_line()


def test_good_zoo(folder: Path) -> None:
    path = folder / "zoo.toml"
    path.write_text(GOOD)
    config = load_zoo(path)
    assert [(m.name, t) for m, t in config.pairs()] == [("a", "cpu"), ("a", "mali-gpu"), ("b", "cpu")]
    assert config.runs == 5 and config.repeats == 30 and Path(config.models[0].files[0]).is_file()


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ('files = ["cnn.onnx"]\ntargets', 'files = ["cnn.onnx"]\nflies = 1\ntargets', 14, ["unknown key 'flies'", "[model] #2"]),
        ("runs = 5", "runs = 5\nrepeat = 3", 6, ["unknown key 'repeat'", "known keys"]),
        ('name = "b"\nfiles = ["cnn.onnx"]', 'name = "b"\nfiles = ["missing.onnx"]', 13, ["missing.onnx", "does not exist"]),
        ('targets = ["cpu"]', 'targets = ["cpu", "tpu9000"]', 14, ["unknown target 'tpu9000'"]),
        ("runs = 5", 'runs = "five"', 5, ["'runs' must be an integer"]),
        ('name = "b"', 'name = "a"', 12, ["used twice"]),
        ("# a zoo", "[zooo]\nx = 1", 1, ["unknown table or key 'zooo'"]),
    ],
)
def test_zoo_errors_name_the_line(folder: Path, old: str, new: str, line: int, words: list[str]) -> None:
    message = _error(folder, GOOD.replace(old, new, 1))
    assert f"zoo.toml:{line}:" in message
    for word in words:
        assert word in message


def test_toml_syntax_error(folder: Path) -> None:
    assert "line 3" in _error(folder, GOOD.replace('name = "t"', "name = t"))


def test_find_line_tables_and_keys() -> None:
    text = 'top = 1\n[zoo]\nruns = 2\n[[model]]\nname = "a"\n[[model]]\n"name" = "b"\n'
    assert find_line(text, None, 0, "top") == 1 and find_line(text, "zoo", 0, "runs") == 3
    assert find_line(text, "model", 1, "name") == 7 and find_line(text, "model", 1, None) == 6
    assert find_line(text, "model", 0, "runs") is None


def test_zoo_run_bad_file_is_exit_3_on_the_command_line(folder: Path) -> None:
    path = folder / "zoo.toml"
    path.write_text(GOOD.replace("runs = 5", "runs = 5\ncolour = 1"))
    result = run_edgecc("zoo", "run", path, "-o", folder / "out")
    assert result.returncode == 3
    assert f"{path}:6: unknown key 'colour'" in result.stderr and "Traceback" not in result.stderr
    assert not (folder / "out" / "run.json").exists()


@pytest.mark.parametrize(
    ("old", "new", "key", "bounds"),
    [
        ("runs = 5", "runs = 5\nrepeats = 2147483647", "repeats", "1..1000"),
        ("runs = 5", "runs = 0", "runs", "1..100000"),
        ("runs = 5", "runs = 100001", "runs", "1..100000"),
        ("runs = 5", "runs = 5\nwarmup = -1", "warmup", "0..10000"),
        ("runs = 5", "runs = 5\nsamples = 1000000000", "samples", "1..10000"),
        ("runs = 5", "runs = 5\nseed = -1", "seed", "0..4294967295"),
        ("runs = 5", "runs = 5\nlevel = 7", "level", "0..3"),
        ('name = "b"', 'name = "b"\nepoch = -3', "epoch", "0..9999"),
        ('name = "b"', 'name = "b"\nopset = 99999999999', "opset", "1..1000"),
    ],
)
def test_counts_out_of_bounds_name_the_key_the_bounds_and_the_line(folder: Path, old, new, key, bounds) -> None:
    message = _error(folder, GOOD.replace(old, new, 1))
    assert f"'{key}' must be {bounds}" in message and "zoo.toml:" in message


def test_zoo_run_with_absurd_repeats_fails_at_once(folder: Path) -> None:
    """repeats = 2147483647 was accepted and `zoo run` ran for ever."""
    path = folder / "zoo.toml"
    path.write_text(GOOD.replace("runs = 5", "runs = 5\nrepeats = 2147483647"))
    result = run_edgecc("zoo", "run", path, "-o", folder / "out", timeout=120)
    line = assert_clean_failure(result, 3, "zoo.toml:6:", "'repeats' must be 1..1000")
    assert "2147483647" in line
    assert not (folder / "out" / "run.json").exists()
