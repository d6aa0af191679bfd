"""spark-submit entry point of `spark-recs multieval` (options: `spark-submit jobs/multieval.py --help`).

Example: spark-submit jobs/multieval.py --config conf/multieval-ml-latest-small.yaml
"""

import sys

from spark_recs.cli import main

if __name__ == "__main__":
    sys.exit(main(["multieval", *sys.argv[1:]]))
