"""spark-submit entry point of `spark-recs train` (options: `spark-submit jobs/train.py --help`).

Example: spark-submit jobs/train.py --config conf/example.yaml --input ./prepared
"""

import sys

from spark_recs.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
