# The two set-up commands: `make demo` and `make test`. Both create or update .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench-prepare clean check-tools

check-tools:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "spark_recs needs Python 3.11 or newer (found %s); install it and run again, or set PYTHON=python3.11" % sys.version.split()[0])'
	@v=$$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -1); \
	if [ -z "$$v" ]; then echo "Java not found: install a Java 17+ runtime (e.g. 'apt-get install openjdk-17-jre-headless') and set JAVA_HOME"; exit 1; fi; \
	if [ "$$v" -lt 17 ]; then echo "Java $$v found but Spark 4 needs Java 17+: install openjdk-17-jre-headless (or newer) and set JAVA_HOME"; exit 1; fi

$(STAMP): pyproject.toml
	$(MAKE) --no-print-directory check-tools
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch 2.13.0 first, so the project's range is already met and no CUDA build is pulled.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[local,dev]"
	# recmetrics, the reference the beyond-accuracy test compares with, without its Jupyter/plotting
	# dependencies: the test reads only its metrics module (numpy, pandas, scipy, scikit-learn: mlflow's).
	$(BIN)/python -m pip install --quiet --no-deps "recmetrics==0.1.5"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spark-recs demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check spark_recs tests jobs benchmarks
	$(BIN)/ruff format --check spark_recs tests jobs benchmarks

bench-prepare: $(STAMP)
	$(BIN)/python benchmarks/prepare.py

clean:
	rm -rf $(VENV) .spark_recs
