"""spark-submit entry point of `spark-recs multieval` (options: `spark-submit jobs/multieval.py --help`).

Example: spark-submit jobs/multieval.py --config conf/multieval-ml-latest-small.yaml
"""

from _entry import run  # jobs/_entry.py: spark-submit puts this folder first on sys.path

if __name__ == "__main__":
    run("multieval")
