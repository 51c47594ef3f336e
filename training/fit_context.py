"""Fit the detector's corpus evidence (``degarble.models.context``) and write it into a bundle.

    python training/fit_context.py --bundle src/degarble/models/default --out runs/context/bundle

1. Counts unigrams and bigrams over the training split, except ``--fit_paragraphs`` paragraphs
   held out (seeded) for fitting: features fitted on text the counts contain would look better
   than on new text, and the weights would trust them too much.
2. Spins the held-out paragraphs (every profile, the training rates, a fifth left clean), runs the
   bundle's detector on them (fp32, without any context), and fits a logistic regression from the
   detector's logit and the context features to the gold word labels; with ``--paragraph_score
   evidence_max`` also a second one, on the same paragraphs, from the logits of their evidence
   score and of their likeliest word (both with the context folded in) to "spun or not": the
   paragraph score's weights (measured and not shipped: training/README.md).
3. Writes a copy of the bundle with the counts, the inverted spinner tables (at most
   ``--max_candidates`` originals per key, the best by prior, or with ``--frequency_weight`` by
   prior and frequency: measured, not shipped, training/README.md) and the weights in its
   detector folder and manifest (``detector.context``), then calibrates its thresholds on
   validation as ``calibrate_detector.py`` does, and prints them beside the input bundle's, measured
   the same way in the same run.

Seeded and deterministic (about 5 minutes on 2 CPU cores). Calibrate int8 afterwards with
``python training/calibrate_detector.py --bundle OUT --precision int8``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from calibrate_detector import calibrate, calibration_groups, gold_word_labels, rewrite_bundle
from common import REPO, profile_list

from degarble.bundle import read_manifest, save_bundle
from degarble.models.context import (
    COUNTS_FILE,
    FEATURES,
    INVERSE_FILE,
    BigramModel,
    ContextScorer,
    NgramCounts,
    logit,
    read_inverse,
    sequence_keys,
    write_inverse,
)
from degarble.models.detector import evidence_score
from degarble.spin import BASE_PROFILES, Spinner
from degarble.spin.inverse import load_inverse
from degarble.text import compare_key, words

RATES = (0.08, 0.20, 0.25, 0.35)  # the detector's training rates


def split_records(path: Path, n_fit: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(counted, held out for fitting): ``n_fit`` paragraphs drawn with ``seed``."""
    recs = [json.loads(line) for line in path.open(encoding="utf-8")]
    recs = [r for r in recs if r.get("text", "").strip()]
    held = set(random.Random(seed).sample(range(len(recs)), n_fit))
    return [r for i, r in enumerate(recs) if i not in held], [recs[i] for i in sorted(held)]


def fit_examples(texts: list[str], seed: int, profiles: list[str]) -> list[tuple[str, list[int]]]:
    """Spun (four in five) and clean paragraphs with gold word labels, as the detector trains on.

    Paragraph ``k`` is spun by ``profiles[k % len(profiles)]`` unless ``k % 5 == 0``; with the five
    base profiles that never picks the first one (content-farm.v1); kept, so that the fit of
    0.2.1 replays (with the six of phase 9, every profile is used).
    """
    rng = random.Random(seed)
    out = []
    for k, t in enumerate(texts):
        if k % 5 == 0:
            out.append((t, [0] * len(words(t))))
        else:
            s = Spinner(profiles[k % len(profiles)], rate=RATES[k % len(RATES)], seed=rng.randrange(1 << 30)).spin(t)
            out.append((s.text, gold_word_labels(s)))
    return out


def fit_logistic(x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], float, float]:
    """Weights, bias and mean log loss of a logistic regression (L-BFGS, float64: deterministic)."""
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        loss = float(torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y))
    return [round(float(v), 5) for v in w.detach()], round(float(b.detach()), 5), round(loss, 5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "src" / "degarble" / "models" / "default")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "context" / "bundle")
    ap.add_argument("--train_file", default="data/derived/train.paragraphs.jsonl")
    ap.add_argument("--validation_file", default="data/derived/validation.paragraphs.jsonl")
    ap.add_argument("--fit_paragraphs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--profiles", type=profile_list, default=list(BASE_PROFILES),
                    help="comma-separated spinner profiles of the fitting examples (default: the base five)")
    ap.add_argument("--min_bigram_count", type=int, default=2)
    ap.add_argument("--mu", type=float, default=50.0)
    ap.add_argument("--max_candidates", type=int, default=60)
    ap.add_argument("--frequency_weight", type=float, default=0.0,
                    help="keep the best --max_candidates originals per spun word by log prior + this x the "
                         "original's unigram log probability (0: by prior alone)")
    ap.add_argument("--floor", type=float, default=0.0,
                    help="words the detector gives less than this keep its probability (speed)")
    ap.add_argument("--val_paragraphs", type=int, default=400)
    ap.add_argument("--target_fpr", type=float, default=0.01)
    ap.add_argument("--paragraph_score", choices=("evidence", "evidence_max"), default="evidence",
                    help="evidence (shipped): the evidence score; evidence_max: fit a paragraph score over the "
                         "evidence and the likeliest word (degarble.models.detector.paragraph_score) on the same "
                         "held-out paragraphs (measured, not shipped: training/README.md)")
    ap.add_argument("--no-compare", dest="compare", action="store_false",
                    help="skip calibrating the input bundle for comparison")
    args = ap.parse_args(argv)
    from degarble.model import Model

    tf, vf = REPO / args.train_file, REPO / args.validation_file
    for f in (tf, vf):
        if not f.is_file():
            print(f"error: {f} not found; build it with: python data/build_corpus.py", file=sys.stderr)
            return 2
    torch.manual_seed(args.seed)
    counted, held = split_records(tf, args.fit_paragraphs, args.seed)
    counts = NgramCounts.from_sequences((sequence_keys(compare_key(t.text) for t in words(r["text"])) for r in counted),
                                        args.min_bigram_count)
    print(f"counted {len(counted)} paragraphs ({counts.total} words, {counts.vocab} distinct), "
          f"{len(counts.bigram_keys)} bigrams; {len(held)} held out for fitting", file=sys.stderr)

    src = read_manifest(args.bundle)
    with tempfile.TemporaryDirectory() as tmp:
        det_dir = Path(tmp) / "detector"
        shutil.copytree(src.part_dir("detector"), det_dir)
        counts.save(det_dir / COUNTS_FILE)
        unigram = BigramModel(counts, args.mu).unigram_logprob
        write_inverse(det_dir / INVERSE_FILE, load_inverse().table, args.max_candidates,
                      weight=(lambda o: args.frequency_weight * unigram(o)) if args.frequency_weight else None)

        # the fit: the bundle's own detector (fp32, no context) and the features the package computes
        plain = Model(args.bundle, precision="fp32", context=False).detector
        examples = fit_examples([r["text"] for r in held], args.seed, args.profiles)
        probs = [p for _, p in plain.word_probabilities([t for t, _ in examples])]
        scorer = ContextScorer(counts, read_inverse(det_dir / INVERSE_FILE), [0.0] * (1 + len(FEATURES)), 0.0,
                               mu=args.mu, max_candidates=args.max_candidates)
        rows, labels, sizes = [], [], []
        for (text, gold), p in zip(examples, probs):
            feats = scorer.features([compare_key(t.text) for t in words(text)])
            for q, f, y in zip(p, feats, gold):
                rows.append([logit(q), *f.tolist()])
                labels.append(float(y))
            sizes.append(len(p))
        x = torch.tensor(rows, dtype=torch.float64)
        weights, bias, loss = fit_logistic(x, torch.tensor(labels, dtype=torch.float64))
        print(f"fit on {len(rows)} words: weights {dict(zip(('logit', *FEATURES), weights))}, bias {bias}, "
              f"log loss {loss}", file=sys.stderr)
        score_settings = {"score": "evidence"}
        if args.paragraph_score == "evidence_max":
            # the paragraph score's weights, on the same paragraphs' adjusted word probabilities
            adjusted = torch.sigmoid(x @ torch.tensor(weights, dtype=torch.float64) + bias).tolist()
            para_x, para_y, at = [], [], 0
            for (_, gold), n in zip(examples, sizes):
                q = adjusted[at : at + n]
                at += n
                para_x.append([logit(evidence_score(q)), logit(max(q, default=0.0))])
                para_y.append(float(any(gold)))
            p_weights, p_bias, p_loss = fit_logistic(torch.tensor(para_x, dtype=torch.float64),
                                                     torch.tensor(para_y, dtype=torch.float64))
            score_settings = {"score": "evidence_max", "score_weights": [*p_weights, p_bias]}
            print(f"paragraph score on {len(para_x)} paragraphs: weights (logit evidence, logit max) {p_weights}, "
                  f"bias {p_bias}, log loss {p_loss}", file=sys.stderr)

        data = src.to_dict()
        data["detector"] = {**{k: v for k, v in data["detector"].items() if k != "score_weights"}, **score_settings,
                            "context": {
            "counts": COUNTS_FILE, "inverse": INVERSE_FILE, "mu": args.mu, "max_candidates": args.max_candidates,
            **({"frequency_weight": args.frequency_weight} if args.frequency_weight else {}),
            "floor": args.floor, "features": ["logit", *FEATURES], "weights": weights, "bias": bias,
            "fit": {"train_file": args.train_file, "fit_paragraphs": len(held), "seed": args.seed,
                    "min_bigram_count": args.min_bigram_count, "words": len(rows), "log_loss": loss,
                    # recorded when not the default, so a replay of the shipped fit writes its manifest
                    **({"profiles": args.profiles} if args.profiles != list(BASE_PROFILES) else {})}}}
        parts = {"detector": det_dir}
        if src.has_restorer:
            parts["restorer"] = src.part_dir("restorer")
        card = REPO / "training" / "MODEL_CARD.md"
        readme = card.read_text() if card.is_file() else None
        save_bundle(args.out, data, parts, force=True, readme=readme)

    groups = calibration_groups(vf, args.val_paragraphs, list(BASE_PROFILES))
    model = Model(args.out)
    cal = calibrate(model.detector, groups, args.target_fpr)
    cal["clean_sources"], cal["precision"] = "wikinews_en", model.precision
    rewrite_bundle(args.out, cal, model.precision)
    report = {"with_context": cal}
    if args.compare:
        report["input_bundle"] = calibrate(Model(args.bundle, precision=model.precision).detector, groups,
                                           args.target_fpr)
    print(json.dumps(report, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
