# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install the package into it. CPU torch is pinned only here
# (TORCH_SPEC) so that tests stay small; a user's own `pip install vsrdata` is free to get CUDA.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= demo_out
DEMO_ITERS ?= 1200

.PHONY: demo test venv clean gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,onnx,tensorboard]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(BIN)/python -m vsrdata.demo --out $(DEMO_DIR) --iterations $(DEMO_ITERS)

test: venv
	$(BIN)/python -m pytest -q

# Everything we want to know the first time a CUDA machine is available (under 8 minutes);
# without CUDA it says so and exits 0.
gpu-check: venv
	$(BIN)/python bench/gpu_check.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache gpu_check_out
