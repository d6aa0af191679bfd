"""spark-submit entry point of `spark-recs recommend` (options: `spark-submit jobs/recommend.py --help`).

Example: spark-submit jobs/recommend.py --model model.pth --input clicks.tsv --output ./recs
"""

from _entry import run  # jobs/_entry.py: spark-submit puts this folder first on sys.path

if __name__ == "__main__":
    run("recommend")
