"""What every job in jobs/ does: run one ``spark-recs`` step, or say in one line that the Python spark-submit
runs lacks the package (spark-submit takes ``$PYSPARK_PYTHON``, else the first ``python3`` on the PATH)."""

import sys


def run(command: str) -> None:
    """Exit with the status of ``spark-recs <command> <this job's arguments>``."""
    try:
        from spark_recs.cli import main
    except ModuleNotFoundError as missing:
        sys.exit(
            f"spark-submit jobs/{command}.py: error: {missing.name} is not installed in {sys.executable}, the "
            "Python spark-submit runs; activate the virtual environment (. .venv/bin/activate) or set "
            "PYSPARK_PYTHON=$PWD/.venv/bin/python"
        )
    sys.exit(main([command, *sys.argv[1:]]))
