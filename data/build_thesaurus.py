"""Build the spinner's thesaurus resource from the thesauri in shared/data.

    python data/build_thesaurus.py [--shared-data ../shared/data] [--out src/degarble/spin/resources]

Writes ``thesaurus-en.v1.tsv.gz`` (and its provenance in the same folder's README.md is kept by
hand). Sources, all openly licensed (see shared/data/*/SOURCE.md):

* MyThes en_US v2 (WordNet 3.0 derived, sense-grouped, with POS): the precise synonyms.
* Moby Thesaurus II (public domain): large and loose, closest to what real spinners swap.
* PPDB 1.0 XXXL lexical synonyms (CC BY 3.0): inflected surface pairs from bilingual pivoting.

How a pair (original -> spun) gets its weight: each source that proposes it adds evidence
(a MyThes synonym counts most, Moby least; a pair two sources agree on beats any single one),
then the weight is scaled by how common the replacement is (wordfreq Zipf), because spinners
pick ordinary words. Pairs are collected on lemmas with a part of speech and then inflected
with lemminflect, so the table holds surface forms ("told" -> "instructed", "countries" ->
"nations") and the run-time spinner needs no morphology library.

The table is a gzipped TSV, one line per lowercased key (word or phrase):
``key <TAB> zipf <TAB> cand=weight|cand=weight|...``; ``zipf`` is the key's wordfreq frequency
(used by the FGWS baseline). Lines with an empty candidate list only carry a frequency.
Deterministic: the same inputs give a byte-identical file (gzip mtime is fixed).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

from lemminflect import getAllInflections, getAllInflectionsOOV, getAllLemmas
from wordfreq import zipf_frequency

REPO = Path(__file__).resolve().parents[1]
VERSION = "en.v1"

# --- knobs -------------------------------------------------------------------------------
MIN_KEY_ZIPF = 2.8  # spinners swap words that occur in news; rarer keys only bloat the table
MIN_CAND_ZIPF = 2.0  # replacements are ordinary words ("doable" 3.1, "doubtlessly" 2.1)
MAX_CAND_WORDS = 3  # "take care of", "international locations"; longer paraphrases are rare
MAX_CANDS = 60  # per key: real spinners reach far down a loose thesaurus ("said" -> "mentioned")
MIN_WEIGHT = 0.3  # below this a pair is a loose one-way association ("war" -> "Ares")
# Evidence each source adds to a pair. MyThes items carry a relation tag.
W_MYTHES = {"": 1.0, "similar term": 0.6, "related term": 0.35, "generic term": 0.3}
W_MOBY = 0.35
W_MOBY_BOTH_WAYS = 0.25  # Moby lists the pair in both directions: a real synonym, not a loose link
W_PPDB = 0.8
# Shared neighbours: true synonyms list many of the same Moby words (say/mention 0.16, tell/instruct
# 0.22, war/battle 0.44) where loose links share few (say/go 0.06, tell/order 0.04). Evidence added:
# W_SHARED * cosine of the two Moby lists.
W_SHARED = 3.0

UPOS_TAGS = {
    "VERB": ["VB", "VBD", "VBG", "VBN", "VBP", "VBZ"],
    "NOUN": ["NN", "NNS"],
    "ADJ": ["JJ", "JJR", "JJS"],
    "ADV": ["RB"],
}
MYTHES_POS = {"(noun)": "NOUN", "(verb)": "VERB", "(adj)": "ADJ", "(adv)": "ADV"}
_PHRASE_OK = re.compile(r"^[a-z]+(?:[ '-][a-z]+)*$")
# Closed-class words are swapped by hand-written rules (degarble/spin/rules.py), not by the
# thesaurus: thesauri list "the" -> "this" and similar noise for them.
STOP = set(
    """a an the and or but if of in on at by for to from with as is are was were be been being am
    do does did have has had i you he she it we they me him her us them my your his its our their
    this that these those there here not no yes so than then too very can could will would shall
    should may might must who whom whose which what when where why how all any some each every""".split()
)


def zipf(w: str) -> float:
    return zipf_frequency(w, "en")


def read_gz_lines(path: Path, encoding="utf-8"):
    with gzip.open(path, "rt", encoding=encoding, errors="replace") as f:
        for line in f:
            yield line.rstrip("\r\n")


def ok_phrase(p: str) -> bool:
    return bool(_PHRASE_OK.match(p)) and len(p.split()) <= MAX_CAND_WORDS


def proper_only_words(path: Path) -> set[str]:
    """Words MyThes lists only with a capital (Moscow, Russian, Ukraine): names, never swapped."""
    caps, lower = set(), set()
    lines = read_gz_lines(path)
    next(lines)
    for line in lines:
        if not line.startswith("("):
            head = line.split("|")[0]
            (caps if head[:1].isupper() else lower).add(head.lower() if head[:1].isupper() else head)
    return caps - lower


def load_mythes(path: Path):
    """(head, syn, upos) -> evidence from MyThes, antonyms dropped."""
    pairs = defaultdict(float)
    lines = read_gz_lines(path)
    next(lines)  # encoding line
    head = None
    for line in lines:
        if not line.startswith("("):
            head = line.split("|")[0]
            continue
        parts = line.split("|")
        upos = MYTHES_POS.get(parts[0])
        if upos is None or head is None or not ok_phrase(head):
            continue
        for item in parts[1:]:
            m = re.match(r"^(.*?)(?: \((similar term|related term|generic term|antonym)\))?$", item)
            syn, rel = m.group(1), m.group(2) or ""
            if rel == "antonym" or not ok_phrase(syn) or syn == head:
                continue
            key = (head, syn, upos)
            pairs[key] = max(pairs[key], W_MYTHES[rel])
    return pairs


def load_moby(path: Path):
    """head -> set of synonyms (no POS; it is inferred later)."""
    out = {}
    for line in read_gz_lines(path, encoding="latin-1"):
        items = line.split(",")
        head = items[0]
        if ok_phrase(head):
            out[head] = {s for s in items[1:] if ok_phrase(s) and s != head}
    return out


def load_ppdb(path: Path):
    out = defaultdict(set)
    for line in read_gz_lines(path):
        a, _, b = line.partition("\t")
        if ok_phrase(a) and ok_phrase(b) and a != b:
            out[a].add(b)
    return out


def upos_of(word: str) -> set[str]:
    """Parts of speech a lemma can have (for phrases: the head word's)."""
    w = word.split()
    # Verb phrases ("take care of") are headed by their first word, noun phrases
    # ("international locations") by their last; try both.
    found = set()
    for cand, allowed in ((w[0], {"VERB"}), (w[-1], {"NOUN", "ADJ"})) if len(w) > 1 else ((w[0], None),):
        for upos, lemmas in getAllLemmas(cand).items():
            if cand in lemmas and (allowed is None or upos in allowed):
                found.add(upos)
    return found & set(UPOS_TAGS)


def inflect(phrase: str, tag: str) -> str | None:
    """Inflect a lemma phrase for a Penn tag: verbs on the first word, nouns/adjs on the last."""
    words = phrase.split()
    idx = 0 if tag.startswith("VB") else len(words) - 1
    w = words[idx]
    forms = getAllInflections(w).get(tag) or getAllInflectionsOOV(w, "VERB" if tag.startswith("VB") else "NOUN" if tag.startswith("NN") else "ADJ").get(tag)
    if not forms:
        return None
    words = words[:idx] + [forms[0]] + words[idx + 1 :]
    return " ".join(words)


def surface_pairs(lemma_pairs):
    """Expand (lemma, lemma, upos) -> weight into surface (form, form) -> weight."""
    out = defaultdict(float)
    for (a, b, upos), w in lemma_pairs.items():
        for tag in UPOS_TAGS[upos]:
            if tag in ("VB", "NN", "JJ", "RB", "VBP"):
                fa, fb = a, b
            else:
                # only inflect single-word keys whose lemma table knows the form
                fa = inflect(a, tag) if len(a.split()) == 1 else (inflect(a, tag) if upos == "VERB" else None)
                fb = inflect(b, tag)
            if not fa or not fb or fa == fb:
                continue
            out[(fa, fb)] = max(out[(fa, fb)], w)
    return out


def same_lemma(a: str, b: str) -> bool:
    la = {x for v in getAllLemmas(a).values() for x in v} | {a}
    lb = {x for v in getAllLemmas(b).values() for x in v} | {b}
    return bool(la & lb)


def build(shared: Path):
    mythes = load_mythes(shared / "mythes_en_us" / "th_en_US_v2.dat.gz")
    proper = proper_only_words(shared / "mythes_en_us" / "th_en_US_v2.dat.gz")
    moby = load_moby(shared / "moby_thesaurus" / "moby_thesaurus.txt.gz")
    ppdb = load_ppdb(shared / "ppdb_lexical_synonyms" / "ppdb-1.0-xxxl-lexical.extended.synonyms.uniquepairs.gz")
    print(f"mythes lemma pairs {len(mythes):,}; moby heads {len(moby):,}; ppdb heads {len(ppdb):,}", file=sys.stderr)

    # 1. lemma-level evidence: MyThes (with POS) + Moby (POS inferred from lemminflect)
    lemma = defaultdict(float)
    for k, w in mythes.items():
        lemma[k] += w
    for head, syns in moby.items():
        if zipf(head) < MIN_KEY_ZIPF or head in STOP:
            continue
        hpos = upos_of(head)
        for s in syns:
            if zipf(s) < MIN_CAND_ZIPF:
                continue
            common = hpos & upos_of(s)
            bonus = W_MOBY_BOTH_WAYS if head in moby.get(s, ()) else 0.0
            for upos in common:
                lemma[(head, s, upos)] += W_MOBY + bonus
    # PPDB pairs that are lemma pairs (both words are their own lemma for a shared POS)
    for a, bs in ppdb.items():
        apos = upos_of(a)
        for b in bs:
            for upos in apos & upos_of(b):
                lemma[(a, b, upos)] += W_PPDB
    # keep lemma pairs that clear the bar before inflecting (inflection is the slow part)
    lemma = {
        k: w
        for k, w in lemma.items()
        if w >= MIN_WEIGHT and k[0] not in STOP and zipf(k[0]) >= MIN_KEY_ZIPF - 0.3 and zipf(k[1]) >= MIN_CAND_ZIPF
    }
    sizes = {h: len(v) for h, v in moby.items()}
    for (a, b, upos), w in lemma.items():
        if a in moby and b in moby:
            shared = len(moby[a] & moby[b])
            if shared:
                lemma[(a, b, upos)] = w + W_SHARED * shared / (sizes[a] * sizes[b]) ** 0.5
    print(f"lemma pairs kept {len(lemma):,}", file=sys.stderr)
    surf = surface_pairs(lemma)
    # 2. PPDB surface pairs add evidence directly (said -> told); they are already inflected
    for a, bs in ppdb.items():
        for b in bs:
            surf[(a, b)] += W_PPDB * 0.5 if (a, b) in surf else W_PPDB * 0.6

    # 3. filter, weight by replacement frequency, keep the top candidates per key
    table = defaultdict(list)
    zcache: dict[str, float] = {}

    def zc(w):
        if w not in zcache:
            zcache[w] = zipf(w)
        return zcache[w]

    for (a, b), w in surf.items():
        if a in proper or any(w in proper for w in b.split()):
            continue
        if a in STOP or zc(a) < MIN_KEY_ZIPF or zc(b) < MIN_CAND_ZIPF or same_lemma(a, b) or a in b.split():
            continue
        freq = min(1.0, max(0.15, (zc(b) - 1.5) / 3.0))  # Zipf 4.5+ -> 1.0, Zipf 2 -> 0.17
        score = min(w, 5.0) * freq  # the cap only tames pairs that every source lists
        if score >= MIN_WEIGHT * 0.5:
            table[a].append((b, round(score, 3)))
    for a in table:
        # ties (many Moby-only pairs share a weight) go to the more frequent word, not the alphabet
        table[a] = sorted(table[a], key=lambda x: (-x[1], -zc(x[0]), x[0]))[:MAX_CANDS]
    # frequency-only lines for every candidate, so FGWS can compare both sides
    for a in list(table):
        for b, _ in table[a]:
            if b not in table:
                table[b] = []
    return table, zc


def write(table, zc, out_path: Path, sources: dict):
    buf = io.StringIO()
    buf.write(f"# degarble thesaurus {VERSION}: key<TAB>zipf<TAB>cand=weight|... (built by data/build_thesaurus.py)\n")
    for key in sorted(table):
        cands = "|".join(f"{b}={w:g}" for b, w in table[key])
        buf.write(f"{key}\t{zc(key):.2f}\t{cands}\n")
    data = buf.getvalue().encode("utf-8")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    meta = {
        "version": VERSION,
        "keys_with_candidates": sum(1 for v in table.values() if v),
        "pairs": sum(len(v) for v in table.values()),
        "sha256": hashlib.sha256(out_path.read_bytes()).hexdigest(),
        "sources": sources,
        "knobs": {k: v for k, v in globals().items() if k.isupper() and isinstance(v, (int, float, dict)) and k.startswith(("MIN", "MAX", "W_"))},
    }
    out_path.with_suffix("").with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared-data", type=Path, default=Path(os.environ.get("DEGARBLE_SHARED_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--out", type=Path, default=REPO / "src" / "degarble" / "spin" / "resources")
    args = ap.parse_args(argv)
    if not (args.shared_data / "mythes_en_us").is_dir():
        sys.exit(f"error: thesauri not found under {args.shared_data}; pass --shared-data (see data/README.md)")
    table, zc = build(args.shared_data)
    sources = {
        name: hashlib.sha256((args.shared_data / name / fn).read_bytes()).hexdigest()[:16]
        for name, fn in [
            ("mythes_en_us", "th_en_US_v2.dat.gz"),
            ("moby_thesaurus", "moby_thesaurus.txt.gz"),
            ("ppdb_lexical_synonyms", "ppdb-1.0-xxxl-lexical.extended.synonyms.uniquepairs.gz"),
        ]
    }
    meta = write(table, zc, args.out / f"thesaurus-{VERSION}.tsv.gz", sources)
    print(json.dumps({k: meta[k] for k in ("version", "keys_with_candidates", "pairs", "sha256")}), file=sys.stderr)


if __name__ == "__main__":
    main()
