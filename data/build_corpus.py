"""Build the clean-text corpus splits (paragraphs and sentences) from ``shared/data``.

Usage::

    python data/build_corpus.py [--shared-data PATH] [--out data/derived]
                                [--manifests data/manifests] [--sample data/sample] [--limit N]

Splits (see data/README.md, "Corpus splits"):

- ``train`` / ``validation``: openly licensed text only (Wikinews CC BY 2.5, Wikipedia CC BY-SA 3.0),
  split by article; an article goes to ``validation`` when a hash of its id falls in the first 2.5 %.
- ``test``: BBC News (research use), the clean held-out news set. Evaluation only.
- ``test-reuters``, ``test-abc``: extra evaluation-only sets from Reuters-21578 and ABC.

Every paragraph and sentence passes the filters below; the manifests record how many each removed.
Output is deterministic: the same inputs give byte-identical files and manifests.
Nothing is downloaded: when the input is missing the script says where to put it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from degarble.text import normalize_typography, paragraphs, sentences, words

BUILDER_VERSION = "degarble-corpus.v1"

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Validation share of the open-licence articles, in parts per 10,000 of the doc-id hash space.
VALIDATION_PER_10K = 250

# Length limits, in words as counted by degarble.text.words().
SENT_MIN_WORDS, SENT_MAX_WORDS = 5, 80
PARA_MIN_WORDS, PARA_MAX_WORDS = 15, 250

# Sample sizes for data/sample/ (drawn from train only).
SAMPLE_SENTENCES, SAMPLE_PARAGRAPHS = 300, 100

# Dedup priority: a text kept in an earlier split is removed from every later one, so held-out
# text always wins over training text.
SPLIT_ORDER = ("test", "test-reuters", "test-abc", "validation", "train")


# ---------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class Source:
    """One input corpus under shared/data and the policy applied to it."""

    name: str
    folder: str
    files: tuple[str, ...]
    licence: str
    # "open" sources are split into train/validation; others go whole to one evaluation split.
    split: str
    # Where a hole disqualifies text: "paragraph" (drop the paragraph) or "document" (drop the
    # whole article; for Wikinews, whose dropped link templates leave holes that the regex
    # cannot see next to the ones it can).
    hole_scope: str = "paragraph"
    # Wikipedia section headings are one short line ending in "."; drop such lines.
    short_line_headings: bool = False


SOURCES: tuple[Source, ...] = (
    Source(
        "wikinews_en", "wikinews_en", ("wikinews_en.jsonl.gz",), "CC BY 2.5", "open", hole_scope="document"
    ),
    Source(
        "enwiki_2015_sample",
        "enwiki_2015_sample",
        ("enwiki2015_sample.jsonl.gz",),
        "CC BY-SA 3.0",
        "open",
        short_line_headings=True,
    ),
    Source("bbc_news", "bbc_news", ("bbc_news.jsonl.gz",), "BBC copyright, research use only", "test"),
    Source(
        "reuters21578",
        "reuters21578",
        ("reuters21578.jsonl.gz",),
        "Reuters, research use only",
        "test-reuters",
    ),
    Source(
        "abc_news_au",
        "abc_news_au",
        ("abc_rural.txt.gz", "abc_science.txt.gz"),
        "ABC copyright (NLTK corpus), research use only",
        "test-abc",
    ),
)

SPLIT_PURPOSE = {
    "train": "model training (open-licence text only)",
    "validation": "model selection during training (open-licence text only)",
    "test": "held-out clean news (BBC); evaluation only, never train on it",
    "test-reuters": "extra held-out newswire (Reuters-21578, 1987); evaluation only",
    "test-abc": "extra held-out broadcast news (ABC 2006); evaluation only",
}


def read_documents(source: Source, shared: Path) -> Iterator[tuple[str, str]]:
    """Yield ``(doc_id, text)`` for every document of ``source``, in file order.

    Paragraphs in ``text`` are separated by newlines. ABC has no article ids: a story is a block
    of lines between blank lines, numbered per file (``rural-00012``).
    """
    for fname in source.files:
        path = shared / source.folder / fname
        if fname.endswith(".jsonl.gz"):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                for line in fh:
                    rec = json.loads(line)
                    # Reuters keeps its text in "body" (absent for title-only wires).
                    text = rec.get("text") if "text" in rec else rec.get("body")
                    if text:
                        yield str(rec["id"]), text
        else:
            raw = gzip.decompress(path.read_bytes())
            try:
                content = raw.decode("utf-8")
            except UnicodeDecodeError:
                # abc_science.txt is Windows-1252 (degree signs, accents), abc_rural.txt UTF-8.
                content = raw.decode("cp1252", errors="replace")
            prefix = fname.split("_", 1)[1].split(".", 1)[0]  # abc_rural.txt.gz -> rural
            for k, block in enumerate(re.split(r"\n\s*\n", content)):
                if block.strip():
                    yield f"{prefix}-{k:05d}", block


def doc_split(source: Source, doc_id: str) -> str:
    """The split an article belongs to: stable, seed-free, from a hash of ``source:doc_id``."""
    if source.split != "open":
        return source.split
    h = int.from_bytes(hashlib.sha256(f"{source.name}:{doc_id}".encode()).digest()[:8], "big")
    return "validation" if h % 10_000 < VALIDATION_PER_10K else "train"


# ---------------------------------------------------------------------------------------------
# Filters. Each returns the name of the first rule a text breaks, or None if it is clean.

# Extraction holes: wikiextractor dropped Wikinews' {{w|...}} link templates (and Wikipedia's
# pronunciation/convert templates), leaving a function word next to punctuation or another
# function word. The patterns were chosen by comparing bigram rates in Wikinews against BBC and
# Reuters, and keeping those that fire on no more than about 0.5 % of those clean sentences.
_FUNC = (
    r"(?:and|or|but|of|in|on|at|to|for|from|with|by|as|is|was|were|are|has|have|had|said|says"
    r"|that|which|who|whom|where|when|between|after|including)"
)
_HOLE_PATTERNS = {
    # "Prime Minister , New Democracy", "in the ." — a hole leaves a space before punctuation.
    "space_before_punct": r"\s[,;:!?)\]]|\s\.(?![\w.])",
    # "German composer 's"
    "space_apostrophe_s": r"\s['’]s\b",
    # "the of the People's Republic", "the and", "the said" — a determiner followed directly by a
    # function word ("the will", "a while" are fine: not in the list).
    "det_gap": rf"(?<![\w'’-])(?:the|a|an)\s+{_FUNC}(?![\w'’-])",
    # "in the city of when he", "between and", "from to", "the chief economist with told": a
    # preposition with its object missing.
    "prep_gap": (
        r"(?<![Ii]nstead )(?<![Bb]ecause )(?<![Oo]ut )(?<![Aa]head )\bof\s+"
        r"(?:and|or|but|was|were|is|are|has|have|had|said|says|with|when|in|on|from|for|to)(?![\w'’-])"
        r"|\bfrom\s+(?:to|and)\b|\bbetween\s+(?:and|or)\b|\bincluding\s+(?:and|or)\b"
        r"|\bat\s+(?:in|by)\b|\bin\s+in\b|\bby\s+of\b"
        r"|\b(?:of|with|for|from|at|by)\s+(?:told|said|says|announced|stated|claimed)\b"
    ),
    # ", the of ..." at the start of a sentence: its subject was dropped.
    "start_punct": r"^\s*(?:[,;:)\]]|\.(?!\.)|['’]s\b)",
    # "geophysicist Professor John Valley said ...": a lower-case start is a dropped subject (or
    # a fragment); the odd "iPhone" at the start of a sentence is a small price.
    "lowercase_start": r"^[\s\"'“‘(\[]*[a-z]",
    # 'The "" had reported', "(Economy), (), (Agriculture)"
    "empty_quotes_brackets": r"\(\s*\)|\[\s*\]|\{\s*\}|\"\"|“\s*”|‘\s*’",
    # "( company president)", "(; singular halter", "with the of Brazil, , at"
    "bracket_or_comma_gap": r"[(\[]\s*[,;:.]|[(\[]\s|,\s*[,.;:)]|;\s*[,.;)]",
}
HOLE_RE = {name: re.compile(rx) for name, rx in _HOLE_PATTERNS.items()}

# "...currently occurring. would now like to..." — the sentence splitter never splits before a
# lower-case word, so a full stop followed by one inside a sentence means either an abbreviation
# or a subject that went missing.
_STOP_LOWER_RE = re.compile(r"(?<![\w.'’])([A-Za-z]{2,})\.\s+[a-z]")
# fmt: off
_NOT_SENTENCE_END = {
    "mr", "mrs", "ms", "dr", "prof", "st", "sen", "rep", "gov", "gen", "col", "lt", "sgt", "capt",
    "jr", "sr", "inc", "ltd", "co", "corp", "vs", "etc", "no", "nos", "vol", "fig", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mt", "ft", "approx",
    "est", "al", "ca", "cf", "viz", "incl", "op", "pp", "ed", "eds", "rev", "hon", "bros", "dept",
    "univ", "assn", "ave", "blvd", "rd", "km", "kg", "lb", "lbs", "oz", "min", "max", "sq", "cu",
}
# fmt: on


def hole_reason(sentence: str) -> str | None:
    """Name of the extraction-hole pattern ``sentence`` matches, or None if it has none.

    Catches the defects documented in shared/data/wikinews_en/SOURCE.md ("Australia's , in a
    unanimous decision", "German composer 's", "in the city of when he") and Wikipedia's dropped
    pronunciations ("Halteres (; singular halter"), at the price of flagging about 0.5 % of clean
    BBC and Reuters sentences (mostly stray spaces before punctuation and fragments that start in
    lower case, which are broken text anyway).
    """
    for name, rx in HOLE_RE.items():
        if rx.search(sentence):
            return name
    for m in _STOP_LOWER_RE.finditer(sentence):
        if m.group(1).lower() not in _NOT_SENTENCE_END:
            return "stop_then_lowercase"
    return None


_URL_RE = re.compile(r"https?://|\bwww\.|\b[\w.-]+@[\w-]+\.\w|\b[\w-]+\.(?:com|org|net|gov|edu)/", re.I)
# Leftover markup: tags (and Reuters ticker tags like <BP>), entities, wiki syntax, wikiextractor
# math placeholders, mojibake and control characters.
_MARKUP_RE = re.compile(
    r"<[A-Za-z/!][^>]*>|&(?:[a-z]+|#\d+|#x[0-9a-f]+);|\{\{|\}\}|\[\[|\]\]|''|\|"
    r"|^\s*[*#=!]|==|\bformula_\d|\\[a-z]{2,}\{|\ufffd|Ã[\x80-\xbf]|â€|[\x00-\x08\x0b-\x1f\x7f]",
    re.I,
)
# Bylines, captions and credits that sit on a line of their own in scraped news; and interview
# speaker labels ("Wikinews: ...", "David Shankbone: ...", "Q: ..."), which are transcripts, not prose.
_BYLINE_RE = re.compile(
    r"^\s*(?:(?:reporting|written|edited|additional reporting) by\b"
    r"|(?:photo|image|picture|pictured|caption|credit|source|sources|related|see also|copyright"
    r"|update|updated|note|editor's note)\s*[:\-–—]|©)",
    re.I,
)
_SPEAKER_RE = re.compile(r"^\s*(?:[A-Z][\w.'’-]*\s?){1,4}:\s")
_FINAL_PUNCT_RE = re.compile(r"[.!?][\"'”’)\]]*$")


def _letter_share(text: str) -> float:
    """Share of the non-space characters that are letters."""
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def _is_all_caps(text: str) -> bool:
    """True when most words of two or more letters are written in capitals (wire headlines)."""
    ws = re.findall(r"[^\W\d_]{2,}", text)
    return bool(ws) and sum(w.isupper() for w in ws) / len(ws) > 0.5


def _is_unbalanced(text: str) -> bool:
    """Odd straight double quotes, or unmatched curly quotes, parentheses or brackets."""
    return (
        text.count('"') % 2 == 1
        or text.count("“") != text.count("”")
        or text.count("(") != text.count(")")
        or text.count("[") != text.count("]")
    )


def text_reason(text: str, n_words: int, min_words: int, max_words: int) -> str | None:
    """First broken-text rule ``text`` breaks (shared by sentences and paragraphs), or None.

    Order matters only for the statistics: each removed text is counted under its first reason.
    """
    if _BYLINE_RE.search(text) or _SPEAKER_RE.search(text):
        return "byline_caption_label"
    if _MARKUP_RE.search(text):
        return "markup"
    if _URL_RE.search(text):
        return "url"
    if n_words < min_words:
        return "too_short"
    if n_words > max_words:
        return "too_long"
    if not _FINAL_PUNCT_RE.search(text):
        return "no_final_punct"
    if _letter_share(text) < 0.7:
        return "mostly_non_letters"
    if _is_all_caps(text):
        return "all_caps"
    if _is_unbalanced(text):
        return "unbalanced_quotes_brackets"
    return None


def sentence_reason(sentence: str) -> str | None:
    """First reason to drop a stand-alone ``sentence``, or None if it is kept."""
    reason = text_reason(sentence, len(words(sentence)), SENT_MIN_WORDS, SENT_MAX_WORDS)
    if reason:
        return reason
    hole = hole_reason(sentence)
    return f"hole:{hole}" if hole else None


def is_heading_line(paragraph: str, sents: list[str]) -> bool:
    """A Wikipedia section heading: one short "sentence" of under 10 words ("Early life and career.")."""
    return len(sents) == 1 and len(words(paragraph)) < 10


def paragraph_reason(paragraph: str) -> str | None:
    """First reason to drop ``paragraph``, or None (holes are checked sentence by sentence)."""
    return text_reason(paragraph, len(words(paragraph)), PARA_MIN_WORDS, PARA_MAX_WORDS)


def norm_key(text: str) -> str:
    """Dedup key: typography-normalised, case-folded, whitespace-collapsed text."""
    return " ".join(normalize_typography(text).casefold().split())


# ---------------------------------------------------------------------------------------------
# Building


@dataclass
class SplitData:
    """Everything collected for one split before dedup."""

    paragraphs: list[dict] = field(default_factory=list)
    sentences: list[dict] = field(default_factory=list)
    docs_in: int = 0
    para_filters: Counter = field(default_factory=Counter)
    sent_filters: Counter = field(default_factory=Counter)
    sources: set = field(default_factory=set)


def process_document(source: Source, doc_id: str, text: str, out: SplitData) -> None:
    """Segment one document, filter its paragraphs and sentences, and append the survivors to ``out``.

    A paragraph is kept when it passes the paragraph rules and none of its sentences has a hole.
    A sentence is kept when it passes the sentence rules and its paragraph has no hole (holes
    cluster, so the sentences next to a visible one are suspect too). For ``hole_scope ==
    "document"`` sources one hole anywhere drops the whole document.
    """
    paras = []  # (k, paragraph text, its sentences, hole reason of the paragraph or None)
    for k, (ps, pe) in enumerate(paragraphs(text)):
        para = text[ps:pe]
        sents = [para[a:b] for a, b in sentences(para)]
        hole = next((f"hole:{h}" for h in map(hole_reason, sents) if h), None)
        paras.append((k, para, sents, hole))

    if source.hole_scope == "document" and any(p[3] for p in paras):
        for _, _, sents, _ in paras:
            out.para_filters["doc_has_hole"] += 1
            out.sent_filters["doc_has_hole"] += len(sents)
        return

    for k, para, sents, hole in paras:
        base = f"{source.name}-{doc_id}-p{k}"
        if source.short_line_headings and is_heading_line(para, sents):
            out.para_filters["heading"] += 1
            out.sent_filters["heading"] += len(sents)
            continue
        reason = paragraph_reason(para) or hole
        if reason:
            out.para_filters[reason] += 1
        else:
            out.paragraphs.append({"id": base, "source": source.name, "doc_id": doc_id, "text": para})
        for j, sent in enumerate(sents):
            reason = sentence_reason(sent) or (hole and "paragraph_has_hole")
            if reason:
                out.sent_filters[reason] += 1
            else:
                out.sentences.append(
                    {"id": f"{base}-s{j}", "source": source.name, "doc_id": doc_id, "text": sent}
                )


def dedup(splits: dict[str, SplitData], kind: str, banned: set[str]) -> dict[str, dict]:
    """Remove exact duplicates (by :func:`norm_key`) of ``kind`` records within and across splits.

    Splits are visited in :data:`SPLIT_ORDER`, so a text kept in ``test`` is removed from
    ``train``. Texts in ``banned`` (the dev set) are removed everywhere. Returns per-split counts.
    """
    seen: dict[str, str] = {}
    stats = {}
    for split in SPLIT_ORDER:
        if split not in splits:
            continue
        kept, st = [], Counter()
        for rec in getattr(splits[split], kind):
            key = norm_key(rec["text"])
            if key in banned:
                st["dev_set_overlap"] += 1
            elif key in seen:
                st["within_split" if seen[key] == split else f"in_{seen[key]}"] += 1
            else:
                seen[key] = split
                kept.append(rec)
        setattr(splits[split], kind, kept)
        stats[split] = dict(sorted(st.items()))
    return stats


def dev_set_keys(shared: Path) -> set[str]:
    """Dedup keys of the dev set's paragraphs and sentences (shared/dev/seed_dev.jsonl), if present.

    The dev set must never be trained on; it is 2025 text, so no overlap is expected, but the
    builder removes any it finds rather than trusting that.
    """
    path = shared.parent / "dev" / "seed_dev.jsonl"
    keys: set[str] = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            for text in (rec.get("spun", ""), rec.get("original", "")):
                keys.add(norm_key(text))
                keys.update(norm_key(text[a:b]) for a, b in sentences(text))
    return keys


def write_jsonl(path: Path, records: Iterable[dict]) -> dict:
    """Write ``records`` as JSON Lines (UTF-8, ``\\n``) and return name, lines, bytes and sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    path.write_bytes(data)
    return {
        "file": path.name,
        "lines": data.count(b"\n"),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pick_sample(records: list[dict], n: int) -> list[dict]:
    """``n`` records chosen by the smallest sha256 of their id: spread out, stable, seed-free."""
    return sorted(records, key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())[:n]


def check_inputs(shared: Path) -> None:
    """Exit with a clear message when an input file is missing (nothing is ever downloaded)."""
    missing = [
        shared / s.folder / f for s in SOURCES for f in s.files if not (shared / s.folder / f).exists()
    ]
    if missing:
        listing = "\n  ".join(str(p) for p in missing)
        sys.exit(
            f"error: input files not found:\n  {listing}\n"
            f"Put the project's shared data folder (with INDEX.md and one folder per source, as listed in "
            f"data/README.md) at {DEFAULT_SHARED_DATA}, or pass --shared-data PATH or set "
            f"DEGARBLE_SHARED_DATA. Nothing is downloaded."
        )


def build(
    shared: Path,
    out_dir: Path,
    manifest_dir: Path,
    sample_dir: Path | None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, dict]:
    """Build all splits and write outputs, manifests and (unless ``sample_dir`` is None) the sample.

    ``limit`` keeps only the first N documents of each source (for quick tests). Returns the
    manifests by split name.
    """
    check_inputs(shared)
    splits = {name: SplitData() for name in SPLIT_ORDER}
    for source in SOURCES:
        docs = read_documents(source, shared)
        for n, (doc_id, text) in enumerate(
            tqdm(docs, desc=source.name, unit=" docs", disable=not progress, mininterval=2)
        ):
            if limit is not None and n >= limit:
                break
            split = doc_split(source, doc_id)
            data = splits[split]
            data.docs_in += 1
            data.sources.add(source.name)
            process_document(source, doc_id, text, data)

    banned = dev_set_keys(shared)
    dedup_stats = {kind: dedup(splits, kind, banned) for kind in ("paragraphs", "sentences")}

    source_info = {
        s.name: {
            "name": s.name,
            "licence": s.licence,
            "source_md": f"shared/data/{s.folder}/SOURCE.md",
            "files": {f"shared/data/{s.folder}/{f}": sha256_file(shared / s.folder / f) for f in s.files},
            "hole_scope": s.hole_scope,
        }
        for s in SOURCES
    }

    manifests = {}
    manifest_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLIT_ORDER:
        data = splits[split]
        files = {
            kind: write_jsonl(out_dir / f"{split}.{kind}.jsonl", getattr(data, kind))
            for kind in ("paragraphs", "sentences")
        }
        docs_out = {(r["source"], r["doc_id"]) for r in data.paragraphs + data.sentences}
        manifest = {
            "builder": BUILDER_VERSION,
            "split": split,
            "purpose": SPLIT_PURPOSE[split],
            "evaluation_only": split.startswith("test"),
            "split_rule": (
                f"article-level: sha256('<source>:<doc_id>') first 8 bytes mod 10000 < {VALIDATION_PER_10K}"
                " -> validation, else train"
                if split in ("train", "validation")
                else "the whole source"
            ),
            "limit_docs_per_source": limit,
            "sources": [source_info[name] for name in sorted(data.sources)],
            "counts": {
                "docs_in": data.docs_in,
                "docs_out": len(docs_out),
                "paragraphs": len(data.paragraphs),
                "sentences": len(data.sentences),
                "paragraph_words": sum(len(words(r["text"])) for r in data.paragraphs),
                "sentence_words": sum(len(words(r["text"])) for r in data.sentences),
                "by_source": {
                    name: {
                        "paragraphs": sum(r["source"] == name for r in data.paragraphs),
                        "sentences": sum(r["source"] == name for r in data.sentences),
                    }
                    for name in sorted(data.sources)
                },
            },
            "files": files,
            "filters": {
                "limits": {
                    "sentence_words": [SENT_MIN_WORDS, SENT_MAX_WORDS],
                    "paragraph_words": [PARA_MIN_WORDS, PARA_MAX_WORDS],
                },
                "paragraphs_removed": dict(sorted(data.para_filters.items())),
                "sentences_removed": dict(sorted(data.sent_filters.items())),
            },
            "dedup_removed": {kind: dedup_stats[kind][split] for kind in ("paragraphs", "sentences")},
        }
        (manifest_dir / f"{split}.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        manifests[split] = manifest

    if sample_dir is not None:
        write_jsonl(sample_dir / "sentences.jsonl", pick_sample(splits["train"].sentences, SAMPLE_SENTENCES))
        write_jsonl(
            sample_dir / "paragraphs.jsonl", pick_sample(splits["train"].paragraphs, SAMPLE_PARAGRAPHS)
        )
    return manifests


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--shared-data",
        type=Path,
        default=Path(os.environ.get("DEGARBLE_SHARED_DATA") or DEFAULT_SHARED_DATA),
        help="folder with the source corpora (default: $DEGARBLE_SHARED_DATA or ../shared/data)",
    )
    ap.add_argument(
        "--out", type=Path, default=REPO_ROOT / "data" / "derived", help="output folder for the splits"
    )
    ap.add_argument(
        "--manifests", type=Path, default=REPO_ROOT / "data" / "manifests", help="manifest folder"
    )
    ap.add_argument("--sample", type=Path, default=REPO_ROOT / "data" / "sample", help="sample folder")
    ap.add_argument("--no-sample", action="store_true", help="do not rewrite the committed sample")
    ap.add_argument("--limit", type=int, default=None, help="first N documents per source only (testing)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    manifests = build(
        args.shared_data,
        args.out,
        args.manifests,
        None if args.no_sample else args.sample,
        limit=args.limit,
        progress=not args.quiet,
    )
    for split, m in manifests.items():
        c = m["counts"]
        print(
            f"{split:13s} docs {c['docs_out']:>6,}  paragraphs {c['paragraphs']:>7,}  "
            f"sentences {c['sentences']:>7,}  sentence words {c['sentence_words']:>10,}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
