"""spark-submit entry point of `spark-recs promote` (options: `spark-submit jobs/promote.py --help`).

Example: spark-submit jobs/promote.py --config conf/example.yaml --input ./prepared --registered-model spark_recs-gru4rec
"""

from _entry import run  # jobs/_entry.py: spark-submit puts this folder first on sys.path

if __name__ == "__main__":
    run("promote")
