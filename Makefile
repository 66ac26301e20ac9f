# The one way in: `make app` and `make test` set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.app-stamp
DEV_STAMP := $(VENV)/.dev-stamp
# llama-cpp-python builds from source (minutes): keep the wheel between runs. It is built for
# any x86-64 with AVX2, not for this CPU: a native build crashed in libggml-cpu (a general
# protection fault on every request) on a machine that reports AMX and AVX-512.
WHEELS ?= $(HOME)/.cache/rag-wheels/avx2
LLAMA := llama-cpp-python==0.3.36
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: install install-dev llm browser index app test test-security lint eval bench bench-beir clean

# What the app needs, and nothing else (about 2 min on a fresh clone).
install: $(APP_STAMP)

# The app, the test tools and the local LLM (its wheel is compiled once: minutes).
install-dev: $(DEV_STAMP)

llm: install-dev

# Re-install only when the project's dependencies change. `rag prepare` makes the model's ONNX
# encoders (10-16 s on 2 cores, once per machine), so the first index and question need not.
$(APP_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	$(BIN)/rag prepare
	touch $(APP_STAMP)

$(DEV_STAMP): $(APP_STAMP)
	mkdir -p $(WHEELS)
	ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/pip wheel --quiet --no-deps --no-cache-dir \
			'$(LLAMA)' -w $(WHEELS)
	$(BIN)/pip install --quiet --find-links $(WHEELS) -e '.[test,llm]'
	touch $(DEV_STAMP)

# Headless Chromium for the browser tests, from Debian (never a downloaded browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "note: chromium missing and not root: the browser tests will skip"; fi; }

index: install
	$(BIN)/rag index

# The page serves as soon as every section has its vector (a first pass); the per-line vectors
# follow in the background, with a progress line. `make index` builds everything up front.
app: install
	$(BIN)/python app.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint browser
	$(BIN)/pytest tests/ eval/

# The attacks that matter most (DNS rebinding, endless LLM streams, huge notes, bad bytes,
# broken index files, leaked secrets), on their own; `make test` runs them too.
test-security: install-dev browser
	$(BIN)/pytest tests/security/

eval: install-dev
	$(BIN)/pytest eval/ -q

# Default notes, then 10k and 100k synthetic chunks (about 7 min on 2 cores); writes
# docs/benchmarks.md and .json. The 1M leg: $(BIN)/python bench/run.py --sizes 10000,100000,1000000
bench: install-dev
	$(BIN)/python bench/run.py

bench-beir: install
	$(BIN)/rag beir ../shared/bench/scifact

clean:
	rm -rf index/gen-* index/CURRENT index/CURRENT.tmp index/.lock
