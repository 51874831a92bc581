# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/valueeval23

.PHONY: install demo test test-fast full-run clean

# What scoring needs, and only that (no torch, no Ray): `make demo` stops here.
$(BIN)/.scoring: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of ONNX Runtime comes with the package. A venv made before it was (or switched to
	# the GPU build) holds onnxruntime-gpu, which must not share the venv with it: both go, one returns.
	$(BIN)/python -m pip uninstall -q -y onnxruntime-gpu onnxruntime
	$(BIN)/python -m pip install -q -e .
	touch $@

# Training, export and the test suite on top: `make test`.
$(BIN)/.installed: $(BIN)/.scoring
	# A CPU build of torch first: a bare 'torch' requirement can pull a several-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[train,dev]'
	touch $@

install: $(BIN)/.installed

## Score a sample file with the packaged model (trained on the real data) and label one argument.
demo: $(BIN)/.scoring
	@mkdir -p runs
	$(BIN)/score examples/to-score.tsv -o runs/demo-scores.tsv
	@echo "--- runs/demo-scores.tsv: the labels of the first rows (1 = the argument draws on that value) ---"
	@head -5 runs/demo-scores.tsv | cut -f1-8
	$(BIN)/argvalues predict --premise "Cheap buses let poor families reach work and school" \
	    --stance "in favor of" --conclusion "We should subsidize public transport"

## The linter (ruff, configured in pyproject.toml), then the whole suite.
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

## Without the real data (runs where ../shared is absent).
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not integration"

## The full run recorded in benchmarks/README.md (about an hour on a 2-core CPU).
full-run: install
	bash benchmarks/full_run.sh $(DATA) runs/full

clean:
	rm -rf runs argvalues-model .pytest_cache
