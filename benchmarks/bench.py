"""Benchmark from a checkout: the same as ``degarble bench`` (see src/degarble/bench.py and eval/README.md).

    python benchmarks/bench.py --output eval/reports/bench.json
    python benchmarks/bench.py --model models/en-small --articles 20 --threads 2
"""

import argparse
import sys

from degarble.bench import add_bench_arguments, run_bench_from_args

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="benchmarks/bench.py")
    add_bench_arguments(parser)
    sys.exit(run_bench_from_args(parser.parse_args()))
