"""Calibrate a detector bundle's thresholds on validation data and write them into its manifest.

    python training/calibrate_detector.py [--bundle src/degarble/models/default] [--target_fpr 0.01]

Two numbers, both chosen on the open-licence validation split (never on BBC or the dev article):

* ``word_threshold``: the word probability above which a word is flagged as a span; the value
  that maximises token F1 on validation paragraphs spun at the medium rate (all profiles).
* ``threshold``: the paragraph ``spun_score`` that keeps false positives on clean validation
  paragraphs at ``target_fpr`` (1 %), i.e. a low false-positive rate on clean news.

``train_detector.py`` calls :func:`calibrate` at the end of training; run this script on its own
to re-calibrate an existing bundle (for example with another ``target_fpr``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
from pathlib import Path

from degarble.models.detector import paragraph_score
from degarble.score import auroc, prf
from degarble.spin import PROFILES, RATES, Spinner
from degarble.text import words

REPO = Path(__file__).resolve().parents[1]
WORD_GRID = [round(0.1 + 0.05 * k, 2) for k in range(15)]  # 0.10 .. 0.80


def validation_groups(texts: list[str], n: int, profiles: list[str], seed: int = 12345) -> dict:
    """Clean paragraphs and the same number spun at each named rate (disjoint, seeded)."""
    rng = random.Random(seed)
    pick = rng.sample(range(len(texts)), min(len(texts), 4 * n))
    groups: dict = {"clean": [texts[i] for i in pick[:n]]}
    for g, name in enumerate(("light", "medium", "heavy"), 1):
        chunk = [texts[i] for i in pick[g * n : (g + 1) * n]]
        groups[name] = [Spinner(profiles[k % len(profiles)], rate=RATES[name], seed=7).spin(t) for k, t in enumerate(chunk)]
    return groups


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


def calibrate(detector, groups: dict, target_fpr: float = 0.01, top_k: int = 3, top_share: float = 0.0) -> dict:
    """Choose ``word_threshold`` (best medium token F1) and ``threshold`` (clean FPR <= target)."""
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
    scores = {name: [paragraph_score(p, top_k, top_share) for p in probs[name]] for name in probs}
    clean = sorted(scores["clean"])
    k = min(len(clean) - 1, int(math.ceil((1 - target_fpr) * len(clean))) - 1)
    thr = round(min(0.99, clean[k] + 1e-4), 4)
    out = {"threshold": thr, "word_threshold": word_thr, "target_fpr": target_fpr,
           "clean_fpr": round(sum(s >= thr for s in clean) / len(clean), 4), "n_per_group": len(clean),
           "top_k": top_k, "top_share": top_share}
    for name in ("light", "medium", "heavy"):
        tok = token_scores(name, word_thr)
        out[f"{name}_recall"] = round(sum(s >= thr for s in scores[name]) / len(scores[name]), 4)
        out[f"{name}_auroc"] = round(auroc(scores[name] + scores["clean"], [1] * len(clean) + [0] * len(clean)), 4)
        out[f"{name}_token_p"], out[f"{name}_token_r"], out[f"{name}_token_f1"] = (
            round(tok.precision, 4), round(tok.recall, 4), round(tok.f, 4))
    return out


def rewrite_bundle(bundle: Path, cal: dict) -> None:
    """Store the calibration in the bundle's manifest (hashes recomputed by save_bundle)."""
    from degarble.bundle import read_manifest, save_bundle

    m = read_manifest(bundle)
    data = m.to_dict()
    data["detector"] = {**data["detector"], "threshold": cal["threshold"], "word_threshold": cal["word_threshold"],
                        "top_k": cal["top_k"], "top_share": cal["top_share"]}
    data["scores"] = {**data.get("scores", {}), "calibration": cal}
    readme = (bundle / "README.md").read_text() if (bundle / "README.md").is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        parts = {}
        for section in m.parts():  # the detector, and the restorer where the bundle has one
            parts[section] = Path(tmp) / section
            shutil.copytree(m.part_dir(section), parts[section])
        save_bundle(bundle, data, parts, force=True, readme=readme)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "src" / "degarble" / "models" / "default")
    ap.add_argument("--validation_file", default="data/derived/validation.paragraphs.jsonl")
    ap.add_argument("--val_paragraphs", type=int, default=400)
    ap.add_argument("--target_fpr", type=float, default=0.01)
    ap.add_argument("--top_share", type=float, default=None,
                    help="paragraph score over the top max(top_k, share x words) words (default: the bundle's)")
    args = ap.parse_args(argv)
    from degarble.model import Model

    vf = REPO / args.validation_file
    if not vf.is_file():
        print(f"error: {vf} not found; build it with: python data/build_corpus.py", file=sys.stderr)
        return 2
    texts = [json.loads(line)["text"] for line in vf.open(encoding="utf-8")]
    model = Model(args.bundle)
    groups = validation_groups(texts, args.val_paragraphs, sorted(PROFILES))
    share = model.detector.top_share if args.top_share is None else args.top_share
    cal = calibrate(model.detector, groups, args.target_fpr, model.detector.top_k, share)
    print(json.dumps(cal, indent=1))
    rewrite_bundle(args.bundle, cal)
    print(f"wrote thresholds into {args.bundle}/degarble.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
