"""Calibrate a detector bundle's thresholds on validation data and write them into its manifest.

    python training/calibrate_detector.py [--bundle src/degarble/models/default] [--target_fpr 0.01]
    python training/calibrate_detector.py --precision int8    # the int8 thresholds (by_precision)

Two numbers, both chosen on the open-licence validation split (never on BBC or the dev article):

* ``word_threshold``: the word probability above which a word is flagged as a span; the value
  that maximises token F1 on validation paragraphs spun at the medium rate (all profiles).
* ``threshold``: the paragraph ``spun_score`` that keeps false positives on clean validation
  news paragraphs (every Wikinews paragraph of the split outside the spun groups) at
  ``target_fpr`` (1 %): a low false-positive rate on clean news.

``train_detector.py`` calls :func:`calibrate` at the end of training; run this script on its own
to re-calibrate an existing bundle (for example with another ``target_fpr``).

``--precision int8`` calibrates the same two numbers with the model run in int8, which lowers its
scores a little, and stores them as ``detector.by_precision.int8`` beside the main ones (which
fp32 and bf16 share); ``degarble.load(precision="int8")`` then uses them.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

from common import resave_bundle

from degarble.models.detector import PARAGRAPH_SCORES
from degarble.models.precision import PRECISIONS
from degarble.score import auroc, prf
from degarble.spin import BASE_PROFILES, RATES, Spinner
from degarble.text import words

REPO = Path(__file__).resolve().parents[1]
NEWS = ("wikinews_en",)  # the validation corpus that is news: the clean text a threshold must not flag
WORD_GRID = [round(0.1 + 0.05 * k, 2) for k in range(15)]  # 0.10 .. 0.80


def validation_groups(texts: list[str], n: int, profiles: list[str], seed: int = 12345,
                      sources: list[str] | None = None, clean_sources: tuple[str, ...] = ()) -> dict:
    """Clean paragraphs and ``n`` spun at each named rate (disjoint, seeded).

    Without ``clean_sources`` the clean group is ``n`` paragraphs, like the spun ones (what
    training validates on). With it (``sources`` gives each text's corpus), the clean group is
    every paragraph outside the spun groups that comes from one of ``clean_sources``: the
    threshold is then set on clean *news* (1,170 Wikinews paragraphs), the text it must not
    flag, rather than on 400 news and encyclopedia paragraphs. Measured on the 0.2.0 detector:
    its threshold, set at a 1 % false-positive rate on 400 paragraphs (4 false positives),
    flagged 2.3 % of all 3,576 validation paragraphs and 2.9 % of the Wikinews ones.
    The spun groups are the same either way.
    """
    rng = random.Random(seed)
    pick = rng.sample(range(len(texts)), min(len(texts), 4 * n))
    if clean_sources:
        used = set(pick[n:])
        groups: dict = {"clean": [t for i, (t, src) in enumerate(zip(texts, sources))
                                  if i not in used and src in clean_sources]}
    else:
        groups = {"clean": [texts[i] for i in pick[:n]]}
    for g, name in enumerate(("light", "medium", "heavy"), 1):
        chunk = [texts[i] for i in pick[g * n : (g + 1) * n]]
        groups[name] = [Spinner(profiles[k % len(profiles)], rate=RATES[name], seed=7).spin(t) for k, t in enumerate(chunk)]
    return groups


def calibration_groups(path: Path, n: int, profiles: list[str], clean_sources: tuple[str, ...] = NEWS) -> dict:
    """The groups a shipped threshold is calibrated on: :func:`validation_groups` of a split file,
    its clean group the news paragraphs (``clean_sources``) outside the spun groups."""
    records = [json.loads(line) for line in path.open(encoding="utf-8")]
    records = [r for r in records if r.get("text", "").strip()]
    if clean_sources and not any(r.get("source") in clean_sources for r in records):
        print(f"note: no paragraph of {path} is from {clean_sources}; the threshold is set on all its clean paragraphs",
              file=sys.stderr)
        clean_sources = tuple({r.get("source", "") for r in records})
    return validation_groups([r["text"] for r in records], n, profiles, sources=[r.get("source", "") for r in records],
                             clean_sources=clean_sources)


def gold_word_labels(spun) -> list[int]:
    """1 for each word of the spun text that a gold edit covers."""
    toks = words(spun.text)
    marks = [0] * len(toks)
    for e in spun.edits:
        if e.before.strip():
            for k, t in enumerate(toks):
                if t.start < e.end and t.end > e.start:
                    marks[k] = 1
    return marks


def calibrate(detector, groups: dict, target_fpr: float = 0.01) -> dict:
    """Choose ``word_threshold`` (best medium token F1) and ``threshold`` (clean FPR <= target).

    Paragraph scores are the detector's own (its ``score``, ``top_k``, ``top_share``).
    """
    probs = {name: [p for _, p in detector.word_probabilities([t if isinstance(t, str) else t.text for t in items])]
             for name, items in groups.items()}
    gold = {name: [gold_word_labels(s) for s in groups[name]] for name in ("light", "medium", "heavy")}

    def token_scores(name: str, thr: float):
        tp = fp = fn = 0
        for g, p in zip(gold[name], probs[name]):
            for y, x in zip(g, p):
                tp += y and x >= thr
                fp += (not y) and x >= thr
                fn += y and x < thr
        return prf(tp, fp, fn)

    word_thr = max(WORD_GRID, key=lambda t: (token_scores("medium", t).f, -abs(t - 0.5)))
    scores = {name: [detector.paragraph_score(p) for p in probs[name]] for name in probs}
    clean = sorted(scores["clean"])
    k = min(len(clean) - 1, int(math.ceil((1 - target_fpr) * len(clean))) - 1)
    thr = round(min(0.99, clean[k] + 1e-4), 4)
    out = {"threshold": thr, "word_threshold": word_thr, "target_fpr": target_fpr,
           "clean_fpr": round(sum(s >= thr for s in clean) / len(clean), 4), "n_per_group": len(scores["medium"]),
           "n_clean": len(clean),
           "score": detector.score, "top_k": detector.top_k, "top_share": detector.top_share}
    for name in ("light", "medium", "heavy"):
        tok = token_scores(name, word_thr)
        out[f"{name}_recall"] = round(sum(s >= thr for s in scores[name]) / len(scores[name]), 4)
        out[f"{name}_auroc"] = round(auroc(scores[name] + clean, [1] * len(scores[name]) + [0] * len(clean)), 4)
        out[f"{name}_token_p"], out[f"{name}_token_r"], out[f"{name}_token_f1"] = (
            round(tok.precision, 4), round(tok.recall, 4), round(tok.f, 4))
    return out


def rewrite_bundle(bundle: Path, cal: dict, precision: str | None = None) -> None:
    """Store the calibration in the bundle's manifest (hashes recomputed by save_bundle): as the
    main thresholds, or for ``precision="int8"`` as ``detector.by_precision.int8``."""
    from degarble.bundle import read_manifest

    data = read_manifest(bundle).to_dict()
    if precision == "int8":
        by = {**(data["detector"].get("by_precision") or {}),
              "int8": {"threshold": cal["threshold"], "word_threshold": cal["word_threshold"]}}
        data["detector"] = {**data["detector"], "by_precision": by}
        data["scores"] = {**data.get("scores", {}), "calibration_int8": cal}
    else:
        data["detector"] = {**data["detector"], "threshold": cal["threshold"], "word_threshold": cal["word_threshold"],
                            "top_k": cal["top_k"], "top_share": cal["top_share"],
                            "score": cal.get("score", "top")}
        data["scores"] = {**data.get("scores", {}), "calibration": cal}
    resave_bundle(bundle, data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "src" / "degarble" / "models" / "default")
    ap.add_argument("--validation_file", default="data/derived/validation.paragraphs.jsonl")
    ap.add_argument("--val_paragraphs", type=int, default=400)
    ap.add_argument("--target_fpr", type=float, default=0.01)
    ap.add_argument("--top_share", type=float, default=None,
                    help="paragraph score over the top max(top_k, share x words) words (default: the bundle's)")
    ap.add_argument("--score", choices=PARAGRAPH_SCORES, default=None,
                    help="paragraph score: evidence or top (default: the bundle's)")
    ap.add_argument("--clean_sources", default=",".join(NEWS),
                    help="set the threshold on every validation paragraph of these corpora (comma-separated) "
                         "outside the spun groups; '' = on val_paragraphs paragraphs of any corpus, as in training")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="run the detector in this precision; int8 writes detector.by_precision.int8, the others "
                         "the main thresholds (default: auto, bf16 on a CPU with native bf16, else fp32)")
    args = ap.parse_args(argv)
    from degarble.model import Model

    vf = REPO / args.validation_file
    if not vf.is_file():
        print(f"error: {vf} not found; build it with: python data/build_corpus.py", file=sys.stderr)
        return 2
    if args.precision == "int8" and (args.top_share is not None or args.score is not None):
        print("error: --top_share and --score are shared by all precisions; set them without --precision int8",
              file=sys.stderr)
        return 2
    model = Model(args.bundle, precision=args.precision)
    groups = calibration_groups(vf, args.val_paragraphs, list(BASE_PROFILES),
                                tuple(args.clean_sources.split(",")) if args.clean_sources else ())
    if args.top_share is not None:
        model.detector.top_share = args.top_share
    if args.score is not None:
        model.detector.score = args.score
    cal = calibrate(model.detector, groups, args.target_fpr)
    cal["clean_sources"] = args.clean_sources
    cal["precision"] = model.precision
    print(json.dumps(cal, indent=1))
    rewrite_bundle(args.bundle, cal, model.precision)
    where = "detector.by_precision.int8" if model.precision == "int8" else "the main thresholds"
    print(f"wrote {where} into {args.bundle}/degarble.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
