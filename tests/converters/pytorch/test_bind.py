"""edgecc.converters.pytorch.bind: --input specs and --arg values bound to forward()'s parameters."""

from __future__ import annotations

import pytest
import torch

from edgecc.converters.pytorch.bind import bind, python_parameters, script_parameters
from edgecc.errors import UsageError
from edgecc.inputs import parse_input_specs


def _forward(input_ids, attention_mask=None, token_type_ids=None, *, use_cache: bool = False, labels=None):
    return input_ids, attention_mask, token_type_ids, use_cache, labels


def _bind(specs, args=None, function=_forward):
    params, var_keyword = python_parameters(function)
    return bind(params, parse_input_specs(specs), dict(args or {}), "test", var_keyword=var_keyword)


def test_specs_bind_by_name_and_defaults_stay_unbound():
    binding, infos = _bind(["attention_mask:1x16:int64", "input_ids:1x16:int64"])
    assert [i.name for i in infos] == ["input_ids", "attention_mask"]  # forward()'s order
    ids, mask = torch.ones(1, 16), torch.zeros(1, 16)
    assert binding.call(_forward, [ids, mask]) == (ids, mask, None, False, None)


def test_unnamed_specs_bind_positionally_to_the_first_parameters():
    binding, infos = _bind(["ids:1x8:int64", "mask:1x8:int64"])
    assert [i.name for i in infos] == ["ids", "mask"]
    assert binding.tensors == ["input_ids", "attention_mask"]


def test_skipped_parameter_sends_later_ones_by_keyword():
    binding, _ = _bind(["input_ids:1x4:int64", "token_type_ids:1x4:int64"], {"use_cache": True})
    args, kwargs = binding.arguments(["ids", "types"])
    assert args == ["ids"] and kwargs == {"token_type_ids": "types", "use_cache": True}


def test_keyword_only_inputs_are_passed_by_keyword():
    def forward(x, *, mask):
        return x, mask

    binding, infos = _bind(["x:2", "mask:2:bool"], function=forward)
    assert [i.dtype for i in infos] == ["float32", "bool"]
    assert binding.arguments(["a", "b"]) == (["a"], {"mask": "b"})


def test_required_parameter_without_a_spec_is_named():
    def forward(x, y, sr: int, scale=1.0):
        return x

    with pytest.raises(UsageError) as info:
        _bind(["x:1x3"], function=forward)
    assert "y" in info.value.message and "sr (int)" in info.value.message
    assert "--input y:" in info.value.hint and "--arg sr=" in info.value.hint


def test_arg_values_are_coerced_and_checked():
    def forward(x, sr: int, gain: float = 1.0, mode: str = "a"):
        return x

    binding, _ = _bind(["x:4"], {"sr": 16000, "gain": 2, "mode": 1}, function=forward)
    assert binding.constants == {"sr": 16000, "gain": 2.0, "mode": "1"}
    assert isinstance(binding.constants["gain"], float)
    with pytest.raises(UsageError, match="declares sr as int"):
        _bind(["x:4"], {"sr": "fast"}, function=forward)
    with pytest.raises(UsageError, match="no such forward"):
        _bind(["x:4"], {"sr": 1, "rate": 2}, function=forward)


def test_extra_args_go_to_var_keyword():
    def forward(x, **kwargs):
        return kwargs

    binding, _ = _bind(["x:4"], {"output_attentions": False}, function=forward)
    assert binding.call(forward, ["t"]) == {"output_attentions": False}


def test_too_many_specs_and_no_specs_are_usage_errors():
    with pytest.raises(UsageError, match="forward takes"):
        _bind(["a:1", "b:1", "c:1", "d:1"])
    with pytest.raises(UsageError, match="no input shapes"):
        _bind([])


def test_torchscript_schema_gives_types_and_defaults():
    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor, sr: int, gain: float = 2.0) -> torch.Tensor:
            return x * gain if sr == 16000 else x

    params = script_parameters(torch.jit.script(Net()))
    assert [(p.name, p.type_name, p.required) for p in params] == [
        ("x", "Tensor", True),
        ("sr", "int", True),
        ("gain", "float", False),
    ]
    binding, _ = bind(params, parse_input_specs(["x:3"]), {"sr": 16000}, "test")
    assert binding.arguments(["t"]) == (["t", 16000], {})
