"""spark-submit entry point of `spark-recs evaluate` (options: `spark-submit jobs/evaluate.py --help`).

Example: spark-submit jobs/evaluate.py --config conf/example.yaml --input ./prepared --model model.pth
"""

import sys

from spark_recs.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
