"""Loaded (through PYTHONPATH) by every process the conformance harness starts.

PyPI's torchvision 0.28 wheel is a CUDA build: its C operators (nms, roi_align: detection only) cannot load beside
the CPU build of torch 2.13 pinned here, and its import then fails while registering their meta kernels
("operator torchvision::nms does not exist"). Those registrations are skipped, so torchvision's pure-Python models
(and timm and transformers, which import torchvision) load; calling a detection operator still fails loudly.
"""

import sys
import types

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
