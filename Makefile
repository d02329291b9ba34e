# reko: `make demo` and `make test` do all the set-up on a fresh machine (Debian/Ubuntu).
# Prerequisites: Python 3.11+, Java 17 and Maven (for the local OpenSearch node).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# opencv-doc ships vtest.avi, the real street scene the finish-line footage is generated over
APT_PACKAGES := ffmpeg tesseract-ocr tesseract-ocr-eng tesseract-ocr-kor fonts-nanum fonts-dejavu-core chromium opencv-doc
# only the Celery soak needs these (the broker and the metadata DB of a distributed deployment)
SOAK_APT_PACKAGES := redis-server postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PYTHONPATH := $(CURDIR)/plugins

.PHONY: help install system-deps soak-deps venv opensearch-build opensearch airflow demo stop compose-plugin test test-fast soak soak-celery lint format bench clean

help:
	@echo "make demo     install, start OpenSearch + Airflow on 127.0.0.1, analyse the sample, print the bibs"
	@echo "make test     install, then run every test (real OpenSearch, Airflow, ffmpeg, OCR)"
	@echo "make opensearch | make airflow   run one local service in the foreground"
	@echo "make stop     stop what make demo started;  make lint | make bench | make soak (200-video load test)"
	@echo "make soak-celery   the archive through CeleryExecutor: Redis, Postgres, two workers sharing only S3"

install: system-deps venv opensearch-build

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi
	@command -v java >/dev/null && command -v mvn >/dev/null || \
		{ echo "Java 17 and Maven are required for the local OpenSearch node (apt-get install openjdk-17-jdk-headless maven)"; exit 1; }


venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	@touch $@

opensearch-build: venv
	$(PY) -m reko.localdev.opensearch --build-only

opensearch: opensearch-build
	$(PY) -m reko.localdev.opensearch --port 9200

airflow: venv
	$(PY) -m reko.localdev.airflow_services --port 8080

demo: install
	$(PY) -m reko.localdev.demo

stop:
	@for name in airflow opensearch; do \
		f=.data/run/$$name.pid; [ -f $$f ] || continue; \
		pid=$$(cat $$f); kill -TERM -- -$$pid 2>/dev/null || kill -TERM $$pid 2>/dev/null; \
		for i in $$(seq 30); do kill -0 $$pid 2>/dev/null || break; sleep 1; done; \
		rm -f $$f; echo "stopped $$name"; \
	done

# tests validate docker-compose.yaml with `docker compose config` (no engine needed)
compose-plugin:
	@if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then \
		echo "Building the docker compose v2 CLI plugin from its Go module ..."; \
		bash include/docker/install-compose-plugin.sh; \
	fi

# two test processes (pytest-xdist): much of the suite waits on Airflow or runs one task at a time
# in-process, which leaves a core idle. tests/conftest.py keeps each costly shared fixture's users
# on one worker and the workers on one OpenSearch node.
TEST_WORKERS ?= 2
test: install compose-plugin
	$(PY) -m pytest -n $(TEST_WORKERS) --durations=25

# test-fast runs the compose tests too, so it needs the compose plugin as much as `make test` does
MARKERS ?= not slow
test-fast: venv compose-plugin
	$(PY) -m pytest -m "$(MARKERS)"

# the archive load test at archive scale (200 videos, ~25 min; the suite runs it with 30), then
# the same DAGs on Airflow's distributed engine
soak: install
	REKO_LOAD_VIDEOS=$${REKO_LOAD_VIDEOS:-200} $(PY) -m pytest tests/test_archive_load.py -s
	$(MAKE) soak-celery

soak-deps:
	@missing=""; for p in $(SOAK_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

# CeleryExecutor, Redis broker, Postgres metadata DB, two workers sharing nothing but S3 (moto); ~4 min
# at 12 videos (REKO_CELERY_VIDEOS). Never part of `make test` (tests/conftest.py skips collecting it).
soak-celery: install soak-deps
	REKO_SOAK_CELERY=1 REKO_CELERY_VIDEOS=$${REKO_CELERY_VIDEOS:-12} $(PY) -m pytest tests/test_archive_celery.py -s

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: install
	$(PY) bench/bench_analysis.py
	$(PY) bench/bench_cut.py
	$(PY) bench/bench_rekognition.py
	$(PY) bench/bench_bulk.py
	$(PY) bench/bench_archive.py
	$(PY) bench/bench_search.py --serve-app
	$(PY) bench/bench_faces.py

clean: stop
	rm -rf .data .airflow include/opensearch/launcher/target
