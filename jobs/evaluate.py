"""spark-submit entry point of `spark-recs evaluate` (options: `spark-submit jobs/evaluate.py --help`).

Example: spark-submit jobs/evaluate.py --config conf/example.yaml --input ./prepared --model model.pth
"""

from _entry import run  # jobs/_entry.py: spark-submit puts this folder first on sys.path

if __name__ == "__main__":
    run("evaluate")
