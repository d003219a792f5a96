# edgecc: `make demo` and `make test` set up everything on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
EDGECC := $(VENV)/bin/edgecc
SHARED_MODELS ?= $(abspath ../shared/models)
PYTEST_WORKERS ?= 2
DEMO_DIR ?= build/demo
# seconds after which make conformance starts no more work (listed as not run, not judged): CI's time guard
CONFORMANCE_BUDGET ?= 3600
NODE_TESTS := build/onnx-node-tests/.complete
# Arm NN 20.08 (Debian): the armnn target runs its TFLite artifacts with it (system python3, CpuRef backend)
ARMNN_PACKAGES := python3-pyarmnn libarmnn-cpuref-backend22 libarmnntfliteparser22
ARMNN := build/.armnn-installed

.PHONY: install demo test test-fast lint test-shared conformance conformance-accept bench zoo-ci clean

install: $(VENV)/.installed $(NODE_TESTS) $(ARMNN)

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; run 'make PYTHON=python3 ...'" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# the onnx backend node tests (peer suite of the passes), from the onnx 1.22 wheel on the package index
$(NODE_TESTS): $(VENV)/.installed
	$(PY) -m tests.passes.onnx_backend_suite --fetch

# Debian's Arm NN packages for the armnn target (apt-get as root; elsewhere say what to install)
$(ARMNN):
	@mkdir -p build
	@if /usr/bin/python3 -c "import pyarmnn" >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(ARMNN_PACKAGES) >/dev/null; \
	else echo "error: Arm NN is missing: run 'sudo apt-get install $(ARMNN_PACKAGES)'" >&2; exit 1; fi
	touch $@

demo: install
	@mkdir -p $(DEMO_DIR)
	$(PY) samples/make_sample_data.py $(DEMO_DIR)
	@echo "== convert a real PyTorch model (ResNet-20, CIFAR-10) and verify it against torch on a real image"
	$(EDGECC) convert samples/pytorch/resnet20.py:resnet20 samples/models/resnet20_cifar10/resnet20-12fca82f.th \
		--input input:1x3x32x32 --data input=$(DEMO_DIR)/cat_32x32.npy -o $(DEMO_DIR)/resnet20.onnx
	@echo "== inspect it"
	$(EDGECC) inspect $(DEMO_DIR)/resnet20.onnx
	@echo "== convert the ONNX model to opset 13 and verify the two ONNX models against each other"
	$(EDGECC) convert $(DEMO_DIR)/resnet20.onnx --opset 13 -o $(DEMO_DIR)/resnet20_op13.onnx
	$(EDGECC) verify $(DEMO_DIR)/resnet20.onnx $(DEMO_DIR)/resnet20_op13.onnx --data input=$(DEMO_DIR)/cat_32x32.npy
	@echo "== compare with the outputs the original project's model produced"
	$(PY) samples/check_reference.py $(DEMO_DIR)/resnet20.onnx samples/models/resnet20_cifar10/ref/cat_32x32.npz
	@echo "== the Makefile pipeline: optimise, quantise, compile for an NPU, run the bundle, verify it"
	$(MAKE) --no-print-directory -f samples/pipeline/Makefile OUT=$(DEMO_DIR)/pipeline EDGECC=$(EDGECC) PY=$(PY)
	@echo "== the benchmark/regression loop: one model through convert, quantize, compile, bench; the sample zoo (real models x targets), report, compare with the baseline"
	$(MAKE) --no-print-directory -f samples/zoo/Makefile OUT=$(DEMO_DIR)/zoo EDGECC=$(EDGECC) PY=$(PY) WORKERS=$(PYTEST_WORKERS)
	@echo "== the zoo again (every pair re-measured), compared with the accepted baseline, whose bundles are re-measured interleaved with the new ones (valid on a busy machine): nothing changed, so no regression"
	$(MAKE) --no-print-directory -f samples/zoo/Makefile zoo-compare OUT=$(DEMO_DIR)/zoo EDGECC=$(EDGECC) PY=$(PY) WORKERS=$(PYTEST_WORKERS) RUN_FLAGS=--force COMPARE_FLAGS=--rerun-baseline

test: install lint
	$(PY) -m pytest -m "not shared" --ignore=tests/shared -n $(PYTEST_WORKERS) -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# the edit-test loop (under a minute): tests that spawn no process and import neither torch nor TensorFlow
# (tests/conftest.py selects them and makes such an import fail in this lane)
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m fast --ignore=tests/shared -n $(PYTEST_WORKERS) -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# ruff with the rules and line length of pyproject.toml (part of make test)
lint: install
	$(PY) -m ruff check .

test-shared: install
	@test -d "$(SHARED_MODELS)" || { echo "error: $(SHARED_MODELS) not found (set SHARED_MODELS=...)" >&2; exit 1; }
	EDGECC_SHARED_MODELS=$(SHARED_MODELS) $(PY) -m pytest tests/shared -m shared -n $(PYTEST_WORKERS) -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no shared-model tests" >&2; exit 1; fi; exit $$rc

# the conformance zoo (conformance/): every entry built or fetched, through convert/optimize/quantize/compile for every
# target, judged against its original runtime; exit 5 when a result that conformance/accepted.json has ok is not ok now
conformance: install
	$(PY) -m conformance --workers $(PYTEST_WORKERS) --out build/conformance --budget $(CONFORMANCE_BUDGET)

# record the current outcomes as the accepted result (after a fix, or when entries are added)
conformance-accept: install
	$(PY) -m conformance --workers $(PYTEST_WORKERS) --out build/conformance --accept

bench: install
	$(PY) benchmarks/convert_overhead.py
	$(PY) benchmarks/optimize.py
	$(PY) benchmarks/caffe_convert.py
	$(PY) benchmarks/caffe2_convert.py
	$(PY) benchmarks/mxnet_convert.py
	$(PY) benchmarks/tf_convert_overhead.py
	$(PY) benchmarks/partition.py
	$(PY) benchmarks/quantize.py
	$(PY) benchmarks/tflite_emitter.py
	$(PY) benchmarks/zoo_scale.py
	$(PY) -m tests.passes.onnx_backend_suite

# the zoo loop as a CI job: run the sample zoo, compare with the accepted baseline in build/zoo/baseline (exit 5 on a regression)
zoo-ci: install
	$(MAKE) --no-print-directory -f samples/zoo/Makefile OUT=build/zoo EDGECC=$(EDGECC) PY=$(PY) WORKERS=$(PYTEST_WORKERS)

clean:
	rm -rf build .pytest_cache
