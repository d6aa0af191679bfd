"""spark-submit entry point of `spark-recs recommend` (options: `spark-submit jobs/recommend.py --help`).

Example: spark-submit jobs/recommend.py --model model.pth --input clicks.tsv --output ./recs
"""

import sys

from spark_recs.cli import main

if __name__ == "__main__":
    sys.exit(main(["recommend", *sys.argv[1:]]))
