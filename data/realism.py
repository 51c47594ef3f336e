"""Realism report: how close is the spinner simulator to a real spinner?

    python data/realism.py [--dev ../shared/dev/seed_dev.jsonl] [--seeds 5] [--output data/realism.json]

Two measurements on the real spun article in ``shared/dev/seed_dev.jsonl``:

1. **Coverage**: the real (original -> spun) substitutions are found by aligning each original
   paragraph with its spun version (``degarble.score.align_words``). A substitution counts as
   *producible* when the simulator's tables could produce it at all: the whole chunk is one table
   entry, or it splits into consecutive pieces that are each a table entry, an unchanged word, a
   contraction/number/percent rule or an inserted filler. Reported with all tables, with the
   thesaurus alone, and per chunk kind. The tables come from general resources and rules only;
   nothing here feeds back into them.
2. **Statistics**: changed words per 100, share of phrase swaps, share of names touched,
   untouched paragraphs, and how much worse a swapped word fits its neighbours than the original
   did (median, in nats of the bigram counts of clean news) — for the real article and for the simulator spinning the article's
   original paragraphs (default rate, several seeds, every profile).

The dev set is only read here; it is never used to build tables or to train.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from functools import cache
from pathlib import Path
from typing import NamedTuple

from degarble.score import align_words
from degarble.spin import PROFILES, Spinner, load_thesaurus, rules
from degarble.spin.spinner import default_bigrams
from degarble.text import compare_key, words

REPO = Path(__file__).resolve().parents[1]
MAX_PIECE = 4
# every rule table some current profile uses
ALL_TABLES = tuple(dict.fromkeys(t for p in PROFILES.values() if p.rules for t in p.tables))


class Tables:
    """Everything the simulator can produce, as a lookup: (original piece, spun piece) -> bool."""

    def __init__(self, use_rules: bool = True, tables: tuple[str, ...] = ALL_TABLES):
        self.th = load_thesaurus()
        self.rules = rules.merged_rules(tables) if use_rules else {}
        self.use_rules = use_rules
        self.fillers = {f for f, _ in rules.FILLERS} if use_rules else set()

    @cache  # noqa: B019 - one instance per run
    def produces(self, orig: tuple[str, ...], spun: tuple[str, ...]) -> bool:
        o, s = " ".join(orig), " ".join(spun)
        if orig == spun:
            return True
        if not orig:
            return bool(spun) and all(w in self.fillers for w in spun)
        # "a" <-> "an" repaired before a swapped word (Profile.articles)
        if self.use_rules and len(orig) > 1 and len(spun) > 1 and {orig[0], spun[0]} == {"a", "an"}:
            return orig[1:] != spun[1:] and self.produces(orig[1:], spun[1:])
        cands = {c for c, _ in self.th.candidates(o)} | {c for c, _ in self.rules.get(o, [])}
        if o.endswith("'s"):  # possessive stems are swapped with "'s" kept
            cands |= {c + "'s" for c, _ in self.th.candidates(o[:-2])}
            cands |= {c + "'s" for c, _ in self.rules.get(o[:-2], [])}
        if self.use_rules:
            if o in rules.CONTRACTIONS:
                cands.add(rules.CONTRACTIONS[o])
            if o in rules.EXPANSIONS:
                cands.add(rules.EXPANSIONS[o])
            for c, _ in rules.EXTRA_EXPANSIONS.get(o, []):
                cands.add(c)
            if o in rules.NUMBER_WORDS:
                cands.add(rules.NUMBER_WORDS[o])
        # the table holds candidates as the tokenizer splits them ("12 months" -> "12", "months")
        return s in cands or s in {" ".join(compare_key(t.text) for t in words(c)) for c in cands}

    def covers(self, orig: list[str], spun: list[str]) -> bool:
        """Can ``orig`` be turned into ``spun`` by consecutive producible pieces?"""
        n, m = len(orig), len(spun)
        reach = [[False] * (m + 1) for _ in range(n + 1)]
        reach[0][0] = True
        for i in range(n + 1):
            for j in range(m + 1):
                if not reach[i][j]:
                    continue
                for di in range(0, min(MAX_PIECE, n - i) + 1):
                    for dj in range(0, min(MAX_PIECE, m - j) + 1):
                        if (di or dj) and self.produces(tuple(orig[i : i + di]), tuple(spun[j : j + dj])):
                            reach[i + di][j + dj] = True
        return reach[n][m]


class Chunk(NamedTuple):
    """A non-equal chunk of the word alignment of an original paragraph with its spun version."""

    orig: list[str]  # compare keys
    spun: list[str]
    tokens: list  # the original's tokens
    # the same with the equal word before and after on both sides, where there is one: the
    # aligner cuts "start -> start out" into an inserted "out", and a phrase rule needs its anchor
    orig_ctx: list[str]
    spun_ctx: list[str]


def substitutions(original: str, spun: str) -> list[Chunk]:
    """The non-equal chunks of the word alignment (one alignment per pair)."""
    o_toks, s_toks = words(original), words(spun)
    ok = [compare_key(t.text) for t in o_toks]
    sk = [compare_key(t.text) for t in s_toks]
    out = []
    for op in align_words(original, spun):
        if op.tag == "equal":
            continue
        pre = 1 if op.i1 > 0 and op.j1 > 0 else 0
        post = 1 if op.i2 < len(ok) and op.j2 < len(sk) else 0
        out.append(Chunk(ok[op.i1 : op.i2], sk[op.j1 : op.j2], o_toks[op.i1 : op.i2],
                         ok[op.i1 - pre : op.i2 + post], sk[op.j1 - pre : op.j2 + post]))
    return out


def fit_losses(chunks: list[Chunk]) -> list[float]:
    """For each one-word swap between two unchanged words: how much worse the spun word fits there
    than the original, in nats of the bigram model of clean news the spinner's ``context_fit`` uses
    (log P(original | neighbours) - log P(spun | neighbours); 0 = fits as well)."""
    lm = default_bigrams()
    out = []
    for c in chunks:
        o, s = c.orig_ctx, c.spun_ctx
        if len(o) == len(s) == 3 and o[0] == s[0] and o[2] == s[2]:
            fit = lm.chain_logprob(o[0], [[o[1]], [s[1]]], o[2])
            out.append(float(fit[0] - fit[1]))
    return out


def stats(pairs) -> dict:
    """Spinning statistics over (original, spun) pairs."""
    n_words = changed = chunks = phrase = names = name_chunks = untouched = 0
    losses: list[float] = []
    for original, spun in pairs:
        subs = substitutions(original, spun)
        losses += fit_losses(subs)
        n_words += len(words(original))
        untouched += not subs
        for o, s, toks, _, _ in subs:
            chunks += 1
            changed += max(len(o), len(s))
            phrase += len(o) > 1 or len(s) > 1
            # a capitalised word that is not sentence-initial: part of a name or title
            cap = [t for t in toks if t.text[:1].isupper() and t.start > 0 and original[t.start - 2 : t.start - 1] not in ".!?“\"" ]
            if cap:
                name_chunks += 1
                names += len(cap)
    return {
        "paragraphs": len(pairs),
        "changed_words_per_100": round(100 * changed / max(n_words, 1), 1),
        "substitution_chunks": chunks,
        "phrase_swap_share": round(phrase / max(chunks, 1), 3),
        "name_touching_share": round(name_chunks / max(chunks, 1), 3),
        "untouched_paragraphs_share": round(untouched / max(len(pairs), 1), 3),
        # the median, as a few swaps next to rare words reach 10+ nats either way
        "fit_loss_nats": round(statistics.median(losses), 2) if losses else None,
    }


def coverage(rows, tables: Tables) -> dict:
    total = covered = 0
    by_kind: dict[str, list[int]] = {}
    missed = []
    for r in rows:
        for o, s, _, co, cs in substitutions(r["original"], r["spun"]):
            kind = "insert" if not o else "delete" if not s else "word" if len(o) == len(s) == 1 else "phrase"
            ok = tables.covers(o, s) or tables.covers(co, cs)
            total += 1
            covered += ok
            by_kind.setdefault(kind, [0, 0])
            by_kind[kind][0] += ok
            by_kind[kind][1] += 1
            if not ok:
                missed.append(f"{' '.join(o)} -> {' '.join(s)}")
    return {
        "substitutions": total,
        "producible": covered,
        "coverage": round(covered / max(total, 1), 3),
        "by_kind": {k: {"producible": a, "total": b, "coverage": round(a / b, 3)} for k, (a, b) in sorted(by_kind.items())},
        "not_producible": missed,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Realism report of the spinner simulator against a real spun article.")
    ap.add_argument("--dev", type=Path, default=REPO.parent / "shared" / "dev" / "seed_dev.jsonl")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--output", type=Path, default=REPO / "data" / "realism.json")
    ap.add_argument("--show-missed", action="store_true",
                    help="print the real substitutions the tables cannot produce (never written to the report,"
                         " so the dev set's pairs do not end up in the repository)")
    args = ap.parse_args(argv)
    if not args.dev.is_file():
        print(f"error: {args.dev} not found (the real dev article lives in shared/dev/)", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in args.dev.open(encoding="utf-8") if line.strip()]
    report = {
        "dev": str(args.dev.name),
        "coverage_all_tables": coverage(rows, Tables(use_rules=True)),
        # without the content-farm table, whose SPINNERS.md examples partly occur in the dev article
        "coverage_without_news_spinner_table": coverage(rows, Tables(tables=rules.DEFAULT_TABLES)),
        "coverage_thesaurus_only": coverage(rows, Tables(use_rules=False)),
        "real": stats([(r["original"], r["spun"]) for r in rows]),
        "simulated": {},
    }
    for name in PROFILES:
        runs = []
        for seed in range(args.seeds):
            sp = Spinner(name, seed=seed)
            runs.append(stats([(r["original"], sp.spin(r["original"]).text) for r in rows]))
        report["simulated"][name] = {
            "signature": Spinner(name, seed=0).signature().replace("seed:0", f"seeds:0-{args.seeds - 1}"),
            **{k: round(statistics.mean(run[k] for run in runs), 3) for k in runs[0] if k != "paragraphs"},
        }
    missed = report["coverage_all_tables"].pop("not_producible")
    report["coverage_thesaurus_only"].pop("not_producible")
    report["coverage_without_news_spinner_table"].pop("not_producible")
    if args.show_missed:
        print("not producible:", "; ".join(missed))
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    c, t = report["coverage_all_tables"], report["coverage_thesaurus_only"]
    w = report["coverage_without_news_spinner_table"]
    print(f"coverage of real substitutions: {c['producible']}/{c['substitutions']} = {c['coverage']:.1%} "
          f"(without the content-farm table: {w['coverage']:.1%}; thesaurus alone: {t['coverage']:.1%})")
    for k, v in c["by_kind"].items():
        print(f"  {k:7s} {v['producible']}/{v['total']} = {v['coverage']:.1%}")
    keys = list(report["real"].keys())[1:]
    print(f"{'':20s}" + "".join(f"{k[:22]:>24s}" for k in keys))
    print(f"{'real article':20s}" + "".join(f"{report['real'][k]:>24}" for k in keys))
    for name, v in report["simulated"].items():
        print(f"{name:20s}" + "".join(f"{v[k]:>24}" for k in keys))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
