# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
# The CPU wheel. Installed before the project so no requirement can pull a CUDA build of torch.
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: $(STAMP)
	$(BIN)/cliffhmr predict examples --out out --profile

# Headless Chromium opens the annotator's review page (tests/test_review.py) and the server's page
# (tests/test_serve_page.py). Installed once where apt can (root, Debian); elsewhere those tests
# skip and say why.
test: $(STAMP)
	@[ -x /usr/bin/chromium ] || { command -v apt-get >/dev/null && apt-get update -q >/dev/null 2>&1 && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } || \
		echo "chromium not installed (no apt or no root): tests/test_review.py and tests/test_serve_page.py will skip their page tests"
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out
