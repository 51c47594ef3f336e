"""Tune the restorer's candidate ranking on the training split: its weights, and "learned" confidence.

    python training/tune_ranking.py [--bundle src/degarble/models/default] [--spun 1500 --clean 500]
        [--profiles NAME,NAME,...] [--candidates 60 --shortlist 3]
        [--out runs/ranking.json] [--recording runs/ranking-recording.jsonl.gz]

Paragraphs of the training split (never validation, BBC or the dev article) are spun at the light,
medium and heavy rates (seeded; the base five profiles in turn, or those of ``--profiles``), and
the bundle's detector and restorer run on them and on clean paragraphs with min_score 0, as
calibration does. For every flagged span, every option of :meth:`Restorer.rank_options` is scored
by the model (exhaustively, once) and judged by the edit it would make (a gold edit, a wrong one,
or none), so any ranking setting can then be replayed in milliseconds:

1. a grid over ``prior_weight``, ``keep_prior``, ``generated_prior`` and ``lm_weight`` picks the
   setting with the best edit F0.5 (the best ``min_score`` of calibration's grid, at most 3 % of
   clean paragraphs changed), with ``"likelihood"`` confidence;
2. with that setting, a logistic model of "this edit is a gold edit" over the winning option's
   :func:`~degarble.models.restorer.confidence_features` is fitted on the edits the ranking makes
   (``"confidence": "learned"``), and scored the same way.

The bundle's ``frequency_weight`` (how the tables' candidates are chosen, not a weight of the
ranking) is kept: it decides which options are recorded, and it is written with the rest.
It prints both and writes the ``rank`` settings of the better one to ``--out``; pass them to
``calibrate_restorer.py --rank "$(cat runs/ranking.json)"``, which chooses ``min_score`` on the
validation split. About 12 minutes on 2 CPU cores (fp32), nearly all of it the recording: with
``--recording FILE`` it is kept (about 20 MB) and later runs with the same models and settings
replay it in a few minutes (to try a grid or a shortlist; the file says what it was made from).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gzip
import itertools
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from degarble.edits import apply_edits
from degarble.model import _collector_paused
from degarble.models.restorer import (
    CONFIDENCE_FEATURES,
    RANK_DEFAULTS,
    RankOption,
    Restorer,
    confidence_features,
    logistic,
)
from degarble.score import edit_triples, prf, spans_to_labels
from degarble.spin import BASE_PROFILES, RATES, Spinner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_restorer import SCORE_GRID, best_min_score  # noqa: E402
from common import REPO, profile_list, read_texts  # noqa: E402

TRAIN = "data/derived/train.paragraphs.jsonl"
GRID = {"prior_weight": [1.0, 1.5, 2.0, 2.5, 3.5, 5.0], "keep_prior": [0.1, 0.4, 1.0],
        "generated_prior": [0.001, 0.003, 0.01, 0.05], "lm_weight": [1.0, 2.0, 3.0, 4.0, 6.0]}


def paragraphs(n_spun: int, n_clean: int, seed: int, path: str = TRAIN,
               profiles: Sequence[str] = BASE_PROFILES) -> list[dict]:
    """Training paragraphs: ``n_spun`` spun (rates and ``profiles`` in turn, with their originals)
    and ``n_clean`` others left clean (``original`` None)."""
    texts = read_texts(path)
    pick = random.Random(seed).sample(range(len(texts)), n_spun + n_clean)
    names, rates = list(profiles), ("light", "medium", "heavy")
    items = []
    for k, i in enumerate(pick[:n_spun]):
        spun = Spinner(names[k % len(names)], rate=RATES[rates[k % 3]], seed=seed + k).spin(texts[i]).text
        items.append({"text": spun, "original": texts[i]})
    return items + [{"text": texts[i], "original": None} for i in pick[n_spun:]]


class _Recorder(Restorer):
    """A restorer that, instead of choosing, records every option of every span with the
    model's log likelihood of it, and leaves the span alone."""

    def _rerank(self, start, span_texts, greedy, around):
        options = self.rank_options(span_texts, greedy, around)
        logp = self._option_logps(start, greedy, [[(o.text, 0.0) for o in opts] for opts in options], exhaustive=True)
        out, pos = [], 0
        for opts in options:
            self.records.append({"options": opts, "lp": logp[pos : pos + len(opts)]})
            pos += len(opts)
            out.append((f"\x00{len(self.records) - 1}", 1.0, []))  # an index, read back in record()
        return out


def record(model, items: list[dict], candidates: int, batch: int = 64) -> list[dict]:
    """Every flagged span of ``items`` with its options (``items[i]["spans"]``)."""
    rec = copy.copy(model.restorer)
    rec.__class__ = _Recorder
    rec.records, rec.min_score = [], 0.0
    rec.rank = {**(rec.rank or {}), "candidates": candidates}
    t0 = time.time()
    for b in range(0, len(items), batch):
        chunk = items[b : b + batch]
        texts = [x["text"] for x in chunk]
        with _collector_paused():  # as Model.restore does: the ranking's many short-lived objects
            jobs = [j for ti, (t, d) in enumerate(zip(texts, model.detector.detect(texts))) for j in rec._jobs(ti, t, d)]
            outs = rec.infill([(texts[j.text_index][j.seg[0] : j.seg[1]], [(a - j.seg[0], c - j.seg[0]) for a, c in j.spans])
                               for j in jobs])
        for x in chunk:
            x["spans"] = []
        for job, reps in zip(jobs, outs):
            for (a, c), (rep, _, _) in zip(job.spans, reps):
                chunk[job.text_index]["spans"].append({**rec.records[int(rep[1:])], "a": a, "b": c, "seg": job.seg[0]})
        print(f"  {b + len(chunk)}/{len(items)} paragraphs, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return items


def recorded_from(model) -> str:
    """What a recording depends on (8 hex digits): the bundle's weight files, its detector settings
    and the restorer's segmenting, not the ranking settings and thresholds it is made to tune
    (every option is scored, at min_score 0) nor the model card."""
    import hashlib

    m = model.manifest
    files = {k: v for k, v in m.files_sha256.items() if not k.lower().endswith(".md")}
    restorer = {k: v for k, v in (m.restorer or {}).items() if k not in ("rank", "min_score", "greedy_min_score")}
    canon = json.dumps({"files": files, "detector": m.detector, "restorer": restorer}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:8]


def save_recording(items: list[dict], path: Path, meta: dict) -> None:
    """Write a recording (:func:`record`'s items) as gzipped JSON lines, ``meta`` first: what it
    was recorded from, which :func:`load_recording` checks before it is replayed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        for x in items:
            spans = [{**s, "options": [dataclasses.asdict(o) for o in s["options"]]} for s in x["spans"]]
            f.write(json.dumps({**x, "spans": spans}) + "\n")


def load_recording(path: Path, meta: dict) -> list[dict]:
    """Read a recording written by :func:`save_recording`; raise ``ValueError`` naming the
    difference when it was made with other settings than ``meta`` (another bundle, seed, ...)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        first = json.loads(f.readline()).get("meta", {})
        differ = {k: (first.get(k), v) for k, v in meta.items() if first.get(k) != v}
        if differ:
            raise ValueError(f"{path}: recorded with other settings (recorded, asked): {differ}; "
                             "record again (delete the file)")
        items = [json.loads(line) for line in f]
    for x in items:
        for s in x["spans"]:
            s["options"] = [RankOption(**o) for o in s["options"]]
    return items


class Table:
    """The recorded options as arrays (spans x options), each judged by the edit it would make.

    A gold edit of several words that flagged spans cut into parts ("domestic, traumatized" ->
    "home mauled": two one-word swaps that the word alignment merged into one edit) is judged as
    the scorer judges it, jointly: right when every part is restored to its aligned words, else
    one wrong edit if any part changes (:meth:`score`); alone, no part could ever be right.
    """

    def __init__(self, items: list[dict]):
        spans = [(i, s) for i, x in enumerate(items) for s in x["spans"]]
        width = max((len(s["options"]) for _, s in spans), default=1)
        shape = (len(spans), width)
        self.lp = np.full(shape, -np.inf)
        self.table_prior, self.keep, self.gen, self.fit, self.tp, self.fp, self.chg = (np.zeros(shape) for _ in range(7))
        self.valid = np.zeros(shape, bool)
        self.para = np.array([i for i, _ in spans], dtype=int)
        self.clean = np.array([items[i]["original"] is None for i, _ in spans], dtype=bool)
        self.spans = spans
        gold = {i: edit_triples(x["text"], x["original"]) for i, x in enumerate(items) if x["original"] is not None}
        self.gold_count = np.array([len(gold.get(i, ())) for i in range(len(items))])
        self.is_clean = np.array([x["original"] is None for x in items], dtype=bool)
        self.n_gold, self.n_clean = int(self.gold_count.sum()), int(self.is_clean.sum())
        judge = Restorer.__new__(Restorer)
        judge.min_score = 0.0  # _edit reads only this
        for r, (i, s) in enumerate(spans):
            text = items[i]["text"]
            for o, (opt, lp) in enumerate(zip(s["options"], s["lp"])):
                self.valid[r, o] = True
                self.lp[r, o] = lp
                self.table_prior[r, o], self.keep[r, o], self.gen[r, o], self.fit[r, o] = (
                    opt.table_prior, opt.keep, opt.generated, opt.fit)
                e = judge._edit(text, s["a"], s["b"], opt.text, 1.0, s["seg"])
                if e is None:
                    continue
                self.chg[r, o] = 1
                if i in gold:
                    pred = edit_triples(text, apply_edits(text, [e]))
                    self.tp[r, o] = len(pred & gold[i])
                    self.fp[r, o] = len(pred) - self.tp[r, o]
        self.group = np.full(len(spans), -1)  # the merged gold edit a span is part of, or -1
        self.part_right = np.zeros(shape, bool)  # the option writes the part's aligned words
        self._group_parts(items, gold)

    def _group_parts(self, items: list[dict], gold: dict) -> None:
        """Find the gold edits that flagged spans cover in parts (every word of the edit, in two
        or more spans or one smaller span) and replaced word for word; judge those spans jointly."""
        rows_of: dict[int, list[int]] = {}
        for r, (i, _) in enumerate(self.spans):
            rows_of.setdefault(i, []).append(r)
        n = 0
        for i, rows in rows_of.items():
            if i not in gold:
                continue
            where = {}  # span -> its word range (the words it overlaps, as the scorer reads spans)
            for r in rows:
                s = self.spans[r][1]
                k = [j for j, f in enumerate(spans_to_labels(items[i]["text"], [(s["a"], s["b"])])) if f]
                where[r] = (k[0], k[-1] + 1)
            for i1, i2, replacement in sorted(gold[i]):
                want = replacement.split()
                if len(want) != i2 - i1:
                    continue  # not word for word: no part has aligned words to write
                parts = [r for r in rows if i1 <= where[r][0] and where[r][1] <= i2 and where[r] != (i1, i2)]
                covered = [j for a, b in sorted(where[r] for r in parts) for j in range(a, b)]
                if not parts or covered != list(range(i1, i2)):
                    continue
                for r in parts:
                    a, b = where[r]
                    aligned = " ".join(want[a - i1 : b - i1])
                    self.part_right[r, : len(self.spans[r][1]["options"])] = [
                        o.text == aligned for o in self.spans[r][1]["options"]]
                    self.group[r] = n
                    self.tp[r], self.fp[r] = 0, 0  # counted per gold edit in score()
                n += 1

    def right(self, best) -> np.ndarray:
        """Whether each span's winner is right: a gold edit, or its part of a merged one."""
        r = np.arange(len(best))
        return (self.tp[r, best] > 0) | self.part_right[r, best]

    def half(self, k: int) -> Table:
        """The spans of paragraphs ``k``, ``k + 2``, ... (a fold, for held-out scores)."""
        rows = self.para % 2 == k
        out = copy.copy(self)
        for name in ("lp", "table_prior", "keep", "gen", "fit", "tp", "fp", "chg", "valid", "para", "clean", "group",
                     "part_right"):
            setattr(out, name, getattr(self, name)[rows])
        out.spans = [s for s, keep in zip(self.spans, rows) if keep]
        paras = np.arange(len(self.gold_count)) % 2 == k
        out.n_gold, out.n_clean = int(self.gold_count[paras].sum()), int(self.is_clean[paras].sum())
        return out

    def choose(self, prior_weight, keep_prior, generated_prior, lm_weight, shortlist):
        """Each span's winner under these settings (as :meth:`Restorer._rerank` chooses)."""
        prior = np.maximum(np.maximum(self.table_prior, self.keep * keep_prior),
                           np.maximum(self.gen * generated_prior, 1e-6))
        pre = np.where(self.valid, prior_weight * np.log(prior) + lm_weight * self.fit, -np.inf)
        allowed = self.valid.copy()
        if shortlist is not None:
            rest = np.where((self.keep == 0) & (self.gen == 0) & self.valid, pre, -np.inf)
            allowed &= (self.keep == 1) | (self.gen == 1) | ((-rest).argsort(1, kind="stable").argsort(1) < shortlist)
        return np.where(allowed, self.lp + pre, -np.inf).argmax(1)

    def score(self, best, conf, max_clean_changed: float = 0.03) -> dict:
        """Edit P/R/F0.5 at the ``min_score`` calibration would choose (its grid, at most
        ``max_clean_changed`` of clean paragraphs changed: ``calibrate_restorer.best_min_score``)."""
        r = np.arange(len(best))
        tp, fp, chg = self.tp[r, best], self.fp[r, best], self.chg[r, best]
        parts = np.flatnonzero(self.group >= 0)
        parts = parts[np.argsort(self.group[parts], kind="stable")]
        starts = np.flatnonzero(np.r_[True, self.group[parts][1:] != self.group[parts][:-1]]) if len(parts) else None
        part_right, part_chg = self.part_right[parts, best[parts]], chg[parts] > 0
        rows = []
        for thr in SCORE_GRID:
            on = conf >= thr
            t, f = int(tp[on & ~self.clean].sum()), int(fp[on & ~self.clean].sum())
            if starts is not None:
                ok = np.logical_and.reduceat(on[parts] & part_right, starts)
                moved = np.logical_or.reduceat(on[parts] & part_chg, starts)
                t, f = t + int(ok.sum()), f + int((moved & ~ok).sum())
            s = prf(t, f, self.n_gold - t, beta=0.5)
            changed = len(set(self.para[on & self.clean & (chg > 0)].tolist())) / max(self.n_clean, 1)
            rows.append({"min_score": thr, "edit_p": round(s.precision, 4), "edit_r": round(s.recall, 4),
                         "edit_f05": round(s.f, 4), "changed_share": round(changed, 4)})
        return best_min_score(rows, max_clean_changed)

    def features(self, best, settings: dict) -> np.ndarray:
        """:func:`confidence_features` of each span's winner (rows in :data:`CONFIDENCE_FEATURES` order)."""
        rows = []
        for r, b in enumerate(best):
            _, s = self.spans[r]
            f = confidence_features(s["options"][b], s["options"][0], len(s["options"]), s["lp"][b],
                                    settings["keep_prior"], settings["generated_prior"])
            rows.append([f[k] for k in CONFIDENCE_FEATURES])
        return np.array(rows, dtype=float)


def _likelihood(table: Table, settings: dict, shortlist: int | None):
    """Each span's winner and, as confidence, the model's probability of it."""
    best = table.choose(**settings, shortlist=shortlist)
    return best, np.exp(table.lp[np.arange(len(best)), best])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> dict[str, float]:
    """Logistic regression (L-BFGS on standardized features); weights on the raw features, by name."""
    import torch

    X, Y = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    mu, sd = X.mean(0), X.std(0).clamp_min(1e-9)
    Z = (X - mu) / sd
    w = torch.zeros(X.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(Z @ w[1:] + w[0], Y) + l2 * (w[1:] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    raw = (w[1:] / sd).detach()
    bias = float((w[0] - (w[1:] * mu / sd).sum()).detach())
    return {"bias": round(bias, 6), **{k: round(float(v), 6) for k, v in zip(CONFIDENCE_FEATURES, raw)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "src/degarble/models/default")
    ap.add_argument("--spun", type=int, default=1500, help="spun training paragraphs")
    ap.add_argument("--clean", type=int, default=500, help="clean training paragraphs")
    ap.add_argument("--candidates", type=int, default=60,
                    help="the spinner tables' candidates per span (the bundle's copy holds at most 60 per word)")
    ap.add_argument("--shortlist", type=int, default=3)
    ap.add_argument("--seed", type=int, default=303)
    ap.add_argument("--profiles", type=profile_list, default=list(BASE_PROFILES),
                    help="comma-separated spinner profiles, taken in turn (a name twice is drawn twice as "
                         "often; default: the base five)")
    ap.add_argument("--out", type=Path, default=REPO / "runs/ranking.json")
    ap.add_argument("--recording", type=Path, default=None,
                    help="keep the recording here (gzipped JSON lines) and replay it on later runs with the "
                         "same bundle and settings, instead of recording again (the slow part)")
    args = ap.parse_args(argv)

    import degarble

    model = degarble.load(args.bundle, precision="fp32")
    if model.restorer is None or model.detector.context is None:
        sys.exit("error: the bundle needs a restorer and the detector's corpus evidence")
    # the bundle's frequency_weight chooses which table candidates are recorded, so a recording
    # made with another is not replayed (named only when set, as older recordings lack it)
    frequency_weight = model.restorer.rank.get("frequency_weight")
    meta = {"models": recorded_from(model), "spun": args.spun, "clean": args.clean, "seed": args.seed,
            "candidates": args.candidates,
            **({"profiles": args.profiles} if args.profiles != list(BASE_PROFILES) else {}),
            **({"frequency_weight": frequency_weight} if frequency_weight else {})}
    if args.recording is not None and args.recording.is_file():
        try:
            items = load_recording(args.recording, meta)
        except ValueError as e:
            sys.exit(f"error: {e}")
        print(f"replaying {args.recording}", flush=True)
    else:
        items = record(model, paragraphs(args.spun, args.clean, args.seed, profiles=args.profiles),
                       args.candidates)
        if args.recording is not None:
            save_recording(items, args.recording, meta)
    table = Table(items)
    print(f"{len(table.spans)} flagged spans, {table.n_gold} gold edits", flush=True)

    def likelihood(settings):
        return _likelihood(table, settings, args.shortlist)

    shipped = {k: float(model.restorer.rank.get(k, RANK_DEFAULTS[k])) for k in GRID}
    print(f"shipped weights {shipped}: {table.score(*likelihood(shipped))}", flush=True)
    results = []
    for values in itertools.product(*GRID.values()):
        settings = dict(zip(GRID, values))
        results.append((table.score(*likelihood(settings)), settings))
    best_score, settings = max(results, key=lambda x: x[0]["edit_f05"])
    print(f"best weights {settings}: {best_score}", flush=True)

    def learned(part: Table, weights_from: Table) -> tuple[dict, dict]:
        """Fit "learned" confidence on ``weights_from``'s edits, score it on ``part``."""
        best = weights_from.choose(**settings, shortlist=args.shortlist)
        r = np.arange(len(best))
        edits = weights_from.chg[r, best] > 0  # the confidence matters only where the winner changes the text
        weights = fit_logistic(weights_from.features(best, settings)[edits],
                               weights_from.right(best)[edits].astype(float))
        best = part.choose(**settings, shortlist=args.shortlist)
        conf = np.array([logistic(weights, dict(zip(CONFIDENCE_FEATURES, f))) for f in part.features(best, settings)])
        return weights, part.score(best, conf)

    # likelihood against learned confidence, each half scored with weights fitted on the other
    held_out = {"likelihood": [], "learned": []}
    for k in (0, 1):
        part = table.half(k)
        held_out["likelihood"].append(part.score(*_likelihood(part, settings, args.shortlist))["edit_f05"])
        held_out["learned"].append(learned(part, table.half(1 - k))[1]["edit_f05"])
    print(f"held-out edit F0.5 per half: {held_out}", flush=True)
    weights, in_sample = learned(table, table)
    print(f"learned confidence {weights}: {in_sample} (in sample)", flush=True)

    rank = {"candidates": args.candidates, "shortlist": args.shortlist, **settings, "confidence": "likelihood"}
    if frequency_weight:
        # the recording's options were chosen with it: the weights fitted here belong with it
        rank["frequency_weight"] = frequency_weight
    if sum(held_out["learned"]) > sum(held_out["likelihood"]):
        rank.update(confidence="learned", confidence_weights=weights)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rank, indent=1) + "\n")
    print(f"wrote {args.out}: {json.dumps(rank)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
