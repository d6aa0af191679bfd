"""spark-submit entry point of `spark-recs prepare` (options: `spark-submit jobs/prepare.py --help`).

Example: spark-submit jobs/prepare.py --config conf/example.yaml --input clicks.tsv --output ./prepared
"""

from _entry import run  # jobs/_entry.py: spark-submit puts this folder first on sys.path

if __name__ == "__main__":
    run("prepare")
