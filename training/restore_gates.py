"""Should the restorer rewrite more than the detector reports? A validation grid.

    python training/restore_gates.py [--bundle DIR] [-n 400] [--paragraph 0.5 0.4] [--word 0.3 0.25 0.2]

The restorer rewrites the words the detector flags (``word_threshold``) in paragraphs it judges
spun (``threshold``). The restorer can keep a false alarm, and ``min_score`` filters what it
writes, so looser gates might buy recall that detection alone would not. This measures it on the
validation sets of ``calibrate_restorer.py`` (``n`` clean and ``n`` medium-rate spun paragraphs,
never BBC or the dev article): for each pair of gates, the best edit F0.5 over ``min_score`` among
the settings that change at most 3 % of clean paragraphs. Nothing is written to the bundle.
"""

from __future__ import annotations

import argparse
import json
import time

from calibrate_restorer import VALIDATION, best_min_score, edits_at_any_score, min_score_grid, validation_sets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=None, help="model bundle (default: the shipped one)")
    ap.add_argument("-n", type=int, default=400, help="validation paragraphs per group")
    ap.add_argument("--paragraph", type=float, nargs="*", default=[0.5, 0.4], help="paragraph thresholds to "
                    "try besides the bundle's")
    ap.add_argument("--word", type=float, nargs="*", default=[0.3, 0.25, 0.2], help="word thresholds to "
                    "try besides the bundle's")
    ap.add_argument("--validation", default=VALIDATION, help="JSONL of clean validation paragraphs (relative "
                    "to the repository or absolute)")
    ap.add_argument("--max-clean-changed", type=float, default=0.03)
    ap.add_argument("--output", help="write every grid row here (JSON)")
    args = ap.parse_args(argv)
    import degarble

    model = degarble.load(args.bundle)
    det, res = model.detector, model.restorer
    clean, spun, original = validation_sets(args.n, args.validation)
    # the word probabilities do not depend on the gates: compute them once per set
    probs = {}
    word_probabilities = det.word_probabilities

    def cached(texts, batch_size=32):
        key = tuple(texts)
        if key not in probs:
            probs[key] = word_probabilities(texts, batch_size)
        return probs[key]

    det.word_probabilities = cached
    rows, best = [], []
    words = [det.word_threshold, *args.word]  # read before the loop below changes it
    for pthr in [det.threshold, *args.paragraph]:
        for wthr in words:
            t0 = time.perf_counter()
            det.word_threshold = wthr
            edits = edits_at_any_score(det, res, {"clean": clean, "spun": spun}, threshold=pthr)
            grid = [{"threshold": round(pthr, 4), "word_threshold": wthr, **g}
                    for g in min_score_grid(clean, spun, original, edits["clean"], edits["spun"])]
            rows += grid
            best.append(best_min_score(grid, args.max_clean_changed))
            print(json.dumps(best[-1]), f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"n": args.n, "best": best, "grid": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
