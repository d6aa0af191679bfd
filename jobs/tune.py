"""spark-submit entry point of `spark-recs tune` (options: `spark-submit jobs/tune.py --help`).

Example: spark-submit jobs/tune.py --config conf/tune-gru4rec-rsc15.yaml --input ./prepared --train-best
"""

from _entry import run  # jobs/_entry.py: spark-submit puts this folder first on sys.path

if __name__ == "__main__":
    run("tune")
