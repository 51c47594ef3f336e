"""Run the evaluation harness from a checkout: the same as ``degarble eval`` (see eval/README.md).

    python eval/run.py                      # every set in eval/sets/ -> eval/reports/
    python eval/run.py --sets seed-dev --limit 50
    python eval/run.py --pairs pairs.jsonl --clean clean.jsonl --output report.json
"""

import argparse
import sys

from degarble.evaluate import add_eval_arguments, run_eval_from_args

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="eval/run.py", formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_arguments(parser)
    sys.exit(run_eval_from_args(parser.parse_args()))
