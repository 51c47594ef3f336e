"""Calibrate the restorer's edit threshold with the bundle's detector, and put the restorer in the bundle.

    python training/calibrate_restorer.py --run runs/restorer [--bundle src/degarble/models/default]
    python training/calibrate_restorer.py --restorer DIR [--bundle ...]   # any save_pretrained folder

``min_score`` is the replacement probability below which the restorer leaves a flagged span
alone. It is chosen on the open-licence validation split (never on BBC or the dev article),
through the whole pipeline (detector spans -> restorer): the value with the best edit F0.5 on
paragraphs spun at the medium rate (all profiles), among those that change at most
``max_clean_changed`` of clean validation paragraphs.

``train_restorer.py`` calls :func:`add_restorer_to_bundle` at the end of training.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

from degarble.edits import apply_edits
from degarble.score import clean_preservation, edit_prf, wer
from degarble.spin import BASE_PROFILES, RATES, Spinner

REPO = Path(__file__).resolve().parents[1]
SCORE_GRID = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8]


VALIDATION = "data/derived/validation.paragraphs.jsonl"


def validation_sets(n: int, path: str = VALIDATION, seed: int = 4242) -> tuple[list[str], list[str], list[str]]:
    """``n`` clean validation paragraphs, and ``n`` others spun at the medium rate (spun, original)."""
    import datasets

    p = REPO / path
    if not p.is_file():
        sys.exit(f"error: {p} not found; build the corpus first: python data/build_corpus.py")
    texts = [t for t in datasets.load_dataset("json", data_files=str(p), split="train")["text"] if t.strip()]
    n = min(n, len(texts) // 2)
    pick = random.Random(seed).sample(range(len(texts)), 2 * n)
    clean = [texts[i] for i in pick[:n]]
    original = [texts[i] for i in pick[n:]]
    names = list(BASE_PROFILES)
    spun = [Spinner(names[k % len(names)], rate=RATES["medium"], seed=11).spin(t).text for k, t in enumerate(original)]
    return clean, spun, original


def calibrate(detector, restorer, n: int = 200, path: str = VALIDATION, max_clean_changed: float = 0.03) -> dict:
    """Choose ``min_score``; returns it with the validation scores at every grid value."""
    clean, spun, original = validation_sets(n, path)
    edits = edits_at_any_score(detector, restorer, {"clean": clean, "spun": spun})
    grid = min_score_grid(clean, spun, original, edits["clean"], edits["spun"])
    best = best_min_score(grid, max_clean_changed)
    return {"min_score": best["min_score"], "chosen": best, "grid": grid, "n": n,
            "max_clean_changed": max_clean_changed}


def edits_at_any_score(detector, restorer, sets: dict[str, list[str]], threshold: float | None = None) -> dict:
    """Every edit the pipeline makes on each set at ``min_score`` 0 (with its score), to filter per threshold.

    ``threshold``: the paragraph threshold the detector judges at (default: its own).
    """
    from degarble.model import _collector_paused

    saved = restorer.min_score
    restorer.min_score = 0.0
    try:
        with _collector_paused():  # as Model.restore does: the ranking's many short-lived objects
            return {name: [r.edits for r in restorer.restore(texts, detector.detect(texts, threshold=threshold))]
                    for name, texts in sets.items()}
    finally:
        restorer.min_score = saved


def best_min_score(grid: list[dict], max_clean_changed: float) -> dict:
    """The grid row with the best edit F0.5 among those changing at most ``max_clean_changed`` of clean text."""
    ok = [g for g in grid if g["changed_share"] <= max_clean_changed] or grid
    return max(ok, key=lambda g: (g["edit_f05"], -g["min_score"]))


def min_score_grid(clean: list[str], spun: list[str], original: list[str], clean_edits: list[list],
                   spun_edits: list[list]) -> list[dict]:
    """Pipeline scores at each ``min_score`` of :data:`SCORE_GRID`, from edits made at ``min_score`` 0."""

    def outputs(texts, edits, thr):
        return [apply_edits(t, [e for e in es if e.score >= thr]) for t, es in zip(texts, edits)]

    grid = []
    for thr in SCORE_GRID:
        restored = outputs(spun, spun_edits, thr)
        f = edit_prf(spun, original, restored)
        cp = clean_preservation(clean, outputs(clean, clean_edits, thr))
        grid.append({"min_score": thr, "edit_p": round(f.precision, 4), "edit_r": round(f.recall, 4),
                     "edit_f05": round(f.f, 4), "wer_spun": round(wer(spun, original), 4),
                     "wer_restored": round(wer(restored, original), 4), **{k: round(v, 4) for k, v in cp.items()
                                                                           if isinstance(v, float)}})
    return grid


def add_restorer_to_bundle(bundle: Path, restorer_dir: Path, cfg: dict | None = None, validation: dict | None = None,
                           n: int = 200, path: str = VALIDATION, rank: dict | None = None) -> dict:
    """Calibrate the restorer in ``restorer_dir`` against ``bundle``'s detector and save both in ``bundle``.

    ``rank``: the restorer's candidate-ranking settings (``Restorer(rank=...)``), or ``None``;
    with ``rank``, greedy decoding is calibrated too (``greedy_min_score``, for ``greedy=True``).
    """
    from degarble.bundle import read_manifest, save_bundle
    from degarble.model import Model
    from degarble.models.restorer import Restorer

    m = read_manifest(bundle)
    detector = Model(bundle).detector
    settings = {"max_words": (cfg or {}).get("max_words", 60), "max_length": (cfg or {}).get("max_length", 192)}
    restorer = Restorer.from_dir(restorer_dir, **settings, rank=rank, context=detector.context)
    cal = calibrate(detector, restorer, n=n, path=path)
    print(f"restorer calibration: {json.dumps(cal['chosen'])}", flush=True)
    greedy = None
    if rank:
        # a ranking restorer can also be run greedily (Model.restore(greedy=True), faster): that
        # mode gets its own min_score, calibrated the same way
        greedy = calibrate(detector, restorer.greedy(), n=n, path=path)
        print(f"restorer calibration, greedy: {json.dumps(greedy['chosen'])}", flush=True)
    data = m.to_dict()
    data["restorer"] = {**settings, "min_score": cal["min_score"], "rank": rank,
                        **({"greedy_min_score": greedy["min_score"]} if greedy else {}),
                        "kind": "span-infilling EncoderDecoderModel",
                        "base_model": "all-MiniLM-L6-v2 (Apache-2.0)", "dtype": "float16",
                        "decoder_layers": (cfg or {}).get("decoder_layers", 2)}
    data["restorer_train_config"] = cfg
    data["scores"] = {**data.get("scores", {}), "restorer_validation": validation, "restorer_calibration": cal}
    data["scores"].pop("restorer_calibration_greedy", None)
    if greedy:
        data["scores"]["restorer_calibration_greedy"] = greedy
    card = REPO / "training" / "MODEL_CARD.md"
    readme = card.read_text() if card.is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        det = Path(tmp) / "detector"
        shutil.copytree(m.part_dir("detector"), det)
        save_bundle(bundle, data, {"detector": det, "restorer": restorer_dir}, force=True, readme=readme)
    return cal


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a train_restorer.py out_dir: its export/, with the config and "
                    "validation scores of its summary.json")
    ap.add_argument("--restorer", type=Path, help="save_pretrained folder of the restorer (default: the bundle's)")
    ap.add_argument("--bundle", type=Path, default=REPO / "src/degarble/models/default")
    ap.add_argument("-n", type=int, default=200, help="validation paragraphs per group")
    ap.add_argument("--validation", default=VALIDATION, help="JSONL of clean validation paragraphs (relative "
                    "to the repository or absolute)")
    ap.add_argument("--rank", default=None,
                    help='candidate ranking settings as JSON, e.g. "$(cat runs/ranking.json)" from tune_ranking.py, '
                         "or null for greedy generation only (default: the bundle's own)")
    args = ap.parse_args(argv)
    from degarble.bundle import read_manifest

    m = read_manifest(args.bundle)
    cfg = m.to_dict().get("restorer_train_config")
    # a re-calibration keeps the bundle's candidate ranking unless told otherwise
    rank = (m.restorer or {}).get("rank") if args.rank is None else json.loads(args.rank)
    val = (m.scores or {}).get("restorer_validation")
    src = args.restorer
    if args.run is not None:
        summary_file = args.run / "summary.json"
        if not summary_file.is_file():
            sys.exit(f"error: {summary_file} not found; is {args.run} a finished train_restorer.py run?")
        summary = json.loads(summary_file.read_text())
        cfg, val = summary.get("config"), summary.get("validation")
        src = src or args.run / "export"
    with tempfile.TemporaryDirectory() as tmp:
        if src is None:
            if m.restorer is None:
                sys.exit(f"error: {args.bundle} has no restorer; pass --restorer DIR")
            src = Path(tmp) / "restorer"
            shutil.copytree(m.part_dir("restorer"), src)
        cal = add_restorer_to_bundle(args.bundle, src, cfg=cfg, validation=val, n=args.n, path=args.validation,
                                     rank=rank)
    print(json.dumps({k: v for k, v in cal.items() if k != "grid"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
