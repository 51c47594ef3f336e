"""Scoring: one implementation of every number degarble reports, used by training, eval and tests.

Pure functions over plain strings and lists (standard library, and sacrebleu for BLEU/chrF; no torch), so a training
script's validation step, ``degarble eval`` and the unit tests cannot drift apart.

Words and alignment
    Texts are split into words with :func:`degarble.text.words` (punctuation is not a word; hyphens
    split words) and words are compared by :func:`degarble.text.compare_key`: case-insensitive, and
    curly/straight quotes and the dashes count as equal. Two texts are aligned word by word with
    ``difflib.SequenceMatcher(autojunk=False)`` over those keys (:func:`align_words`).

Conventions for precision/recall/F (ERRANT's, one rule everywhere)
    Precision is 1.0 when nothing was predicted and recall is 1.0 when there was nothing to find,
    so doing nothing scores P 1.0 / R 0.0 / F 0.0, and doing nothing on clean text scores 1.0 / 1.0 / 1.0.
    Every result also carries its raw counts (``tp``, ``fp``, ``fn``, ``tn``).

Word error rate
    Word-level Levenshtein distance between token sequences, summed over all texts and divided by the
    total number of reference tokens (corpus WER, as jiwer and sacrebleu's TER aggregate). Tokens
    are the words of :func:`degarble.text.words` **plus every punctuation mark between them as a token
    of its own** (:func:`wer_tokens`), compared by :func:`compare_key`. Counting punctuation is what
    tokenised MT scoring does (sacrebleu's 13a tokenizer splits it off too) and what the reference
    figure for the dev article was measured with: doing nothing on ``shared/dev/seed_dev.jsonl``
    gives 31.6 % this way (337 edits / 1067 tokens; 13a tokens give 31.5 %), against the published
    31.2 %. Words alone would give 36.4 % (336 / 924).

BLEU and chrF
    sacrebleu's corpus BLEU (13a tokenizer, mixed case, exp smoothing) and chrF (n=6, beta=2) on the
    raw strings, with sacrebleu's own signature string next to each score. No typography
    normalisation is applied before sacrebleu: on the dev article doing nothing then gives
    BLEU 44.0 and chrF 66.2, the published figures (normalising quotes first would give BLEU 44.8).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

from ._version import __version__
from .text import Token, compare_key, words

__all__ = [
    "BinaryScore",
    "CorpusScore",
    "Opcode",
    "PRF",
    "Signature",
    "align_words",
    "auroc",
    "binary_prf",
    "bleu",
    "chrf",
    "clean_preservation",
    "detection_scores",
    "edit_prf",
    "edit_recall_breakdown",
    "edit_triples",
    "exact_match",
    "label_spans",
    "precision_recall_curve",
    "prf",
    "restoration_scores",
    "spans_to_labels",
    "token_labels",
    "token_prf",
    "wer",
    "wer_tokens",
    "word_errors",
]


# --------------------------------------------------------------------------------------------------
# Alignment


class Opcode(NamedTuple):
    """One chunk of a word alignment, as ``difflib`` gives it: ``a[i1:i2]`` becomes ``b[j1:j2]``.

    ``tag`` is ``"equal"``, ``"replace"``, ``"delete"`` (words only in ``a``) or ``"insert"``
    (words only in ``b``). Indices are word indices into ``words(a)`` and ``words(b)``.
    """

    tag: str
    i1: int
    i2: int
    j1: int
    j2: int


def _keys(tokens: Sequence[Token]) -> list[str]:
    return [compare_key(t.text) for t in tokens]


def _align_keys(a: Sequence[str], b: Sequence[str]) -> list[Opcode]:
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [Opcode(*op) for op in sm.get_opcodes()]


def align_words(spun: str, original: str) -> list[Opcode]:
    """Align the words of ``spun`` to the words of ``original``.

    Words come from :func:`degarble.text.words` and are compared by :func:`compare_key`
    (case-insensitive; curly and straight quotes and the dashes are equal). The alignment is
    ``difflib.SequenceMatcher(autojunk=False)`` over the two key sequences.

    :param spun: the text on the ``a`` side (spun input, or any source text).
    :param original: the text on the ``b`` side (the original, or a model's output).
    :return: opcodes over word indices, covering both word sequences in order.
    """
    return _align_keys(_keys(words(spun)), _keys(words(original)))


def token_labels(spun: str, original: str) -> list[int]:
    """Gold detection labels: for each word of ``spun``, 1 if the spinner put it there, else 0.

    A word is labelled 1 when it falls outside the ``equal`` chunks of :func:`align_words`.
    Words the spinner deleted have no spun word to carry a label and are not represented.
    """
    labels = [0] * len(words(spun))
    for op in align_words(spun, original):
        if op.tag != "equal":
            for i in range(op.i1, op.i2):
                labels[i] = 1
    return labels


def label_spans(text: str, labels: Sequence[int]) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the labelled words of ``text``.

    Runs of consecutive labelled words merge into one span from the first word's start to the last
    word's end ("Common Meeting" is one span). ``labels`` has one entry per word of ``words(text)``.
    """
    toks = words(text)
    if len(labels) != len(toks):
        raise ValueError(f"{len(labels)} labels for {len(toks)} words")
    spans: list[tuple[int, int]] = []
    run_start: int | None = None
    for i, (tok, lab) in enumerate(zip(toks, labels, strict=True)):
        if lab and run_start is None:
            run_start = tok.start
        if run_start is not None and (not lab or i == len(toks) - 1):
            end = tok.end if lab else toks[i - 1].end
            spans.append((run_start, end))
            run_start = None
    return spans


def spans_to_labels(text: str, spans: Iterable) -> list[int]:
    """Word labels from predicted spans: a word is 1 if it overlaps any span by at least a character.

    ``spans`` may hold :class:`degarble.types.Span` objects (anything with ``start``/``end``),
    ``{"start", "end"}`` dicts (the CLI's JSON) or ``(start, end)`` pairs: character offsets into ``text``.
    """
    pairs = [
        (s["start"], s["end"]) if isinstance(s, dict) else (s.start, s.end) if hasattr(s, "start") else (s[0], s[1])
        for s in spans
    ]
    return [int(any(s < tok.end and e > tok.start for s, e in pairs)) for tok in words(text)]


# --------------------------------------------------------------------------------------------------
# Precision, recall, F


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F-beta with the counts behind them (ERRANT's conventions, see module doc)."""

    precision: float
    recall: float
    f: float
    beta: float
    tp: int
    fp: int
    fn: int

    def to_dict(self) -> dict:
        return asdict(self)


def prf(tp: int, fp: int, fn: int, beta: float = 1.0) -> PRF:
    """Precision, recall and F-beta from counts; P = 1.0 with no predictions, R = 1.0 with no gold."""
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    b2 = beta * beta
    f = (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0
    return PRF(p, r, f, beta, tp, fp, fn)


@dataclass(frozen=True)
class BinaryScore:
    """Binary classification at one threshold: P/R/F1, false-positive rate and the confusion counts."""

    precision: float
    recall: float
    f1: float
    fpr: float
    tp: int
    fp: int
    fn: int
    tn: int

    def to_dict(self) -> dict:
        return asdict(self)


def binary_prf(pred: Sequence[bool | int], gold: Sequence[bool | int]) -> BinaryScore:
    """Precision, recall, F1 and false-positive rate of binary predictions against gold labels.

    The false-positive rate is ``fp / (fp + tn)``, and 0.0 when there are no negatives.
    """
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} gold labels")
    tp = fp = fn = tn = 0
    for p, g in zip(pred, gold, strict=True):
        if p and g:
            tp += 1
        elif p:
            fp += 1
        elif g:
            fn += 1
        else:
            tn += 1
    s = prf(tp, fp, fn)
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return BinaryScore(s.precision, s.recall, s.f, fpr, tp, fp, fn, tn)


def token_prf(texts: Sequence[str], pred_spans: Sequence[Iterable], gold_labels: Sequence[Sequence[int]]) -> PRF:
    """Token-level P/R/F1 of "swapped" words, micro-averaged over every word of every text.

    :param texts: the (spun or clean) input texts.
    :param pred_spans: per text, the predicted spans (:class:`Span` or ``(start, end)``); a word is
        predicted swapped if it overlaps one (:func:`spans_to_labels`).
    :param gold_labels: per text, one 0/1 label per word of ``words(text)`` (:func:`token_labels`;
        all zeros for clean text).
    """
    tp = fp = fn = 0
    for text, spans, gold in zip(texts, pred_spans, gold_labels, strict=True):
        pred = spans_to_labels(text, spans)
        if len(pred) != len(gold):
            raise ValueError(f"{len(gold)} gold labels for {len(pred)} words in {text[:40]!r}")
        for p, g in zip(pred, gold, strict=True):
            tp += bool(p and g)
            fp += bool(p and not g)
            fn += bool(g and not p)
    return prf(tp, fp, fn)


def auroc(scores: Sequence[float], labels: Sequence[int | bool]) -> float:
    """Area under the ROC curve, from ranks (Mann–Whitney U); tied scores get their average rank.

    Returns ``nan`` when ``labels`` holds only one class (the area is undefined).
    """
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    y = [bool(x) for x in labels]
    n_pos = sum(y)
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # average ranks (1-based): tied scores share the mean of the ranks they span
    order = sorted(range(len(scores)), key=lambda k: float(scores[k]))
    ranks = [0.0] * len(order)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and float(scores[order[j + 1]]) == float(scores[order[i]]):
            j += 1
        for k in order[i : j + 1]:
            ranks[k] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = sum(r for r, pos in zip(ranks, y, strict=True) if pos) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def precision_recall_curve(scores: Sequence[float], labels: Sequence[int | bool]) -> dict:
    """Precision and recall at every distinct score threshold (predict spun when ``score >= t``).

    Returns ``{"thresholds", "precision", "recall"}`` lists, thresholds descending.
    """
    pairs = sorted(((float(s), bool(y)) for s, y in zip(scores, labels, strict=True)), reverse=True)
    n_pos = max(sum(y for _, y in pairs), 1)
    thresholds, prec, rec = [], [], []
    tp = npred = 0
    for k, (s, y) in enumerate(pairs):
        tp += y
        npred += 1
        if k + 1 == len(pairs) or pairs[k + 1][0] != s:  # last of a run of tied scores
            thresholds.append(s)
            prec.append(tp / npred)
            rec.append(tp / n_pos)
    return {"thresholds": thresholds, "precision": prec, "recall": rec}


def detection_scores(scores: Sequence[float], labels: Sequence[int | bool], threshold: float) -> dict:
    """Paragraph-level detection: AUROC plus P/R/F1/FPR at ``threshold`` (spun when ``score >= threshold``)."""
    pred = [float(x) >= threshold for x in scores]
    out = binary_prf(pred, [bool(x) for x in labels]).to_dict()
    out["auroc"] = auroc(scores, labels)
    out["threshold"] = float(threshold)
    out["n"] = len(labels)
    return out


# --------------------------------------------------------------------------------------------------
# Restoration


def edit_triples(source: str, target: str) -> set[tuple[int, int, str]]:
    """The edits that turn ``source`` into ``target``, ERRANT-style, as comparable triples.

    Each non-equal chunk of ``align_words(source, target)`` becomes ``(i1, i2, replacement)``:
    the source word range and the compare keys of the target words joined by a single space
    (empty for a deletion; ``i1 == i2`` for an insertion).
    """
    a = words(source)
    b_keys = _keys(words(target))
    return {
        (op.i1, op.i2, " ".join(b_keys[op.j1 : op.j2]))
        for op in _align_keys(_keys(a), b_keys)
        if op.tag != "equal"
    }


def edit_prf(
    spun: Sequence[str], original: Sequence[str], restored: Sequence[str], beta: float = 0.5
) -> PRF:
    """Edit-level precision/recall/F0.5 with exact edit match, summed over all texts.

    Gold edits are ``edit_triples(spun, original)``, predicted edits ``edit_triples(spun, restored)``;
    a predicted edit is a true positive only if the same triple is gold (same spun words replaced by
    the same words). Changes to words that were not spun are false positives.
    """
    tp = fp = fn = 0
    for s, o, r in zip(spun, original, restored, strict=True):
        gold = edit_triples(s, o)
        pred = edit_triples(s, r)
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
    return prf(tp, fp, fn, beta=beta)


def edit_recall_breakdown(
    spun: Sequence[str],
    original: Sequence[str],
    restored: Sequence[str],
    spans: Sequence[Iterable],
    paragraphs: Sequence[Sequence[tuple[int, int, bool]]],
) -> dict:
    """Where each gold edit ended up in a detect-then-restore pipeline: the causes of lost recall.

    Every gold edit (``edit_triples(spun, original)``) falls in exactly one class, checked in this
    order: ``restored`` (the output made exactly that edit), ``paragraph_not_flagged`` (its
    paragraph scored below the threshold, so the restorer never looked at it),
    ``words_not_flagged`` (no flagged span touches its words), ``flagged_not_restored`` (flagged,
    but the restorer kept the words, wrote something else or scored its replacement below
    ``min_score``). An edit the spinner made by deleting words (restoring inserts them) counts as
    flagged when a word next to the gap is.

    :param spans: per text, the detector's flagged spans (anything :func:`spans_to_labels` reads).
    :param paragraphs: per text, its paragraphs as ``(start, end, is_spun)`` character ranges.
    :return: the count of each class, ``gold`` (their sum) and ``shares`` (each class / ``gold``).
    """
    classes = ("restored", "flagged_not_restored", "words_not_flagged", "paragraph_not_flagged")
    counts = dict.fromkeys(classes, 0)
    for s, o, r, sp, paras in zip(spun, original, restored, spans, paragraphs, strict=True):
        toks = words(s)
        flagged = spans_to_labels(s, sp)
        pred = edit_triples(s, r)
        for i1, i2, rep in edit_triples(s, o):
            if (i1, i2, rep) in pred:
                counts["restored"] += 1
                continue
            near = range(i1, i2) if i2 > i1 else [i for i in (i1 - 1, i1) if 0 <= i < len(toks)]
            at = toks[near[0]].start if len(near) else 0
            if not any(a <= at < b and spun_para for a, b, spun_para in paras):
                counts["paragraph_not_flagged"] += 1
            elif not any(flagged[i] for i in near):
                counts["words_not_flagged"] += 1
            else:
                counts["flagged_not_restored"] += 1
    gold = sum(counts.values())
    return {"gold": gold, **counts, "shares": {k: v / gold if gold else 0.0 for k, v in counts.items()}}


def suggestion_recall(spun: Sequence[str], original: Sequence[str], edits: Sequence[Sequence]) -> dict:
    """What an editor gains from each edit's alternatives (:attr:`degarble.types.Edit.alternatives`).

    A gold edit (``edit_triples(spun, original)``) counts as ``chosen`` when the restorer's own
    edits make it, and as ``in_suggestions`` when they do or when putting one alternative in place
    of its edit does (one swap at a time, the other edits kept). Also counted: the predicted edits,
    those with any alternative, and those that are wrong while an alternative of theirs is right
    (``rescued``). Recall shares are over all gold edits, so they compare with edit recall.
    """
    from .edits import apply_edits

    gold_n = chosen = found = n_edits = with_alts = rescued = 0
    for s, o, es in zip(spun, original, edits, strict=True):
        gold = edit_triples(s, o)
        es = sorted(es, key=lambda e: e.start)
        made = edit_triples(s, apply_edits(s, es)) & gold
        hits = set(made)
        for i, e in enumerate(es):
            n_edits += 1
            with_alts += bool(e.alternatives)
            right_alt = False
            for alt in e.alternatives:
                new = edit_triples(s, apply_edits(s, [*es[:i], alt, *es[i + 1 :]])) & gold
                right_alt |= bool(new - made)
                hits |= new
            own = edit_triples(s, apply_edits(s, [e])) & gold
            rescued += right_alt and not own
        gold_n += len(gold)
        chosen += len(made)
        found += len(hits)
    return {"gold": gold_n, "chosen": chosen, "in_suggestions": found, "edits": n_edits,
            "edits_with_alternatives": with_alts, "rescued": rescued,
            "recall_chosen": chosen / gold_n if gold_n else 0.0,
            "recall_in_suggestions": found / gold_n if gold_n else 0.0}


def wer_tokens(text: str) -> list[str]:
    """The tokens word error rate counts: each word of :func:`words` and each punctuation mark
    between words as its own token, all as :func:`compare_key` forms."""
    out: list[str] = []
    pos = 0
    for tok in words(text) + [Token(len(text), len(text), "")]:
        out.extend(compare_key(c) for c in text[pos : tok.start] if not c.isspace())
        if tok.text:
            out.append(compare_key(tok.text))
        pos = tok.end
    return out


def _levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def word_errors(hyp: str, ref: str) -> tuple[int, int]:
    """``(edits, reference tokens)``: Levenshtein distance between :func:`wer_tokens` sequences."""
    h, r = wer_tokens(hyp), wer_tokens(ref)
    return _levenshtein(h, r), len(r)


def wer(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus word error rate as a fraction: total token edits / total reference tokens."""
    edits = total = 0
    for h, r in zip(hyps, refs, strict=True):
        e, n = word_errors(h, r)
        edits += e
        total += n
    return edits / total if total else 0.0


@dataclass(frozen=True)
class CorpusScore:
    """A sacrebleu corpus score with sacrebleu's own signature string."""

    score: float
    signature: str

    def to_dict(self) -> dict:
        return asdict(self)


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> CorpusScore:
    """Corpus BLEU (sacrebleu defaults: 13a, mixed case, exp smoothing) on the raw strings."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    s = metric.corpus_score(list(hyps), [list(refs)])
    return CorpusScore(float(s.score), f"BLEU|{metric.get_signature()}")


def chrf(hyps: Sequence[str], refs: Sequence[str]) -> CorpusScore:
    """Corpus chrF (sacrebleu defaults: character 6-grams, beta 2) on the raw strings."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    s = metric.corpus_score(list(hyps), [list(refs)])
    return CorpusScore(float(s.score), f"chrF2|{metric.get_signature()}")


def exact_match(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Share of texts whose output equals the reference word for word (compare keys, punctuation
    included: :func:`wer_tokens`), so only typography and case may differ."""
    if not refs:
        return 0.0
    return sum(wer_tokens(h) == wer_tokens(r) for h, r in zip(hyps, refs, strict=True)) / len(refs)


def restoration_scores(spun: Sequence[str], original: Sequence[str], restored: Sequence[str]) -> dict:
    """Every restoration number for one set of (spun, original, restored) triples.

    Keys: ``edit`` (P/R/F0.5 dict), ``wer_spun`` and ``wer_restored`` (fractions),
    ``wer_reduction`` (``(wer_spun - wer_restored) / wer_spun``, 0.0 if ``wer_spun`` is 0),
    ``bleu``/``chrf`` and ``bleu_spun``/``chrf_spun`` (:class:`CorpusScore` dicts),
    ``exact_match`` and ``exact_match_spun``, ``n``.
    """
    w_spun = wer(spun, original)
    w_rest = wer(restored, original)
    return {
        "n": len(original),
        "edit": edit_prf(spun, original, restored).to_dict(),
        "wer_spun": w_spun,
        "wer_restored": w_rest,
        "wer_reduction": (w_spun - w_rest) / w_spun if w_spun else 0.0,
        "bleu": bleu(restored, original).to_dict(),
        "chrf": chrf(restored, original).to_dict(),
        "bleu_spun": bleu(spun, original).to_dict(),
        "chrf_spun": chrf(spun, original).to_dict(),
        "exact_match": exact_match(restored, original),
        "exact_match_spun": exact_match(spun, original),
    }


def clean_preservation(clean: Sequence[str], outputs: Sequence[str]) -> dict:
    """Over-correction on clean text.

    ``changed_share``: share of clean texts whose output differs from the input at all (byte for
    byte). ``changed_words_per_100``: word-level Levenshtein edits between ``words(input)`` and
    ``words(output)`` (compare keys, no punctuation), per 100 input words.
    """
    changed = edits = total = 0
    for c, o in zip(clean, outputs, strict=True):
        changed += c != o
        a, b = _keys(words(c)), _keys(words(o))
        edits += _levenshtein(b, a) if c != o else 0
        total += len(a)
    return {
        "n": len(clean),
        "changed_share": changed / len(clean) if clean else 0.0,
        "changed_words_per_100": 100.0 * edits / total if total else 0.0,
        "changed": changed,
        "words": total,
    }


# --------------------------------------------------------------------------------------------------
# Signatures


@dataclass(frozen=True)
class Signature:
    """What a score was measured on, in sacrebleu's signature style.

    ``degarble-eval|set:bbc-test.v1|spin:synonym-swap.v2|thes:en.v1|rate:0.20|seed:13|model:en-small@3f2a9c1e|v:0.2.0``

    ``spin`` is the spinner name and version (``real`` for text a real spinner produced, ``none``
    for clean text); ``rate`` and ``seed`` are ``-`` where they do not apply; ``model`` is the
    model or baseline name with the first 8 hex digits of the bundle hash. ``extra`` holds further
    ``key:value`` fields (such as ``thes``) and goes after ``spin``.
    """

    set: str
    spin: str = "none"
    rate: float | None = None
    seed: int | None = None
    model: str = "none"
    bundle_hash: str | None = None
    version: str = __version__
    extra: dict = field(default_factory=dict)

    def format(self) -> str:
        rate = "-" if self.rate is None else f"{float(self.rate):.2f}"
        seed = "-" if self.seed is None else str(self.seed)
        model = self.model if not self.bundle_hash else f"{self.model}@{self.bundle_hash[:8]}"
        parts = ["degarble-eval", f"set:{self.set}", f"spin:{self.spin}"]
        parts += [f"{k}:{v}" for k, v in self.extra.items()]
        parts += [f"rate:{rate}", f"seed:{seed}", f"model:{model}", f"v:{self.version}"]
        return "|".join(parts)

    def __str__(self) -> str:
        return self.format()

    @staticmethod
    def parse_spin(spin_signature: str) -> dict:
        """Fields of a spinner signature (``spin:synonym-swap.v2|thes:en.v1|rate:0.20|seed:13|v:0.2.0``)
        as keyword arguments for :class:`Signature` (``spin``, ``rate``, ``seed``, ``extra``)."""
        fields = dict(p.split(":", 1) for p in spin_signature.split("|") if ":" in p)
        out: dict = {"extra": {}}
        for k, v in fields.items():
            if k == "spin":
                out["spin"] = v
            elif k == "rate":
                out["rate"] = float(v)
            elif k == "seed":
                out["seed"] = int(v)
            elif k not in ("v", "version"):
                out["extra"][k] = v
        return out

