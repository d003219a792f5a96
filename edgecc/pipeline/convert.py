"""`edgecc convert` end to end: frontend -> opset -> -O1 cleanup -> cut -> shapes -> check -> metadata, then verification."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecc import __version__
from edgecc.converters import Frontend, detect_frontend
from edgecc.converters.options import ConvertOptions
from edgecc.errors import UsageError
from edgecc.fileio import sha256_of

if TYPE_CHECKING:
    import onnx

    from edgecc.inputs import InputSpec
    from edgecc.verify import Runnable, Tolerance, VerificationReport

__all__ = ["Conversion", "convert", "conversion_tolerance", "verify_conversion", "open_runnable"]

log = logging.getLogger(__name__)


@dataclass
class Conversion:
    """A converted model and what is needed to verify it against its source."""

    model: "onnx.ModelProto"
    frontend: Frontend
    sources: tuple[str, ...]
    options: ConvertOptions
    verifiable_model: "onnx.ModelProto"  # the model whose outputs match the framework's outputs
    notes: list[str] = field(default_factory=list)


def _set_metadata(model: "onnx.ModelProto", frontend: Frontend, sources: Sequence[str]) -> None:
    model.producer_name = "edgecc"
    model.producer_version = __version__
    props = {p.key: p.value for p in model.metadata_props}
    props["edgecc.frontend"] = frontend.name
    props["edgecc.source"] = ", ".join(Path(s.split(".py:")[0] + (".py" if ".py:" in s else "")).name for s in sources)
    hashes = [sha256_of(s) for s in sources if Path(s).is_file()]
    if hashes:
        props["edgecc.source_sha256"] = ",".join(hashes)
    del model.metadata_props[:]
    for key in sorted(props):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, props[key]


def _cleanup(model: "onnx.ModelProto", options: ConvertOptions) -> "onnx.ModelProto":
    """The -O1 cleanup passes (names recorded in the model's metadata)."""
    from edgecc.passes import LEVELS, PassContext, run_passes
    from edgecc.pipeline.optimize import stamp_passes

    names = LEVELS[1]
    context = PassContext(opset=options.opset, keep_initializer_inputs=options.keep_initializer_inputs)
    cleaned, report = run_passes(model, names, context=context)
    log.info("cleanup: %d -> %d nodes", report.nodes_before, report.nodes_after)
    stamp_passes(cleaned, names)
    return cleaned


def convert(sources: Sequence[str], options: ConvertOptions, *, stamp: bool = True) -> Conversion:
    """Convert model files to a checked ONNX model at the requested opset."""
    from edgecc.onnxutil import check_model, extract_outputs, infer_shapes
    from edgecc.opset import convert_opset

    if not sources:
        raise UsageError("no model file given")
    frontend = detect_frontend(sources, options.framework)
    log.info("converting %s with the %s frontend", sources[0], frontend.name)
    model = frontend.convert(sources, options)
    if options.opset is not None:
        model = convert_opset(model, options.opset, path=sources[0])
    if options.optimize:
        model = _cleanup(model, options)
    model = infer_shapes(model)
    verifiable = model
    if options.outputs:
        model = extract_outputs(model, options.outputs, path=sources[0])
        model = infer_shapes(model)
        if frontend.name == "onnx":
            verifiable = model
    check_model(model, path=sources[0])
    if stamp:
        _set_metadata(model, frontend, sources)
    return Conversion(model, frontend, tuple(sources), options, verifiable)


def conversion_tolerance(conversion: Conversion) -> "Tolerance":
    """The default criteria of a conversion's check: what the frontend asks for its source (e.g. quantised steps), else fp32."""
    from edgecc.verify import tolerance_for

    frontend = conversion.frontend
    chosen = (
        frontend.default_tolerance(conversion.sources, conversion.options) if frontend.default_tolerance is not None else None
    )
    return chosen or tolerance_for("fp32")


def verify_conversion(
    conversion: Conversion,
    tolerance: "Tolerance | None" = None,
    *,
    data: Any = (),
    seed: int = 0,
) -> "VerificationReport | None":
    """Compare the converted model with the original framework; None when the frontend has no runnable reference.

    `data`: DATA values (`edgecc.data` grammar) or feeds; none: one random sample. `tolerance` None: `conversion_tolerance`.
    """
    from edgecc.data import DataOptions, samples_or_random
    from edgecc.ortrun import OrtRunner
    from edgecc.verify import compare_samples, emulated_int8_tolerance

    frontend = conversion.frontend
    if frontend.reference is None:
        return None
    candidate = OrtRunner(conversion.verifiable_model, name="converted ONNX")
    notes: list[str] = []
    samples = samples_or_random(data, candidate.inputs, DataOptions(option="--data", seed=seed, random_count=1))
    feeds = samples.feeds
    if samples.random:
        notes.append(f"random inputs (seed {seed})")
        if any(not info.is_static() for info in candidate.inputs):
            notes.append("dynamic dimensions set to 1 for verification")
    reference = frontend.reference(conversion.sources, conversion.options)
    criteria = tolerance or conversion_tolerance(conversion)
    if tolerance is None and candidate.int8_kernels == "reference":
        emulated = emulated_int8_tolerance(criteria)
        if emulated is not criteria:
            notes.append(
                "onnxruntime runs int8 here as a float emulation (its reference kernels, edgecc.ortint8): integer "
                "outputs judged by max abs error <= 4 % of their scale (the emulated_integer preset), not in quantisation "
                "steps"
            )
            criteria = emulated
    report = compare_samples(reference, candidate, feeds, criteria)
    if conversion.verifiable_model is not conversion.model:
        notes.append("verified before cutting at --output")
    report.notes = notes + report.notes
    return report


def open_runnable(
    path: str, specs: Sequence["InputSpec"] = (), framework: str | None = None, weights: str | None = None
) -> "Runnable":
    """A runnable model for `edgecc verify`: ONNX under onnxruntime, bundles by the runtime, other formats in
    their own framework (`weights` is the second file of two-file formats: caffemodel, state dict, ...)."""
    from edgecc.onnxutil import apply_input_specs, load_onnx
    from edgecc.ortrun import OrtRunner

    if path.endswith(".edgecc") or (Path(path).is_dir() and (Path(path) / "manifest.json").is_file()):
        from edgecc.runtime import load

        return load(path)
    sources = [path] + ([weights] if weights else [])
    frontend = detect_frontend(sources, framework)
    if frontend.name == "onnx":
        if weights:
            raise UsageError(f"an ONNX model takes no weights file (got '{weights}')")
        model = apply_input_specs(load_onnx(path), specs, path=path)
        return OrtRunner(model, name=path)
    if frontend.reference is None:
        raise UsageError(
            f"'{path}' ({frontend.name}) cannot be run here", hint="convert it to ONNX first, then verify the ONNX file"
        )
    return frontend.reference(sources, ConvertOptions(framework=frontend.name, inputs=tuple(specs)))
