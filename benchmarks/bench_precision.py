"""Speed of each precision against fp32, measured in one process with the passes interleaved.

    python benchmarks/bench_precision.py --output eval/reports/bench-precision.json
    python benchmarks/bench_precision.py --precisions fp32 int8 bf16 --rounds 5

``degarble bench`` times one precision per run against the plain pipeline; on a shared machine
whose speed drifts between runs, two such runs do not compare precisions well. Here every round
times each precision once, in turn, on the same articles (600-word held-out BBC articles, spun at
the medium rate, as ``degarble bench``), so drift hits all of them alike. The report gives the
median articles/s of each and its ratio to the first precision listed (the baseline, fp32).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import degarble
from degarble.bench import DEFAULT_CORPUS, REPO_ROOT, _read_paragraphs, make_articles


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/bench_precision.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "int8"], help="the first is the baseline")
    ap.add_argument("--model", metavar="DIR", help="model bundle (default: as degarble.load finds it)")
    ap.add_argument("--articles", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds; each times every precision once")
    ap.add_argument("--batch-size", type=int, default=8, help="articles per call (as degarble bench)")
    ap.add_argument("--corpus", type=Path, default=REPO_ROOT / DEFAULT_CORPUS)
    ap.add_argument("--output", metavar="OUT.json", help="write the JSON report here (default: standard output)")
    args = ap.parse_args(argv)
    if not args.corpus.is_file():
        print(f"error: {args.corpus} not found; build it with: python data/build_corpus.py", file=sys.stderr)
        return 2
    articles = [degarble.spin(a, rate="medium", seed=13).text
                for a in make_articles(_read_paragraphs(args.corpus), args.articles)]
    models = {p: degarble.load(args.model, precision=p) for p in args.precisions}
    ops = {"detect": lambda m, xs: m.detect(xs, batch_size=args.batch_size),
           "restore": lambda m, xs: m.restore(xs, batch_size=args.batch_size)}
    times: dict = {op: {p: [] for p in models} for op in ops}
    for m in models.values():  # warm-up: first calls allocate and pack weights
        for fn in ops.values():
            fn(m, articles[:1])
    for r in range(args.rounds):
        for op, fn in ops.items():
            for p, m in models.items():
                t = time.perf_counter()
                fn(m, articles)
                times[op][p].append(time.perf_counter() - t)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    base = args.precisions[0]
    speed = {op: {p: len(articles) / statistics.median(ts) for p, ts in by.items()} for op, by in times.items()}
    report = {
        "format": "degarble-bench-precision.v1",
        "degarble_version": degarble.__version__,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "bundle": {"name": models[base].name, "bundle_hash": models[base].bundle_hash},
        "articles": {"n": len(articles), "words": 600, "spin": "medium, seed 13"},
        "rounds": args.rounds, "batch_size": args.batch_size,
        "articles_per_s": {op: {p: round(v, 3) for p, v in by.items()} for op, by in speed.items()},
        f"ratio_vs_{base}": {op: {p: round(v / by[base], 3) for p, v in by.items()} for op, by in speed.items()},
    }
    text = json.dumps(report, indent=1)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    for op, by in speed.items():
        print(f"{op}: " + ", ".join(f"{p} {v:.2f}/s ({v / by[base]:.2f}x)" for p, v in by.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
