"""spark-submit entry point of `spark-recs train` (options: `spark-submit jobs/train.py --help`).

Example: spark-submit jobs/train.py --config conf/example.yaml --input ./prepared
"""

from _entry import run  # jobs/_entry.py: spark-submit puts this folder first on sys.path

if __name__ == "__main__":
    run("train")
