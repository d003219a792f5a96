"""edgecc.registry: decorator registration, duplicates, lookups, LazyModule."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from edgecc.registry import DuplicateEntryError, LazyModule, Registry


def test_decorator_registers_and_returns_the_object_unchanged():
    reg: Registry = Registry("op converter")

    @reg.register("Relu")
    def relu(x):
        return max(x, 0)

    @reg.register("Sigmoid")
    class Sigmoid:
        pass

    assert relu(-3) == 0  # the decorator returned the function itself
    assert reg.get("Relu") is relu
    assert reg.get("Sigmoid") is Sigmoid
    assert "Relu" in reg and "Sigmoid" in reg and "Tanh" not in reg
    assert len(reg) == 2


def test_direct_registration_returns_entry():
    reg: Registry = Registry("thing")
    entry = object()
    assert reg.register("a", entry) is entry
    assert reg.get("a") is entry


def test_order_is_registration_order():
    reg: Registry = Registry("pass")
    for name in ["zeta", "alpha", "mid"]:
        reg.register(name, name.upper())
    assert reg.names() == ["zeta", "alpha", "mid"]
    assert list(reg) == ["zeta", "alpha", "mid"]
    assert reg.items() == [("zeta", "ZETA"), ("alpha", "ALPHA"), ("mid", "MID")]


def test_duplicate_registration_is_detected_and_keeps_the_first():
    reg: Registry = Registry("target")
    first = object()
    reg.register("npu", first)
    with pytest.raises(DuplicateEntryError) as info:
        reg.register("npu", object())
    assert "npu" in str(info.value) and "target" in str(info.value)
    assert isinstance(info.value, ValueError)

    with pytest.raises(DuplicateEntryError):

        @reg.register("npu")
        def again():
            pass

    assert reg.get("npu") is first
    assert len(reg) == 1


def test_get_unknown_lists_known_names_sorted():
    reg: Registry = Registry("framework")
    for name in ["tflite", "caffe", "onnx"]:
        reg.register(name, name)
    with pytest.raises(KeyError) as info:
        reg.get("keras")
    text = str(info.value)
    assert "unknown framework 'keras'" in text
    assert "known: caffe, onnx, tflite" in text


def test_get_unknown_in_empty_registry():
    reg: Registry = Registry("target")
    with pytest.raises(KeyError) as info:
        reg.get("x")
    assert "known: none" in str(info.value)


def test_registries_are_independent():
    a: Registry = Registry("a")
    b: Registry = Registry("b")
    a.register("same", 1)
    b.register("same", 2)
    assert a.get("same") == 1 and b.get("same") == 2


def _write_module(folder: Path, name: str) -> None:
    (folder / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import builtins
            builtins._edgecc_lazy_imports = getattr(builtins, "_edgecc_lazy_imports", 0) + 1
            VALUE = 42
            """
        )
    )


def test_lazy_module_imports_on_first_load_only(tmp_path, monkeypatch):
    import builtins

    name = "edgecc_lazy_probe_mod"
    _write_module(tmp_path, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(builtins, "_edgecc_lazy_imports", 0, raising=False)
    monkeypatch.delitem(sys.modules, name, raising=False)

    lazy = LazyModule(name)
    assert lazy.dotted_path == name
    assert name not in sys.modules  # building it imports nothing
    assert builtins._edgecc_lazy_imports == 0

    module = lazy.load()
    assert module.VALUE == 42
    assert sys.modules[name] is module
    assert builtins._edgecc_lazy_imports == 1

    # the module is cached by the LazyModule itself: even with the import cache cleared, no re-import
    del sys.modules[name]
    assert lazy.load() is module
    assert builtins._edgecc_lazy_imports == 1


def test_lazy_module_of_a_missing_module_fails_on_load_not_on_creation():
    lazy = LazyModule("edgecc_no_such_module_anywhere")
    with pytest.raises(ModuleNotFoundError):
        lazy.load()


def test_lazy_modules_in_a_registry():
    reg: Registry[LazyModule] = Registry("frontend")
    reg.register("json", LazyModule("json"))
    import json

    assert reg.get("json").load() is json
