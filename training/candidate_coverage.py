"""How often the spinner tables' candidates for a swapped word hold its original, and how high.

    python training/candidate_coverage.py [--bundle src/degarble/models/default] [-n 300]
        [--profiles NAME,NAME,...] [--weights 0,0.5,1] [--top 3,12,60]

Paragraphs of the validation split (never BBC or the dev article) are spun at the medium rate by
each profile (seeded). For every single word the spinner replaced, the bundle's inverted tables
(:meth:`degarble.models.context.ContextScorer.spinner_inverse`, what the restorer ranks) are
looked up for that word, and the rank of the true original among them is found with candidates
ordered by ``log prior + w x unigram log probability of the original`` (the restorer's
``rank.frequency_weight``, :meth:`degarble.spin.inverse.Inverse.candidates`) for each ``w`` of
``--weights``. It prints, per profile, the share of swaps whose original is absent from the
tables and the share found within each ``--top``. No model runs: a few seconds per profile.

Why: the prior P(span | original) alone favours rare originals with few synonyms, and the
restorer considers only the best ``candidates`` of them (and scores only a shortlist).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, profile_list, read_texts  # noqa: E402

from degarble.spin import BASE_PROFILES, RATES, Spinner  # noqa: E402

VALIDATION = "data/derived/validation.paragraphs.jsonl"


def coverage(inverse, unigram_logprob, pairs, weights, tops) -> dict:
    """For ``(spun word, original)`` compare-key pairs: ``absent`` (share not in the tables) and,
    per weight and top-k, the share ranked within the first k (ties counted in the gold's favour)."""
    from degarble.spin.inverse import order_key

    out = {"swaps": len(pairs), "absent": 0.0}
    found = {(w, k): 0 for w in weights for k in tops}
    for span, gold in pairs:
        cands = inverse.lookup(span)
        texts = [c for c, _ in cands]
        if gold not in texts:
            out["absent"] += 1
            continue
        for w in weights:
            key = [order_key(c, p, lambda o, w=w: w * unigram_logprob(o)) for c, p in cands]
            rank = sum(x > key[texts.index(gold)] for x in key)
            for k in tops:
                found[(w, k)] += rank < k
    n = max(len(pairs), 1)
    out["absent"] /= n
    out.update({f"w{w}_top{k}": v / n for (w, k), v in found.items()})
    return out


def swaps(texts: list[str], profile: str, seed: int) -> list[tuple[str, str]]:
    """The single-word replacements the spinner made: ``(spun word, original)`` compare keys."""
    from degarble.score import align_words
    from degarble.text import compare_key, words

    pairs = []
    for k, text in enumerate(texts):
        spun = Spinner(profile, rate=RATES["medium"], seed=seed + k).spin(text).text
        toks, orig = words(spun), words(text)
        for op in align_words(spun, text):
            if op.tag == "replace" and op.i2 - op.i1 == 1:
                pairs.append((compare_key(toks[op.i1].text), compare_key(" ".join(t.text for t in orig[op.j1 : op.j2]))))
    return pairs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=None, help="model bundle (default: the shipped one)")
    ap.add_argument("-n", type=int, default=300, help="validation paragraphs per profile")
    ap.add_argument("--profiles", type=profile_list, default=[*BASE_PROFILES, "natural.v1"])
    ap.add_argument("--weights", default="0,0.5,1", help="frequency weights to compare, comma-separated")
    ap.add_argument("--top", default="3,12,60", help="ranks to report, comma-separated")
    ap.add_argument("--seed", type=int, default=404)
    ap.add_argument("--validation", default=VALIDATION)
    args = ap.parse_args(argv)
    import degarble

    model = degarble.load(args.bundle, precision="fp32")
    ctx = model.detector.context
    if ctx is None:
        sys.exit("error: the bundle's detector has no corpus evidence (its tables and counts)")
    weights = [float(x) for x in args.weights.split(",")]
    tops = [int(x) for x in args.top.split(",")]
    path = Path(args.validation)
    texts = read_texts(str(path if path.is_absolute() else REPO / path))[: args.n]
    print(f"{'profile':20s} {'swaps':>6s} {'absent':>7s} " + " ".join(f"{f'w{w} top{k}':>11s}" for w in weights for k in tops))
    for profile in args.profiles:
        r = coverage(ctx.spinner_inverse(), ctx.unigram_logprob, swaps(texts, profile, args.seed), weights, tops)
        print(f"{profile:20s} {r['swaps']:6d} {r['absent'] * 100:6.1f}% "
              + " ".join(f"{r[f'w{w}_top{k}'] * 100:10.1f}%" for w in weights for k in tops), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
