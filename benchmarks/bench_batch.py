"""Benchmark of the batch job from a checkout (see src/degarble/bench_batch.py).

    python benchmarks/bench_batch.py --model BUNDLE_DIR --output eval/reports/bench_batch.json
    python benchmarks/bench_batch.py --model BUNDLE_DIR --records 2000 --workers-list 1,2,4 --engines local
    python benchmarks/bench_batch.py --model BUNDLE_DIR --big-gb 1     # memory stays bounded on a 1 GB input
"""

import argparse
import sys

from degarble.bench_batch import add_bench_batch_arguments, run_bench_batch_from_args

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="benchmarks/bench_batch.py")
    add_bench_batch_arguments(parser)
    sys.exit(run_bench_batch_from_args(parser.parse_args()))
