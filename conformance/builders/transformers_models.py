"""Hugging Face transformers built from small configs with seeded random weights (source = "transformers").

Each entry is given to edgecc as users hold it: a generated `model.py` whose `make()` builds the transformers model
itself (BertModel, GPT2LMHeadModel, ...; its forward signature unwrapped, with its many defaulted and non-tensor
parameters) in eval mode. Nothing is downloaded: a model is built from a config (`HF_HUB_OFFLINE=1`).

`build = { model = "bert" }` picks a spec of MODELS; an optional `config = { ... }` table overrides config fields.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SAMPLES = 8
SEQ = 16
VOCAB = 1000

_TEXT = {"vocab_size": VOCAB, "max_position_embeddings": 64}
_ENCODER = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}

#: build.model -> config class, model class, how make() reaches the model from it, config, inputs, the output checked
MODELS: dict[str, dict[str, Any]] = {
    "bert": {
        "config": "BertConfig",
        "model": "BertModel",
        "kwargs": {**_TEXT, **_ENCODER},
        "inputs": {"input_ids": "ids", "attention_mask": "mask"},
        "output": "last_hidden_state",
    },
    "distilbert": {
        "config": "DistilBertConfig",
        "model": "DistilBertModel",
        "kwargs": {**_TEXT, "dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128},
        "inputs": {"input_ids": "ids", "attention_mask": "mask"},
        "output": "last_hidden_state",
    },
    "mobilebert": {
        "config": "MobileBertConfig",
        "model": "MobileBertModel",
        "kwargs": {
            **_TEXT,
            **_ENCODER,
            "embedding_size": 32,
            "intra_bottleneck_size": 32,
            "true_hidden_size": 32,
            "num_feedforward_networks": 2,
            "initializer_range": 0.1,  # at 0.02 NoNorm leaves outputs that hardly depend on the input
        },
        "inputs": {"input_ids": "ids", "attention_mask": "mask"},
        "output": "last_hidden_state",
    },
    "vit": {
        "config": "ViTConfig",
        "model": "ViTModel",
        "kwargs": {**_ENCODER, "image_size": 32, "patch_size": 8, "num_channels": 3},
        "inputs": {"pixel_values": (3, 32, 32)},
        "output": "last_hidden_state",
    },
    "whisper-encoder": {
        "config": "WhisperConfig",
        "model": "WhisperModel",
        "getter": ".get_encoder()",
        # the encoder takes exactly 2 * max_source_positions frames (two convolutions, the second of stride 2)
        "kwargs": {
            "vocab_size": VOCAB,
            "num_mel_bins": 80,
            "d_model": 64,
            "encoder_layers": 2,
            "encoder_attention_heads": 4,
            "encoder_ffn_dim": 128,
            "decoder_layers": 1,
            "decoder_attention_heads": 4,
            "decoder_ffn_dim": 128,
            "max_source_positions": 16,
            "max_target_positions": 16,
            "pad_token_id": VOCAB - 1,
            "bos_token_id": VOCAB - 2,
            "eos_token_id": VOCAB - 1,
            "decoder_start_token_id": VOCAB - 2,
            "suppress_tokens": None,
            "begin_suppress_tokens": None,
            "init_std": 0.1,  # at 0.02 the sinusoidal positions swamp the features
        },
        "inputs": {"input_features": (80, 32)},
        "output": "last_hidden_state",
    },
    "wav2vec2": {
        "config": "Wav2Vec2Config",
        "model": "Wav2Vec2Model",
        # 7 feature convolutions of total stride 320: 1600 samples give 4 frames
        "kwargs": {
            **_ENCODER,
            "vocab_size": 32,
            "conv_dim": (32,) * 7,
            "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 4,
        },
        "inputs": {"input_values": (1600,)},
        "output": "last_hidden_state",
    },
    "gpt2": {
        "config": "GPT2Config",
        "model": "GPT2LMHeadModel",
        "kwargs": {
            "vocab_size": VOCAB,
            "n_positions": 64,
            "n_embd": 64,
            "n_layer": 2,
            "n_head": 4,
            "use_cache": False,
            "bos_token_id": VOCAB - 1,
            "eos_token_id": VOCAB - 1,
        },
        "inputs": {"input_ids": "ids"},
        "output": "logits",
    },
    "llama": {
        "config": "LlamaConfig",
        "model": "LlamaForCausalLM",
        "kwargs": {
            **_TEXT,
            **_ENCODER,
            "num_key_value_heads": 2,
            "use_cache": False,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        "inputs": {"input_ids": "ids"},
        "output": "logits",
    },
}

_MODEL_PY = '''"""{origin}: a small transformers model with seeded random weights (edgecc conformance zoo)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402

CONFIG = {config}


def make():
    """The {model}{getter} in eval mode, its weights seeded with torch.manual_seed(0)."""
    torch.manual_seed(0)
    config = transformers.{config_class}(**CONFIG)
    return transformers.{model}(config){getter}.eval()
'''


def _spec(entry: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """The MODELS spec of an entry and its config (the spec's with the entry's `build.config` overrides)."""
    key = entry["build"].get("model")
    if key not in MODELS:
        raise ValueError(f"build.model must be one of {', '.join(MODELS)} (got {key!r})")
    spec = MODELS[key]
    return spec, {**spec["kwargs"], **entry["build"].get("config", {})}


def _samples(inputs: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """8 seeded samples per input: token ids in [3, VOCAB) (0 where masked), masks of 8..16 leading ones, N(0, 1) floats."""
    lengths = rng.integers(SEQ // 2, SEQ + 1, size=SAMPLES)
    samples: dict[str, np.ndarray] = {}
    for name, kind in inputs.items():
        if kind == "ids":
            ids = rng.integers(3, VOCAB, size=(SAMPLES, 1, SEQ), dtype=np.int64)
            if "attention_mask" in inputs:  # padding positions hold the pad id 0
                ids[np.arange(SEQ)[None, None, :] >= lengths[:, None, None]] = 0
            samples[name] = ids
        elif kind == "mask":
            samples[name] = (np.arange(SEQ)[None, None, :] < lengths[:, None, None]).astype(np.int64)
        else:
            samples[name] = rng.standard_normal((SAMPLES, 1, *kind)).astype(np.float32)
    return samples


def _import_make(path: Path) -> Any:
    """The make() of the generated model.py, imported from its file as edgecc does."""
    spec = importlib.util.spec_from_file_location(f"conformance_transformers_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.make


def build(entry: dict, out: Path, cache: Path) -> dict:
    """Write model.py (make() builds the transformers model), samples.npz and reference.npz of the torch outputs."""
    import torch
    import transformers

    spec, config = _spec(entry)
    origin = f"transformers {transformers.__version__} {spec['model']}{spec.get('getter', '')}"
    text = _MODEL_PY.format(
        origin=origin,
        config="{\n" + "".join(f"    {key!r}: {value!r},\n" for key, value in config.items()) + "}",
        model=spec["model"],
        config_class=spec["config"],
        getter=spec.get("getter", ""),
    )
    (out / "model.py").write_text(text)
    model = _import_make(out / "model.py")()

    samples = _samples(spec["inputs"], np.random.default_rng(0))
    np.savez(out / "samples.npz", **samples)
    results = []
    with torch.no_grad():
        for i in range(SAMPLES):
            result = model(**{name: torch.from_numpy(array[i]) for name, array in samples.items()})
            results.append(result[spec["output"]].numpy())
    np.savez(out / "reference.npz", **{"0": np.stack(results)})

    convert_args: list[str] = []
    for name, array in samples.items():
        dims = "x".join(map(str, array.shape[1:]))
        convert_args += ["--input", f"{name}:{dims}:int64" if array.dtype == np.int64 else f"{name}:{dims}"]
    size = ", ".join(f"{k} {v}" for k, v in config.items() if k in ("hidden_size", "dim", "n_embd", "d_model"))
    return {
        "files": ["model.py:make"],
        "convert_args": convert_args,
        "inputs": list(samples),
        "outputs": [spec["output"]],
        "runtime": f"torch {torch.__version__}",
        "origin": f"{origin} ({size}, 2 layers), seeded weights",
    }
