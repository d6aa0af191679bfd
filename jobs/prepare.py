"""spark-submit entry point of `spark-recs prepare` (options: `spark-submit jobs/prepare.py --help`).

Example: spark-submit jobs/prepare.py --config conf/example.yaml --input clicks.tsv --output ./prepared
"""

import sys

from spark_recs.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
