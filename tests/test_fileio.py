"""edgecc.fileio: atomic outputs that never clobber, checked input files."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from edgecc.errors import InvalidInputError, UsageError
from edgecc.fileio import (
    DEFAULT_MAX_INPUT_BYTES,
    atomic_output,
    atomic_write_bytes,
    check_input_file,
    max_input_bytes,
    read_bytes,
    resolve_named_path,
    sha256_of,
)


class _Boom(Exception):
    pass


def test_atomic_output_keeps_old_file_and_leaves_no_temp_when_body_raises(tmp_path):
    target = tmp_path / "out.onnx"
    target.write_bytes(b"old content")
    seen = {}
    with pytest.raises(_Boom):
        with atomic_output(target) as tmp:
            seen["tmp"] = tmp
            assert tmp.parent == tmp_path  # beside the target, so os.replace is atomic
            assert tmp != target
            tmp.write_bytes(b"half written new cont")
            raise _Boom()
    assert target.read_bytes() == b"old content"
    assert not seen["tmp"].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]


def test_atomic_output_failure_without_existing_file_leaves_nothing(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(_Boom):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise _Boom()
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_cleans_up_on_keyboard_interrupt(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"keep me")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"x")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_output_replaces_on_success(tmp_path):
    target = tmp_path / "out.onnx"
    target.write_bytes(b"old content that is longer than the new one")
    with atomic_output(target) as tmp:
        # the old file is untouched while the new content is being written
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old content that is longer than the new one"
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx"]


def test_atomic_output_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "m.bin") as tmp:
            tmp.write_bytes(b"1")
    finally:
        os.umask(old)
    # mkstemp creates 0600 files; the result must be a normal 0644 file
    assert stat.S_IMODE((tmp_path / "m.bin").stat().st_mode) == 0o644


def test_atomic_output_suffix(tmp_path):
    with atomic_output(tmp_path / "m.npz", suffix=".npz") as tmp:
        assert tmp.name.endswith(".npz")
        tmp.write_bytes(b"z")
    assert (tmp_path / "m.npz").read_bytes() == b"z"


def test_atomic_output_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with atomic_output("rel.bin") as tmp:
        tmp.write_bytes(b"r")
    assert (tmp_path / "rel.bin").read_bytes() == b"r"


def test_atomic_output_missing_directory_is_usage_error(tmp_path):
    with pytest.raises(UsageError) as info:
        with atomic_output(tmp_path / "no" / "such" / "out.bin"):
            pass
    assert info.value.exit_code == 2
    assert not (tmp_path / "no").exists()


def test_atomic_output_onto_a_directory_is_usage_error(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError):
        with atomic_output(tmp_path / "d"):
            pass
    assert (tmp_path / "d").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_atomic_write_bytes(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"\x00\x01\x02")
    assert target.read_bytes() == b"\x00\x01\x02"
    atomic_write_bytes(target, b"zz")
    assert target.read_bytes() == b"zz"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_check_input_file_ok(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"abc")
    assert check_input_file(path) == path
    assert check_input_file(str(path)) == path
    assert read_bytes(path) == b"abc"


def test_check_input_file_missing_is_usage_error(tmp_path):
    with pytest.raises(UsageError) as info:
        check_input_file(tmp_path / "nope.onnx")
    assert info.value.exit_code == 2
    assert "nope.onnx" in info.value.message
    assert "does not exist" in info.value.message


def test_check_input_file_broken_symlink_is_usage_error(tmp_path):
    link = tmp_path / "link.onnx"
    link.symlink_to(tmp_path / "gone.onnx")
    with pytest.raises(UsageError):
        check_input_file(link)


def test_check_input_file_empty_is_invalid_input(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(InvalidInputError) as info:
        check_input_file(path)
    assert info.value.exit_code == 3
    assert "empty" in info.value.message
    assert info.value.path == str(path)


def test_check_input_file_directory_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInputError) as info:
        check_input_file(tmp_path, what="data file")
    assert "directory" in info.value.message
    assert info.value.message.startswith("data file")


def test_size_limit_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"x" * 11)
    monkeypatch.setenv("EDGECC_MAX_INPUT_BYTES", "10")
    assert max_input_bytes() == 10
    with pytest.raises(InvalidInputError) as info:
        check_input_file(path)
    assert info.value.exit_code == 3
    assert "11 bytes" in info.value.message and "10-byte limit" in info.value.message
    assert "EDGECC_MAX_INPUT_BYTES" in (info.value.hint or "")
    with pytest.raises(InvalidInputError):
        read_bytes(path)
    # exactly at the limit is fine
    monkeypatch.setenv("EDGECC_MAX_INPUT_BYTES", "11")
    assert check_input_file(path) == path


def test_size_limit_default_and_bad_value(monkeypatch):
    monkeypatch.delenv("EDGECC_MAX_INPUT_BYTES", raising=False)
    assert max_input_bytes() == DEFAULT_MAX_INPUT_BYTES == 16 * 1024**3
    monkeypatch.setenv("EDGECC_MAX_INPUT_BYTES", "")
    assert max_input_bytes() == DEFAULT_MAX_INPUT_BYTES
    monkeypatch.setenv("EDGECC_MAX_INPUT_BYTES", "lots")
    with pytest.raises(UsageError):
        max_input_bytes()


def test_sha256_of_matches_hashlib(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- non-regular files, paths named inside files


def test_check_input_file_refuses_a_device_and_a_fifo(tmp_path):
    link = tmp_path / "zero.onnx"
    link.symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.onnx")
    for path in (link, tmp_path / "pipe.onnx"):
        with pytest.raises(InvalidInputError, match="not a regular file") as info:
            check_input_file(path)
        assert info.value.exit_code == 3 and path.name in info.value.message


def test_check_input_file_symlink_loop_is_invalid_input(tmp_path):
    (tmp_path / "a.onnx").symlink_to("b.onnx")
    (tmp_path / "b.onnx").symlink_to("a.onnx")
    with pytest.raises(InvalidInputError, match="loop of symbolic links"):
        check_input_file(tmp_path / "a.onnx")


def test_resolve_named_path_accepts_files_and_links_inside_the_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.bin").write_bytes(b"w")
    (tmp_path / "link.bin").symlink_to("sub/w.bin")
    named_in = tmp_path / "model.json"
    assert resolve_named_path(tmp_path, "sub/w.bin", named_in=named_in) == (tmp_path / "sub" / "w.bin").resolve()
    assert resolve_named_path(tmp_path, "link.bin", named_in=named_in) == (tmp_path / "sub" / "w.bin").resolve()
    assert resolve_named_path(tmp_path, "missing.bin", named_in=named_in) == tmp_path / "missing.bin"


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../w.bin", "outside its folder"),
        ("/etc/passwd", "outside its folder"),
        ("a\\b", "outside its folder"),
        ("", "not a file name"),
        (3, "not a file name"),
        (b"\xff.bin", "not valid UTF-8"),
        ("\udcff.bin", "not valid UTF-8"),
        ("out.bin", "outside the folder"),
        ("loop.bin", "loop of symbolic links"),
        ("fifo.bin", "not a regular file"),
        ("dangling.bin", "dangling"),
    ],
)
def test_resolve_named_path_refusals(tmp_path, name, problem):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"secret")
    (folder / "out.bin").symlink_to(tmp_path / "secret.bin")
    (folder / "loop.bin").symlink_to("loop2.bin")
    (folder / "loop2.bin").symlink_to("loop.bin")
    (folder / "dangling.bin").symlink_to("gone.bin")
    os.mkfifo(folder / "fifo.bin")
    with pytest.raises(InvalidInputError, match=problem) as info:
        resolve_named_path(folder, name, named_in=folder / "model.json", what="weight shard")
    assert info.value.exit_code == 3 and "model.json" in info.value.message
