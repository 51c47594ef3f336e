"""The evaluation harness behind ``degarble eval``: named sets, running systems, reports.

    degarble eval                                   # every set in eval/sets/, model + baselines
    degarble eval --sets seed-dev bbc-clean --limit 50
    degarble eval --pairs PAIRS.jsonl [--clean CLEAN.jsonl] --output REPORT.json
    python eval/run.py ...                          # the same, from a checkout

A *set* is a definition in ``eval/sets/<name>.json`` (source file, selection, spinner settings and
seeds), so it can be rebuilt exactly; see ``eval/README.md`` for the fields. Kinds:

* ``spin``: clean paragraphs spun by :func:`degarble.spin.spin` at each named rate, for each
  profile; expands to one set per profile and rate (``bbc-test.v1/synonym-swap.v1/medium``).
* ``clean``: clean paragraphs, for false positives and over-correction.
* ``pairs``: real spun text with its original (JSON Lines ``{"spun", "original"}``), or the
  tortured-phrase table (``"format": "pps-json"``).

Every system (the model bundle, when one loads, and the baselines of :mod:`degarble.baselines`)
runs on every set, and every number comes from :mod:`degarble.score`. A spun set with
``"negatives"`` naming a clean set is scored for paragraph detection against it (AUROC, P/R/F1/FPR
at the system's threshold); spun paragraphs the spinner left unchanged count as negatives too.

Restoration results also say where the recall went: every gold edit is counted as restored,
flagged but not restored, not flagged, or in a paragraph judged clean
(:func:`degarble.score.edit_recall_breakdown`).

Reports: JSON (every score with its signature), a Markdown summary (``eval/reports/summary.md``)
and PNG plots (precision–recall curve with the threshold marked, score histograms of spun vs clean).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import score
from ._version import __version__
from .edits import apply_edits
from .model import GREEDY_HELP, given
from .models.precision import PRECISION_HELP, PRECISIONS
from .score import Signature
from .text import words

__all__ = [
    "EvalSet",
    "SetError",
    "add_eval_arguments",
    "evaluate",
    "load_named_sets",
    "load_pairs_file",
    "load_clean_file",
    "markdown_summary",
    "run_eval_from_args",
    "write_plots",
]

# A checkout's layout: eval/sets/ next to src/; the shared data folder next to the checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_PREFIX = "../shared"


class SetError(Exception):
    """An evaluation set cannot be built (bad definition, or its source file is missing)."""


@dataclass
class EvalSet:
    """One scored set: ``spun``/``original`` pairs, or clean ``texts`` (``kind == "clean"``).

    ``sig`` holds the :class:`Signature` fields other than the model (``spin``, ``rate``,
    ``seed``, ``extra``). ``negatives`` names the clean set detection is scored against.
    ``info`` goes into the report as is (source, hashes, counts, skipped lines).
    """

    name: str
    kind: str  # "spun" or "clean"
    ids: list[str]
    spun: list[str]
    original: list[str]
    sig: dict = field(default_factory=dict)
    negatives: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        """What a system is given: the spun text (for clean sets, the clean text)."""
        return self.spun

    def signature(self, system: Any = None) -> Signature:
        model = getattr(system, "name", "none") if system is not None else "none"
        return Signature(self.name, model=model, bundle_hash=getattr(system, "bundle_hash", None) or None, **self.sig)


# ------------------------------------------------------------------------------------------
# reading sets


def _sha256_text(texts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _select(items: list[tuple[str, str]], sel: dict, limit: int | None) -> list[tuple[str, str]]:
    """Deterministic sample of ``(id, text)`` items: filter, order by a seeded hash, slice.

    The order depends only on ``seed`` and each item's id, not on file order, so the same
    paragraphs are chosen however the source file is sorted. ``start`` lets two sets (clean and
    spun) draw disjoint samples from one ordering.
    """
    min_words = int(sel.get("min_words", 0))
    seed = sel.get("seed", 0)
    kept = [(i, t) for i, t in items if len(words(t)) >= min_words]
    kept.sort(key=lambda it: hashlib.sha1(f"{seed}:{it[0]}".encode()).hexdigest())
    start = int(sel.get("start", 0))
    count = sel.get("count")
    count = len(kept) if count is None else int(count)
    if limit is not None:
        count = min(count, limit)
    return kept[start : start + count]


def _resolve(path: str, root: Path, shared: Path | None) -> Path:
    if shared is not None and (path == SHARED_PREFIX or path.startswith(SHARED_PREFIX + "/")):
        return shared / path[len(SHARED_PREFIX) + 1 :]
    p = Path(path)
    return p if p.is_absolute() else (root / p)


def _report_errors(errors: list[dict], where: str, log: Callable[[str], None]) -> None:
    for e in errors[:20]:
        idpart = f" (id={e['id']})" if e.get("id") is not None else ""
        log(f"{where}: line {e['line']}{idpart}: {e['error']}; skipped")
    if len(errors) > 20:
        log(f"{where}: ... and {len(errors) - 20} more bad lines, all skipped")


def _read_jsonl_fields(path: Path, fields: Sequence[str]) -> tuple[list[tuple[int, dict]], list[dict]]:
    """Records of ``path`` whose ``fields`` are all strings, and one error dict per bad line.

    The first field must be a string (checked by :func:`degarble.io.read_records`); the others
    must be non-empty strings. Errors name the line and the problem.
    """
    from .io import read_records

    good: list[tuple[int, dict]] = []
    bad: list[dict] = []
    for line, rec, err in read_records(path, text_field=fields[0], input_format="jsonl"):
        if err is not None:
            bad.append(err.to_dict())
            continue
        assert rec is not None
        problem = None
        for f in fields[1:]:
            v = rec.get(f)
            if f not in rec:
                problem = f'missing "{f}" field'
            elif not isinstance(v, str):
                problem = f'"{f}" must be a string, got {type(v).__name__}'
            elif not v.strip():
                problem = f'"{f}" is empty'
            if problem:
                break
        if problem is None and not rec[fields[0]].strip():
            problem = f'"{fields[0]}" is empty'
        if problem:
            bad.append({"line": line, "id": None if rec.get("id") is None else str(rec["id"]), "error": problem})
        else:
            good.append((line, rec))
    return good, bad


def load_pairs_file(
    path: str | Path, name: str | None = None, spun_field: str = "spun", original_field: str = "original",
    log: Callable[[str], None] = print,
) -> EvalSet:
    """A spun set from JSON Lines with ``"spun"`` and ``"original"`` (bad lines skipped and counted)."""
    path = Path(path)
    good, bad = _read_jsonl_fields(path, [spun_field, original_field])
    _report_errors(bad, str(path), log)
    ids = [str(r.get("id", f"line{line}")) for line, r in good]
    return EvalSet(
        name=name or f"pairs:{path.name}",
        kind="spun",
        ids=ids,
        spun=[r[spun_field] for _, r in good],
        original=[r[original_field] for _, r in good],
        sig={"spin": "unknown"},
        info={"source": str(path), "source_sha256": _sha256_file(path), "skipped_lines": len(bad),
              "errors": bad[:100]},
    )


def load_clean_file(path: str | Path, name: str | None = None, log: Callable[[str], None] = print) -> EvalSet:
    """A clean set from JSON Lines with ``"text"`` (bad lines skipped and counted)."""
    path = Path(path)
    good, bad = _read_jsonl_fields(path, ["text"])
    _report_errors(bad, str(path), log)
    texts = [r["text"] for _, r in good]
    return EvalSet(
        name=name or f"clean:{path.name}",
        kind="clean",
        ids=[str(r.get("id", f"line{line}")) for line, r in good],
        spun=texts,
        original=texts,
        sig={"spin": "none"},
        info={"source": str(path), "source_sha256": _sha256_file(path), "skipped_lines": len(bad),
              "errors": bad[:100]},
    )


def _read_source_texts(defn: dict, root: Path, shared: Path | None, log) -> tuple[list[tuple[str, str]], dict]:
    src = _resolve(defn["source"], root, shared)
    if not src.is_file():
        how = defn.get("build")
        hint = f"; build it with `{how}`" if how else ""
        raise SetError(f"set {defn['name']!r}: source {defn['source']} not found{hint}")
    good, bad = _read_jsonl_fields(src, [defn.get("text_field", "text")])
    _report_errors(bad, str(src), log)
    items = [(str(r.get("id", f"line{line}")), r[defn.get("text_field", "text")]) for line, r in good]
    return items, {"source": defn["source"], "source_sha256": _sha256_file(src), "skipped_lines": len(bad)}


def _build_spin_sets(defn: dict, root: Path, shared: Path | None, limit: int | None, log) -> list[EvalSet]:
    try:
        from .spin import BASE_PROFILES, PROFILES, RATES, spin
    except ImportError as e:
        raise SetError(f"set {defn['name']!r}: the spinner (degarble.spin) is not available ({e})") from e
    items, info = _read_source_texts(defn, root, shared, log)
    chosen = _select(items, defn.get("select", {}), limit)
    cfg = defn.get("spin", {})
    # "all": every current profile; "base": the five of degarble 0.2, which keep a set's means
    # comparable across releases; or a list of names
    named = {"all": sorted(PROFILES), "base": list(BASE_PROFILES)}
    profiles = cfg.get("profiles", "all")
    if isinstance(profiles, str) and profiles not in named:
        raise SetError(f"set {defn['name']!r}: spin profiles {profiles!r}: use \"all\", \"base\" or a list of names")
    profiles = named[profiles] if isinstance(profiles, str) else list(profiles)
    seed = int(cfg.get("seed", 13))
    out = []
    for profile in profiles:
        if profile not in PROFILES:
            log(f"set {defn['name']!r}: spinner profile {profile!r} unknown (have: {', '.join(sorted(PROFILES))}); skipped")
            continue
        for rate_name in cfg.get("rates", ["light", "medium", "heavy"]):
            rate = RATES[rate_name] if isinstance(rate_name, str) else float(rate_name)
            spun, sig_str, bad_inverse = [], "", 0
            for _, text in chosen:
                s = spin(text, rate=rate, seed=seed, profile=profile)
                spun.append(s.text)
                sig_str = sig_str or s.signature
                try:
                    bad_inverse += apply_edits(s.text, s.edits) != text
                except ValueError:
                    bad_inverse += 1
            if bad_inverse:
                log(f"set {defn['name']}: {bad_inverse} spins whose edits do not restore the original (spinner bug)")
            sig = Signature.parse_spin(sig_str) if sig_str else {}
            sig = {"spin": sig.get("spin", profile), "rate": sig.get("rate", rate), "seed": sig.get("seed", seed),
                   "extra": sig.get("extra", {})}
            originals = [t for _, t in chosen]
            out.append(EvalSet(
                name=f"{defn['name']}/{profile}/{rate_name}",
                kind="spun",
                ids=[i for i, _ in chosen],
                spun=spun,
                original=originals,
                sig=sig,
                negatives=defn.get("negatives"),
                info={**info, "description": defn.get("description", ""), "select": defn.get("select", {}),
                      "texts_sha256": _sha256_text(originals), "spin_signature": sig_str,
                      "spin_edits_not_inverting": bad_inverse},
            ))
    return out


def _build_clean_set(defn: dict, root: Path, shared: Path | None, limit: int | None, log) -> EvalSet:
    items, info = _read_source_texts(defn, root, shared, log)
    chosen = _select(items, defn.get("select", {}), limit)
    texts = [t for _, t in chosen]
    return EvalSet(
        name=defn["name"], kind="clean", ids=[i for i, _ in chosen], spun=texts, original=texts,
        sig={"spin": "none"},
        info={**info, "description": defn.get("description", ""), "select": defn.get("select", {}),
              "texts_sha256": _sha256_text(texts)},
    )


def _read_pps(path: Path) -> tuple[list[tuple[str, str, str]], int]:
    """Tortured-phrase pairs ``(id, tortured, correct)`` from the PPS JSON; skips notes and guesses."""
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    out, skipped = [], 0
    for k, e in enumerate(data.get("phrases", [])):
        t, c = e.get("tortured"), e.get("correct")
        if isinstance(c, str):  # "region of interest (roi)": the acronym in brackets is not part of the phrase
            c = re.sub(r"\s*\((?!\s*\?)[^()]*\)\s*$", "", c)
        if not (isinstance(t, str) and isinstance(c, str)) or not t.strip() or not c.strip():
            skipped += 1
        elif any(ch in t + c for ch in "?[]()") or t.strip().lower() == c.strip().lower():
            skipped += 1  # "rythm pattern (?)", "[neural network] layer outputs": guesses and notes
        else:
            out.append((f"pps-{k}", t.strip(), c.strip()))
    return out, skipped


def _build_pairs_set(defn: dict, root: Path, shared: Path | None, limit: int | None, log) -> EvalSet:
    src = _resolve(defn["source"], root, shared)
    if not src.is_file():
        raise SetError(f"set {defn['name']!r}: source {defn['source']} not found" + (
            f"; {defn['build']}" if defn.get("build") else ""))
    if defn.get("format") == "pps-json":
        triples, skipped = _read_pps(src)
        chosen_ids = {i for i, _ in _select([(i, t) for i, t, _ in triples], defn.get("select", {}), limit)}
        triples = [x for x in triples if x[0] in chosen_ids]
        ids, spun, original = [x[0] for x in triples], [x[1] for x in triples], [x[2] for x in triples]
        info = {"skipped_entries": skipped}
    else:
        s = load_pairs_file(src, defn["name"], defn.get("spun_field", "spun"), defn.get("original_field", "original"),
                            log=log)
        chosen = _select(list(zip(s.ids, s.spun, strict=True)), defn.get("select", {}), limit)
        keep = {i for i, _ in chosen}
        idx = [k for k, i in enumerate(s.ids) if i in keep]  # keep file order (paragraph order)
        ids, spun, original = [s.ids[k] for k in idx], [s.spun[k] for k in idx], [s.original[k] for k in idx]
        info = {"skipped_lines": s.info["skipped_lines"]}
    sigdef = defn.get("signature", {})
    return EvalSet(
        name=defn["name"], kind="spun", ids=ids, spun=spun, original=original,
        sig={"spin": sigdef.get("spin", "real"), "extra": dict(sigdef.get("extra", {}))},
        negatives=defn.get("negatives"),
        info={**info, "source": defn["source"], "source_sha256": _sha256_file(src),
              "description": defn.get("description", ""), "select": defn.get("select", {}),
              "texts_sha256": _sha256_text(original)},
    )


_BUILDERS = {"spin": _build_spin_sets, "clean": _build_clean_set, "pairs": _build_pairs_set}


def read_set_definitions(sets_dir: Path) -> dict[str, dict]:
    """Set definitions in ``sets_dir`` by file stem. Raises :class:`SetError` on a malformed file."""
    defs = {}
    for p in sorted(Path(sets_dir).glob("*.json")):
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise SetError(f"{p}: not valid JSON ({e})") from e
        if not isinstance(d, dict) or d.get("kind") not in _BUILDERS or "source" not in d or "name" not in d:
            raise SetError(f'{p}: a set needs "name", "source" and "kind" (one of {", ".join(_BUILDERS)})')
        defs[p.stem] = d
    return defs


def load_named_sets(
    names: Sequence[str] | None = None,
    sets_dir: Path | None = None,
    root: Path | None = None,
    shared: Path | None = None,
    limit: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[EvalSet], list[str]]:
    """Build the named sets (all in ``sets_dir`` when ``names`` is None), with the clean sets they
    are scored against (their ``negatives``).

    Returns the sets and a list of notes for the sets that could not be built (missing corpus,
    missing spinner), each saying how to fix it; those sets are skipped, not fatal. Clean sets come
    first so spun sets can be scored against them.
    """
    root = root or REPO_ROOT
    sets_dir = sets_dir or root / "eval" / "sets"
    defs = read_set_definitions(sets_dir)
    if names:
        unknown = [n for n in names if n not in defs and n not in {d["name"] for d in defs.values()}]
        if unknown:
            raise SetError(f"unknown set(s) {', '.join(unknown)}; {sets_dir} has: {', '.join(defs)}")
        wanted = {k: d for k, d in defs.items() if k in names or d["name"] in names}
        # the clean set a chosen set is scored against comes along: without it, AUROC and FPR
        # would rest on whatever unchanged paragraphs the spun set happens to have
        negatives = {d.get("negatives") for d in wanted.values()}
        defs = {**wanted, **{k: d for k, d in defs.items() if d["name"] in negatives}}
    ordered = sorted(defs.values(), key=lambda d: (d["kind"] != "clean", d["name"]))
    sets: list[EvalSet] = []
    notes: list[str] = []
    for d in ordered:
        try:
            built = _BUILDERS[d["kind"]](d, root, shared, limit, log)
        except SetError as e:
            notes.append(str(e))
            log(f"skipping: {e}")
            continue
        sets.extend(built if isinstance(built, list) else [built])
    return sets, notes


# ------------------------------------------------------------------------------------------
# running systems


def _batched(fn: Callable[[list[str]], list], texts: list[str], batch_size: int, desc: str, quiet: bool) -> list:
    from tqdm.auto import tqdm

    out: list = []
    with tqdm(total=len(texts), desc=desc, unit="text", disable=quiet, leave=False, file=sys.stderr) as bar:
        for i in range(0, len(texts), batch_size):
            chunk = texts[i : i + batch_size]
            res = list(fn(chunk))
            if len(res) != len(chunk):
                raise RuntimeError(f"{desc}: got {len(res)} results for {len(chunk)} texts")
            out.extend(res)
            bar.update(len(chunk))
    return out


@dataclass
class _Outputs:
    scores: list[float]
    spans: list[list]
    flagged: list[bool]
    restored: list[str] | None
    seconds: float
    # per text: its paragraphs as (start, end, is_spun); the restorer only rewrites spun ones
    paragraphs: list[list[tuple[int, int, bool]]] = field(default_factory=list)
    # per text: the restorer's edits, kept when they carry alternatives (evaluate(alternatives=k))
    edits: list[list] | None = None


def can_restore(system: Any) -> bool:
    """Whether a system has a restorer (a detector-only bundle has none)."""
    return callable(getattr(system, "restore", None)) and getattr(system, "has_restorer", True) is not False


def run_system(system: Any, s: EvalSet, batch_size: int = 32, quiet: bool = False,
               restore: bool = True, greedy: bool = False, alternatives: int = 0,
               min_score: float | None = None, threshold: float | None = None) -> _Outputs:
    """Detect (and, with ``restore``, restore) every text of ``s``.

    ``greedy`` calls ``system.restore(..., greedy=True)`` (a bundle's restore without candidate
    ranking). ``alternatives=k`` asks it for up to ``k`` alternatives per edit and keeps the
    edits (``edits``); ``min_score`` replaces the bundle's calibrated one, ``threshold`` its
    paragraph threshold (for detection and for the paragraphs restored). A restorer that raises
    :class:`NotImplementedError` gives
    ``restored = None``: detection only.
    """
    t0 = time.perf_counter()
    at = given(threshold=threshold)
    dets = _batched(functools.partial(system.detect, **at), s.texts, batch_size, f"{system.name} detect {s.name}", quiet)
    restored = edits = None
    if restore and can_restore(system):
        try:
            restore_fn = functools.partial(system.restore, **at, **given(greedy=greedy, min_score=min_score,
                                                                         alternatives=alternatives or None))
            rests = _batched(restore_fn, s.texts, batch_size, f"{system.name} restore {s.name}", quiet)
            restored = [r.text for r in rests]
            edits = [list(r.edits) for r in rests] if alternatives else None
        except NotImplementedError:
            restored = None
    return _Outputs(
        scores=[float(d.spun_score) for d in dets],
        spans=[list(d.spans) for d in dets],
        flagged=[bool(d.is_spun) for d in dets],
        restored=restored,
        seconds=time.perf_counter() - t0,
        paragraphs=[_paragraph_flags(t, d) for t, d in zip(s.texts, dets, strict=True)],
        edits=edits,
    )


def _paragraph_flags(text: str, det: Any) -> list[tuple[int, int, bool]]:
    # a system whose detections carry no paragraphs judged the text as one
    paras = getattr(det, "paragraphs", None) or [{"start": 0, "end": len(text), "is_spun": det.is_spun}]
    return [(p["start"], p["end"], bool(p["is_spun"])) for p in paras]


def _clean_json(x: Any) -> Any:
    """Make a result JSON-safe: NaN/inf become null, tuples lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean_json(v) for v in x]
    return x


def paragraph_labels(s: EvalSet) -> list[int]:
    """Gold paragraph labels: 1 where the spun text differs from the original in its words.

    A paragraph the spinner left word for word unchanged is a negative (clean sets: all 0).
    """
    if s.kind == "clean":
        return [0] * len(s.texts)
    return [int(bool(score.edit_triples(a, b))) for a, b in zip(s.spun, s.original, strict=True)]


def score_set(s: EvalSet, out: _Outputs, threshold: float, neg: EvalSet | None, neg_out: _Outputs | None) -> dict:
    """Every applicable score of one system on one set (see the module docstring)."""
    res: dict[str, Any] = {}
    if s.kind == "clean":
        gold = [[0] * len(words(t)) for t in s.texts]
        res["detection"] = score.detection_scores(out.scores, [0] * len(s.texts), threshold)
        res["detection"]["flagged_share"] = sum(x >= threshold for x in out.scores) / max(len(s.texts), 1)
        res["token"] = score.token_prf(s.texts, out.spans, gold).to_dict()
        n_words = sum(len(g) for g in gold)
        res["token"]["false_alarms_per_100"] = 100.0 * res["token"]["fp"] / n_words if n_words else 0.0
        if out.restored is not None:
            res["clean"] = score.clean_preservation(s.texts, out.restored)
        return res
    gold = [score.token_labels(a, b) for a, b in zip(s.spun, s.original, strict=True)]
    para = paragraph_labels(s)
    texts, scores, spans, labels = list(s.texts), list(out.scores), list(out.spans), list(gold)
    if neg is not None and neg_out is not None:
        texts += neg.texts
        scores += neg_out.scores
        spans += neg_out.spans
        labels += [[0] * len(words(t)) for t in neg.texts]
        para += [0] * len(neg.texts)
    res["detection"] = score.detection_scores(scores, para, threshold)
    res["detection"]["negatives"] = neg.name if neg is not None and neg_out is not None else None
    res["token"] = score.token_prf(texts, spans, labels).to_dict()
    if out.restored is not None:
        res["restoration"] = score.restoration_scores(s.spun, s.original, out.restored)
        res["restoration"]["gold_edits"] = score.edit_recall_breakdown(
            s.spun, s.original, out.restored, out.spans, out.paragraphs)
        if out.edits is not None:
            res["restoration"]["suggestions"] = score.suggestion_recall(s.spun, s.original, out.edits)
    return res


def evaluate(
    systems: Sequence[Any], sets: Sequence[EvalSet], batch_size: int = 32, quiet: bool = False,
    log: Callable[[str], None] = print, greedy: bool = False, alternatives: int = 0,
    min_score: float | None = None, threshold: float | None = None,
) -> tuple[dict, dict]:
    """Run every system on every set and score it.

    ``greedy`` restores with the model bundles' greedy mode (no candidate ranking; baselines are
    unaffected); each system's entry in the report records ``"greedy"``. ``alternatives=k``
    asks the model bundles for ``k`` alternatives per edit and scores them
    (:func:`degarble.score.suggestion_recall`, ``restoration.suggestions``); the edits and every
    other score stay as without it. ``min_score`` makes the model bundles restore at that
    confidence instead of their calibrated one (recorded as the system's ``"min_score"``), and
    ``threshold`` judge (and restore) paragraphs at that ``spun_score`` instead of their calibrated
    threshold (the system's ``"threshold"`` in the report is then this one).

    :return: ``(report, raw)``: the JSON-ready report, and the raw per-paragraph outputs
        (``raw[system][set] -> _Outputs``) that the plots are drawn from.
    """
    by_name = {s.name: s for s in sets}
    raw: dict[str, dict[str, _Outputs]] = {}
    results = []
    systems_info = []
    for system in systems:
        outs: dict[str, _Outputs] = {}
        restores = can_restore(system)
        sys_greedy = greedy and getattr(system, "kind", "model") == "model"
        is_model = getattr(system, "kind", "model") == "model"
        sys_alts = alternatives if is_model and not sys_greedy else 0
        sys_min = min_score if is_model else None
        sys_thr = threshold if is_model else None
        for s in sets:
            outs[s.name] = run_system(system, s, batch_size, quiet, restore=restores, greedy=sys_greedy,
                                      alternatives=sys_alts, min_score=sys_min, threshold=sys_thr)
            # a restorer that turned out not to exist: detection only from now on
            restores = restores and outs[s.name].restored is not None
        raw[system.name] = outs
        sys_threshold = float(sys_thr if sys_thr is not None else getattr(system, "threshold", 0.5))
        for s in sets:
            neg = by_name.get(s.negatives) if s.negatives else None
            r = score_set(s, outs[s.name], sys_threshold, neg, outs.get(neg.name) if neg else None)
            results.append({"set": s.name, "system": system.name, "signature": s.signature(system).format(),
                            "n": len(s.texts), **r})
        systems_info.append({
            "name": system.name,
            "kind": getattr(system, "kind", "model"),
            "bundle_hash": getattr(system, "bundle_hash", "") or "",
            "threshold": sys_threshold,
            "precision": getattr(system, "precision", None),
            "greedy": sys_greedy and restores,
            "alternatives": sys_alts if restores else 0,
            "min_score": sys_min if restores else None,
            "restores": restores,
            "config": system.config() if getattr(system, "kind", "model") == "baseline" else {},
            "seconds": round(sum(o.seconds for o in outs.values()), 2),
        })
    report = {
        "format": "degarble-eval-report.v1",
        "degarble_version": __version__,
        "systems": systems_info,
        "sets": [{"name": s.name, "kind": s.kind, "n": len(s.texts), "negatives": s.negatives,
                  "signature": s.signature().format(), **s.info} for s in sets],
        "results": results,
        "notes": [],
    }
    return _clean_json(report), raw


# ------------------------------------------------------------------------------------------
# reports


def _pct(x: float | None, dash_if: bool = False) -> str:
    return "–" if x is None or dash_if else f"{100 * x:.1f}"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _prec(d: dict, key: str = "precision") -> str:
    # precision with nothing predicted is 1.0 by convention; show it as a dash in tables
    return _pct(d[key], dash_if=d["tp"] + d["fp"] == 0)


def markdown_summary(report: dict) -> str:
    """The README tables: detection, restoration and clean preservation, one row per set × system."""
    set_order = {s["name"]: k for k, s in enumerate(report["sets"])}
    sys_order = {s["name"]: k for k, s in enumerate(report["systems"])}
    rows = sorted(report["results"], key=lambda r: (set_order.get(r["set"], 0), sys_order.get(r["system"], 0)))
    lines = [f"<!-- generated by `degarble eval` (degarble {report['degarble_version']}); do not edit -->", ""]
    det = [r for r in rows if r.get("detection") and not _is_clean(report, r["set"])]
    if det:
        lines += ["**Detection** (paragraph AUROC, then P/R/F1/FPR at the system's threshold; token-level P/R/F1 "
                  "of swapped words; all in %)", "",
                  "| set | system | AUROC | P | R | F1 | FPR | token P | token R | token F1 |",
                  "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for r in det:
            d, t = r["detection"], r["token"]
            lines.append(f"| {r['set']} | {r['system']} | {_pct(d['auroc'])} | {_prec(d)} | {_pct(d['recall'])} | "
                         f"{_pct(d['f1'])} | {_pct(d['fpr'])} | {_prec(t)} | {_pct(t['recall'])} | {_pct(t['f'])} |")
        lines.append("")
    rest = [r for r in rows if r.get("restoration")]
    if rest:
        lines += ["**Restoration** (edit-level P/R/F0.5, exact edit match; WER against the original, spun input → "
                  "output, and its relative reduction; chrF, BLEU; exact match; all in %)", "",
                  "| set | system | edit P | edit R | edit F0.5 | WER spun | WER out | WER reduction | chrF | BLEU | exact |",
                  "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for r in rest:
            x = r["restoration"]
            e = x["edit"]
            lines.append(f"| {r['set']} | {r['system']} | {_prec(e)} | {_pct(e['recall'])} | {_pct(e['f'])} | "
                         f"{_pct(x['wer_spun'])} | {_pct(x['wer_restored'])} | {_pct(x['wer_reduction'])} | "
                         f"{_num(x['chrf']['score'])} | {_num(x['bleu']['score'])} | {_pct(x['exact_match'])} |")
        lines.append("")
    fates = [r for r in rest if r["restoration"].get("gold_edits")]
    if fates:
        lines += ["**Where the gold edits go** (share of the spinner's edits, in %: restored exactly; flagged but "
                  "not restored (kept, restored wrongly or below min_score); not flagged, in a paragraph judged "
                  "spun; in a paragraph judged clean, which the restorer does not touch)", "",
                  "| set | system | gold edits | restored | flagged, not restored | words not flagged "
                  "| paragraph not flagged |",
                  "|---|---|--:|--:|--:|--:|--:|"]
        for r in fates:
            g = r["restoration"]["gold_edits"]
            sh = g["shares"]
            lines.append(f"| {r['set']} | {r['system']} | {g['gold']} | {_pct(sh['restored'])} | "
                         f"{_pct(sh['flagged_not_restored'])} | {_pct(sh['words_not_flagged'])} | "
                         f"{_pct(sh['paragraph_not_flagged'])} |")
        lines.append("")
    sugg = [r for r in rest if r["restoration"].get("suggestions")]
    if sugg:
        lines += ["**Alternatives** (gold edits restored by the chosen edits, and by the chosen edits or one "
                  "alternative in place of its edit, in %; wrong edits with a right alternative)", "",
                  "| set | system | gold edits | chosen | with an alternative | wrong edits rescued |",
                  "|---|---|--:|--:|--:|--:|"]
        for r in sugg:
            g = r["restoration"]["suggestions"]
            lines.append(f"| {r['set']} | {r['system']} | {g['gold']} | {_pct(g['recall_chosen'])} | "
                         f"{_pct(g['recall_in_suggestions'])} | {g['rescued']} of {g['edits'] - g['chosen']} |")
        lines.append("")
    clean = [r for r in rows if _is_clean(report, r["set"])]
    if clean:
        lines += ["**Clean text** (paragraphs flagged as spun; token false alarms per 100 words; paragraphs changed "
                  "by restoration, and changed words per 100 words)", "",
                  "| set | system | flagged % | false alarms /100 words | changed % | changed words /100 |",
                  "|---|---|--:|--:|--:|--:|"]
        for r in clean:
            c = r.get("clean")
            lines.append(f"| {r['set']} | {r['system']} | {_pct(r['detection']['flagged_share'])} | "
                         f"{_num(r['token']['false_alarms_per_100'])} | "
                         f"{_pct(c['changed_share']) if c else '–'} | {_num(c['changed_words_per_100']) if c else '–'} |")
        lines.append("")
    sacre = next((r["restoration"] for r in rest), None)
    lines.append("Systems: " + "; ".join(
        f"`{s['name']}`" + (f" @{s['bundle_hash']}" if s["bundle_hash"] else "")
        + f" (threshold {s['threshold']:g}" + (f", {s['precision']}" if s.get("precision") else "")
        + (", greedy" if s.get("greedy") else "")
        + (f", min_score {s['min_score']:g}" if s.get("min_score") is not None else "") + ")"
        for s in report["systems"]) + ".")
    if sacre:
        lines.append(f"sacrebleu: `{sacre['bleu']['signature']}`, `{sacre['chrf']['signature']}`.")
    lines += ["", "<details><summary>Signatures</summary>", "", "```"]
    lines += sorted({r["signature"] for r in rows})
    lines += ["```", "", "</details>"]
    for note in report.get("notes", []):
        lines.append(f"\n> {note}")
    return "\n".join(lines) + "\n"


def _is_clean(report: dict, set_name: str) -> bool:
    return any(s["name"] == set_name and s["kind"] == "clean" for s in report["sets"])


def write_plots(report: dict, raw: dict, sets: Sequence[EvalSet], out_dir: Path,
                log: Callable[[str], None] = print) -> list[Path]:
    """PNG plots per system that scores (baselines without a detector are skipped):

    * ``<system>-pr.png``: precision–recall curve of each spun set scored against negatives, with
      the operating point at the system's threshold marked;
    * ``<system>-scores.png``: histograms of ``spun_score`` on spun and clean paragraphs.

    Needs matplotlib (the ``plots`` extra); without it, logs a note and returns ``[]``.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("plots skipped: matplotlib is not installed (pip install 'degarble[plots]')")
        return []
    by_name = {s.name: s for s in sets}
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for sysinfo in report["systems"]:
        name = sysinfo["name"]
        outs = raw.get(name, {})
        if all(max(o.scores, default=0.0) == 0.0 for o in outs.values()):
            continue  # do-nothing: every score is 0, nothing to draw
        thr = sysinfo["threshold"]
        fig, ax = plt.subplots(figsize=(6, 4.5))
        drawn = False
        for s in sets:
            neg = by_name.get(s.negatives) if s.negatives else None
            if s.kind != "spun" or neg is None or neg.name not in outs:
                continue
            sc = outs[s.name].scores + outs[neg.name].scores
            lab = paragraph_labels(s) + [0] * len(neg.texts)
            c = score.precision_recall_curve(sc, lab)
            # start at (recall 0, precision 1), as sklearn's curve does
            (line,) = ax.plot([0.0, *c["recall"]], [1.0, *c["precision"]], label=s.name, lw=1.2)
            d = score.binary_prf([x >= thr for x in sc], lab)
            ax.plot([d.recall], [d.precision], "o", color=line.get_color())
            drawn = True
        if drawn:
            ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
                   title=f"{name}: paragraph detection (dot = threshold {thr:g})")
            ax.legend(fontsize=7, loc="lower left")
            ax.grid(alpha=0.3)
            p = out_dir / f"{name}-pr.png"
            fig.tight_layout()
            fig.savefig(p, dpi=120)
            written.append(p)
        plt.close(fig)

        hist_sets = [s for s in sets if s.name in outs and (s.kind == "clean" or s.negatives)]
        if not hist_sets:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        bins = [i / 40 for i in range(41)]
        for s in hist_sets:
            ax.hist([min(max(x, 0.0), 1.0) for x in outs[s.name].scores], bins=bins, histtype="step",
                    label=s.name, lw=1.5 if s.kind == "clean" else 1.0, density=True)
        ax.axvline(thr, color="k", ls="--", lw=1, label=f"threshold {thr:g}")
        ax.set(xlabel="spun_score", ylabel="density", title=f"{name}: scores of spun and clean paragraphs")
        ax.legend(fontsize=7)
        p = out_dir / f"{name}-scores.png"
        fig.tight_layout()
        fig.savefig(p, dpi=120)
        written.append(p)
        plt.close(fig)
    return written


# ------------------------------------------------------------------------------------------
# command line


README_BEGIN = "<!-- eval-headline:begin (generated by `degarble eval --readme README.md`; do not edit) -->"
README_END = "<!-- eval-headline:end -->"


def _find(report: dict, set_name: str, system: str) -> dict | None:
    return next((r for r in report["results"] if r["set"] == set_name and r["system"] == system), None)


def headline_table(report: dict) -> str:
    """The README's headline table: degarble against the baselines on the deciding sets.

    Columns: synthetic BBC at medium rate (mean over spinner profiles: token F1, paragraph AUROC),
    clean BBC (share of paragraphs flagged), the real dev article (paragraph recall, originals
    flagged, token F1) and, where a system restores, WER on the dev article and edit F0.5 on
    synthetic medium.
    """
    systems = [s["name"] for s in report["systems"]]
    medium = sorted({r["set"] for r in report["results"] if re.fullmatch(r"bbc-test\.v1/[^/]+/medium", r["set"])})

    def mean(vals):
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None

    rows = ["| system | BBC medium token F1 | BBC medium AUROC | BBC clean flagged | dev recall | dev originals flagged "
            "| dev token F1 | dev WER (spun → out) | BBC medium edit F0.5 |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for name in systems:
        med = [_find(report, m, name) for m in medium]
        med = [m for m in med if m]
        clean = _find(report, "bbc-test.v1/clean", name)
        dev = _find(report, "seed-dev.v1", name)
        orig = _find(report, "seed-dev.v1/originals", name)
        tok_f1 = mean([m["token"]["f"] for m in med])
        au = mean([m["detection"].get("auroc") for m in med])
        f05 = mean([m["restoration"]["edit"]["f"] for m in med if "restoration" in m and "edit" in m["restoration"]])
        wer = None
        if dev and "restoration" in dev:
            rr = dev["restoration"]
            wer = f"{100 * rr['wer_spun']:.1f} → {100 * rr['wer_restored']:.1f}" if "wer_spun" in rr else None
        flagged_orig = f"{orig['detection']['fp']}/{orig['n']}" if orig else None
        cells = [
            _pct(tok_f1), _pct(au), _pct(clean["detection"]["flagged_share"]) if clean else "–",
            _pct(dev["detection"]["recall"]) if dev else "–", flagged_orig or "–",
            _pct(dev["token"]["f"]) if dev else "–", wer or "–", _pct(f05),
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    sigs = sorted({r["signature"].split("|model:")[0] for r in report["results"]})
    foot = (f"All in %. Spinner and sets: {len(sigs)} signatures in the report; degarble {report['degarble_version']}; "
            f"generated {report.get('run', {}).get('created', '')}.")
    return "\n".join(rows) + "\n\n" + foot + "\n"


def update_readme(path: str | Path, table: str) -> None:
    """Replace the text between the README's headline markers with ``table``."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if README_BEGIN not in text or README_END not in text:
        raise SetError(f"{p} has no headline markers; add the two lines:\n{README_BEGIN}\n{README_END}")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    p.write_text(head + README_BEGIN + "\n" + table + README_END + tail, encoding="utf-8")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``degarble eval`` (and ``python eval/run.py``)."""
    parser.description = (
        "Score the model bundle and the baselines (do-nothing, FGWS) on the named evaluation sets in "
        "eval/sets/, or on your own files. Writes a JSON report, a Markdown summary and PNG plots."
    )
    parser.epilog = (
        "examples:\n"
        "  degarble eval                                  # all named sets -> eval/reports/\n"
        "  degarble eval --sets seed-dev --limit 50\n"
        "  degarble eval --pairs pairs.jsonl --clean clean.jsonl --output report.json\n"
        "  degarble eval --greedy --output eval/reports/greedy.json --summary greedy.md   # no candidate ranking\n"
        "\nPAIRS lines: {\"spun\": ..., \"original\": ...}; CLEAN lines: {\"text\": ...}. Bad lines are reported,\n"
        "skipped and counted. Exit status: 0 ok, 1 some input lines skipped, 2 usage error."
    )
    g = parser.add_argument_group("what to evaluate")
    g.add_argument("--sets", nargs="+", metavar="NAME", help="named sets (file stems or names in --sets-dir); default: all")
    g.add_argument("--pairs", metavar="PAIRS.jsonl", help='your spun/original pairs (lines with "spun" and "original")')
    g.add_argument("--clean", metavar="CLEAN.jsonl", help='your clean texts (lines with "text"), scored with --pairs')
    g.add_argument("--limit", type=int, metavar="N", help="at most N texts per set (default: as each set defines)")
    g.add_argument("--model", metavar="DIR", help="model bundle (default: as degarble.load finds it)")
    g.add_argument("--precision", choices=PRECISIONS,
                   help=PRECISION_HELP + "; the report records it")
    g.add_argument("--greedy", action="store_true", help=GREEDY_HELP + "; the report records it")
    g.add_argument("--alternatives", type=int, default=0, metavar="K",
                   help="ask the model for K alternatives per edit and score them (how many gold edits an "
                        "editor could restore by picking one: restoration.suggestions); other scores unchanged")
    g.add_argument("--min-score", type=float, metavar="P",
                   help="restore at this confidence instead of the bundle's calibrated min_score (0-1); "
                        "the report records it")
    g.add_argument("--threshold", type=float, metavar="T",
                   help="judge and restore paragraphs at this spun_score instead of the bundle's calibrated "
                        "threshold (0-1); the report records it")
    g.add_argument("--baselines-only", action="store_true", help="do not load a model bundle")
    g.add_argument("--batch-size", type=int, default=32, help="texts per model call")
    g = parser.add_argument_group("where")
    g.add_argument("--sets-dir", type=Path, help="set definitions (default: eval/sets in the checkout)")
    g.add_argument("--shared", type=Path, help="the shared data folder (default: ../shared next to the checkout)")
    g.add_argument("--output", metavar="REPORT.json",
                   help="JSON report ('-' for stdout; default: eval/reports/<model>.json for named sets, stdout for --pairs)")
    g.add_argument("--summary", metavar="SUMMARY.md",
                   help="Markdown tables (default: beside --output, as REPORT.md; without --output, "
                        "eval/reports/summary.md for named sets)")
    g.add_argument("--plots-dir", type=Path,
                   help="PNG plots (default: --output's folder; without --output, eval/reports for named sets)")
    g.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    g.add_argument("--readme", metavar="README.md", help="also refresh the headline table between its markers")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _load_systems(args: argparse.Namespace, log) -> tuple[list[Any], list[str]]:
    from .baselines import FGWS, DoNothing

    notes: list[str] = []
    systems: list[Any] = []
    if not args.baselines_only:
        import degarble

        load = getattr(degarble, "load", None)
        model = None
        if load is None:
            notes.append("No model evaluated: degarble.load is not available in this build; baselines only.")
        else:
            try:
                model = load(args.model, args.precision)
            except Exception as e:  # BundleError, NotImplementedError, OSError, ImportError
                if args.model is not None:
                    raise SetError(f"cannot load the model bundle {args.model}: {e}") from e
                notes.append(f"No model evaluated: no bundle could be loaded ({type(e).__name__}: {e}); baselines only.")
        if model is not None:
            from .cli import _accepts  # the CLI's own check, for the CLI's --greedy

            if args.greedy and can_restore(model) and not _accepts(model.restore, "greedy"):
                raise SetError("--greedy: this model's restore() has no greedy option")
            if args.alternatives and can_restore(model) and not _accepts(model.restore, "alternatives"):
                raise SetError("--alternatives: this model's restore() cannot suggest alternatives")
            if args.min_score is not None and can_restore(model) and not _accepts(model.restore, "min_score"):
                raise SetError("--min-score: this model's restore() has no min_score option")
            if args.threshold is not None and not (_accepts(model.detect, "threshold") and (
                    not can_restore(model) or _accepts(model.restore, "threshold"))):
                raise SetError("--threshold: this model's detect() or restore() has no threshold option")
            systems.append(model)
    systems += [DoNothing(), FGWS.from_thesaurus()]
    for n in notes:
        log(n)
    return systems, notes


def run_eval_from_args(args: argparse.Namespace) -> int:
    """Run ``degarble eval``; return the exit status (0 ok, 1 input lines skipped, 2 usage error)."""
    def log(msg: str) -> None:
        print(f"degarble eval: {msg}", file=sys.stderr)

    root = REPO_ROOT
    shared = args.shared
    user_mode = args.pairs is not None or args.clean is not None
    try:
        if args.limit is not None and args.limit < 1:
            raise SetError("--limit must be at least 1")
        if args.alternatives < 0:
            raise SetError("--alternatives must be at least 0")
        if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
            raise SetError("--min-score must be between 0 and 1")
        if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
            raise SetError("--threshold must be between 0 and 1")
        if args.alternatives and args.greedy:
            raise SetError("--alternatives come from candidate ranking, which --greedy skips; use one of them")
        if args.clean and not args.pairs:
            raise SetError("--clean goes with --pairs (the clean texts are the negatives for your pairs)")
        sets: list[EvalSet] = []
        notes: list[str] = []
        for f in (args.pairs, args.clean):
            if f is not None and not Path(f).is_file():
                raise SetError(f"input file {f} not found")
        if user_mode:
            clean = load_clean_file(args.clean, log=log) if args.clean else None
            pairs = load_pairs_file(args.pairs, log=log)
            if args.limit:
                for s in (clean, pairs):
                    if s is not None:
                        for attr in ("ids", "spun", "original"):
                            setattr(s, attr, getattr(s, attr)[: args.limit])
            if clean is not None:
                pairs.negatives = clean.name
                sets.append(clean)
            sets.append(pairs)
        if args.sets or not user_mode:
            named, notes = load_named_sets(args.sets, args.sets_dir, root, shared, args.limit, log)
            sets += named
        if not any(len(s.texts) for s in sets):
            raise SetError("nothing to evaluate: " + ("; ".join(notes) or "every set is empty"))
        systems, sys_notes = _load_systems(args, log)
    except SetError as e:
        log(str(e))
        return 2

    t0 = time.perf_counter()
    report, raw = evaluate(systems, sets, batch_size=args.batch_size, quiet=args.quiet, log=log,
                           greedy=args.greedy, alternatives=args.alternatives, min_score=args.min_score,
                           threshold=args.threshold)
    report["notes"] = sys_notes + notes
    skipped = sum(s.info.get("skipped_lines", 0) for s in sets)
    report["skipped_lines"] = skipped
    report["run"] = {"argv": sys.argv[1:], "seconds": round(time.perf_counter() - t0, 1),
                     "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    reports_dir = root / "eval" / "reports"
    model_name = next((s["name"] for s in report["systems"] if s["kind"] == "model"), "baselines")
    output = args.output or ("-" if user_mode and not args.sets else str(reports_dir / f"{model_name}.json"))
    # everything a run writes goes next to the report it was asked for: an experiment's --output
    # elsewhere must not overwrite the committed summary and plots in eval/reports
    if args.output and args.output != "-":
        summary = args.summary or str(Path(args.output).with_suffix(".md"))
        plots_dir = args.plots_dir or Path(args.output).parent
    else:
        summary = args.summary or (None if user_mode and not args.sets else str(reports_dir / "summary.md"))
        plots_dir = args.plots_dir or (None if user_mode and not args.sets else reports_dir)

    md = markdown_summary(report)
    text = json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
        log(f"wrote {output}")
    if summary:
        Path(summary).parent.mkdir(parents=True, exist_ok=True)
        Path(summary).write_text(md, encoding="utf-8")
        log(f"wrote {summary}")
    if plots_dir and not args.no_plots:
        for p in write_plots(report, raw, sets, Path(plots_dir), log=log):
            log(f"wrote {p}")
    if getattr(args, "readme", None):
        try:
            update_readme(args.readme, headline_table(report))
            log(f"updated the headline table in {args.readme}")
        except SetError as e:
            log(str(e))
            return 2
    if output != "-" or summary:
        print(md, file=sys.stderr)
    if skipped:
        log(f"{skipped} bad input line(s) skipped (see above)")
        return 1
    return 0
