"""The detector: per-word "a spinner put this here" probabilities from a token classifier.

Everything that training and inference must agree on lives here: how text is normalised,
how words are mapped to sub-word tokens (the first sub-word of a word carries its label),
how long input is windowed, and how word probabilities become a paragraph score.

The model is a ``transformers`` token classifier (two labels: kept / spun), fine-tuned from
all-MiniLM-L6-v2 by ``training/train_detector.py``.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..text import compare_key, paragraphs, words
from ..types import Detection, Span
from .context import logit
from .precision import quantize_int8, resolve_precision

IGNORE = -100  # label of sub-words that are not the first of a word (and of special tokens)

# ---- text normalisation with an offset map ---------------------------------------------------
_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def normalize_with_map(text: str) -> tuple[str, list[int]]:
    """Unescape HTML entities left in scraped text (``&amp;``, ``&#8217;``).

    Returns the normalised text and, for each of its characters (plus one past the end), the
    index of the input character it came from, so predictions map back to input offsets.
    """
    out: list[str] = []
    idx: list[int] = []
    pos = 0
    for m in _ENTITY_RE.finditer(text):
        rep = html.unescape(m.group())
        if rep == m.group():
            continue
        out.append(text[pos : m.start()])
        idx.extend(range(pos, m.start()))
        out.append(rep)
        idx.extend([m.start()] * len(rep))
        pos = m.end()
    out.append(text[pos:])
    idx.extend(range(pos, len(text)))
    idx.append(len(text))
    return "".join(out), idx


# ---- encoding: words -> sub-word windows ------------------------------------------------------
@dataclass
class Window:
    """One model input: token ids plus, per token, the index of the word it starts (or -1)."""

    input_ids: list[int]
    word_index: list[int]  # word index for first sub-words, -1 elsewhere
    labels: list[int] = field(default_factory=list)


def encode_words(tokenizer, text: str, toks, max_length: int = 128, stride: int = 32, labels=None) -> list[Window]:
    """Tokenize ``text`` and cut it into windows of at most ``max_length`` tokens.

    Windows overlap by ``stride`` tokens so every word is seen with some context on both sides;
    nothing is truncated. ``toks`` are the words of ``text`` (:func:`degarble.text.words`);
    ``labels`` (one 0/1 per word) are attached to each word's first sub-word when given.
    """
    # verbose=False: the whole text is tokenized once and windowed below, so its length may exceed
    # the model's maximum; transformers would warn that it "will result in indexing errors"
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    # map each sub-word to the word whose span contains its first character
    word_of = [-1] * len(ids)
    w = 0
    seen = set()
    for t, (a, b) in enumerate(offsets):
        while w < len(toks) and toks[w].end <= a:
            w += 1
        if w < len(toks) and toks[w].start <= a < toks[w].end and b > a:
            if w not in seen:
                word_of[t] = w
                seen.add(w)
    body = max_length - 2
    step = max(1, body - stride)
    windows = []
    start = 0
    while True:
        chunk = slice(start, start + body)
        wids = word_of[chunk]
        # a window must not start in the middle of a word: its first sub-word label lives elsewhere
        win = Window(
            [tokenizer.cls_token_id] + ids[chunk] + [tokenizer.sep_token_id],
            [-1] + wids + [-1],
        )
        if labels is not None:
            win.labels = [IGNORE] + [labels[x] if x >= 0 else IGNORE for x in wids] + [IGNORE]
        windows.append(win)
        if start + body >= len(ids):
            break
        start += step
    return windows


# ---- aggregation -------------------------------------------------------------------------------
PARAGRAPH_SCORES = ("evidence", "evidence_max", "top")


def paragraph_score(word_probs: list[float], top_k: int = 3, top_share: float = 0.0, method: str = "top",
                    min_words: int = 10, weights: list[float] | None = None) -> float:
    """A paragraph's ``spun_score`` from its word probabilities, by ``method``.

    * ``"evidence_max"``: ``sigmoid(a x logit(evidence) + b x logit(max p) + c)`` with
      ``weights`` ``[a, b, c]``, a logistic regression fitted on spun and clean training
      paragraphs (``training/fit_context.py``): the evidence of :func:`evidence_score`, and the
      single most suspicious word, which a lightly spun paragraph may have alone.
    * ``"evidence"`` (bundles from 0.2.1 on): :func:`evidence_score`.
    * ``"top"`` (0.2.0 bundles): the mean of the top ``max(top_k, ceil(top_share * words))``
      word probabilities. The maximum alone (GECToR's sentence score) flags clean paragraphs on
      one odd word; the mean over all words misses lightly spun ones. A paragraph of fewer than
      ``top_k`` words counts the missing ones as 0.

    The threshold shipped in a bundle is calibrated on the score its manifest names.
    """
    if method == "evidence":
        return evidence_score(word_probs, min_words)
    if method == "evidence_max":
        if not weights or len(weights) != 3:
            raise ValueError(f'paragraph score "evidence_max" needs three weights, got {weights!r}')
        ev = evidence_score(word_probs, min_words)
        top = max(word_probs, default=0.0)
        z = weights[0] * logit(ev) + weights[1] * logit(top) + weights[2]
        return float(1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0))))
    if method != "top":
        raise ValueError(f"unknown paragraph score {method!r}; known: {', '.join(PARAGRAPH_SCORES)}")
    if not word_probs or top_k < 1:
        return 0.0
    k = max(top_k, math.ceil(top_share * len(word_probs)))
    top = sorted(word_probs, reverse=True)[:k]
    return float(sum(top) / k)


def evidence_score(word_probs: list[float], min_words: int = 10) -> float:
    """``1 - exp(-E)``, where ``E`` is the paragraph's evidence of spinning: the sum over its words of
    ``-log(1 - p)`` (every confident swap adds, an unsure word adds little), divided by
    ``sqrt(max(words, min_words))``.

    Dividing by the square root sits between a sum (long clean paragraphs pile up small doubts)
    and a mean (one swap in a long paragraph vanishes); ``min_words`` keeps one doubtful word
    from making a short line ("More", a caption) look spun. Measured on validation, with the
    threshold at a 1 % false-positive rate on clean Wikinews paragraphs (0.2.0 detector):
    paragraph recall light / medium / heavy 0.52 / 0.89 / 0.94, against 0.38 / 0.86 / 0.93 for
    the mean of the top 20 % of word probabilities and 0.52 / 0.86 / 0.93 for the top three;
    dividing by words^0.25 or words^0.75 instead of the square root did no better.
    """
    if not word_probs:
        return 0.0
    evidence = -sum(math.log1p(-min(p, 0.999)) for p in word_probs)
    return float(1.0 - math.exp(-evidence / math.sqrt(max(len(word_probs), min_words, 1))))


def merge_spans(text: str, toks, probs: list[float], word_threshold: float) -> list[Span]:
    """Join neighbouring flagged words into spans (score = their highest probability)."""
    spans: list[Span] = []
    cur = None
    for t, p in zip(toks, probs):
        if p >= word_threshold:
            if cur is not None and text[cur[1] : t.start].strip() == "":
                cur = (cur[0], t.end, max(cur[2], p))
            else:
                if cur:
                    spans.append(Span(cur[0], cur[1], cur[2], text[cur[0] : cur[1]]))
                cur = (t.start, t.end, p)
        elif cur is not None:
            spans.append(Span(cur[0], cur[1], cur[2], text[cur[0] : cur[1]]))
            cur = None
    if cur:
        spans.append(Span(cur[0], cur[1], cur[2], text[cur[0] : cur[1]]))
    return spans


# ---- the model ------------------------------------------------------------------------------------
class Detector:
    """A loaded detector: ``Detector.from_dir(path, threshold=...)``, then :meth:`detect`.

    ``precision`` is ``fp32``, ``bf16`` or ``int8`` (:mod:`degarble.models.precision`); ``None``
    reads ``$DEGARBLE_PRECISION``, else ``auto``.
    """

    def __init__(self, model, tokenizer, threshold: float = 0.5, max_length: int = 128, stride: int = 32,
                 word_threshold: float = 0.5, top_k: int = 3, top_share: float = 0.0, score: str = "top",
                 precision: str | None = None, context=None, score_weights: list[float] | None = None):
        import torch

        self.model = model.eval()
        # "int8" quantizes ``model`` in place: the detector owns it from here on
        self.precision = resolve_precision(precision)
        if self.precision == "int8":
            quantize_int8(self.model)
        self.tokenizer = tokenizer
        self.threshold = float(threshold)
        self.max_length = int(max_length)
        self.stride = int(stride)
        self.word_threshold = float(word_threshold)
        self.top_k = int(top_k)
        self.top_share = float(top_share)
        if score not in PARAGRAPH_SCORES:
            raise ValueError(f"unknown paragraph score {score!r}; known: {', '.join(PARAGRAPH_SCORES)}")
        self.score = score
        self.score_weights = list(score_weights) if score_weights else None
        if score == "evidence_max":
            paragraph_score([0.5], method=score, weights=self.score_weights)  # fail early without weights
        self.bf16 = self.precision == "bf16"
        # optional corpus evidence folded into the word probabilities (models/context.py)
        self.context = context
        self._torch = torch

    @classmethod
    def from_dir(cls, path: str | Path, **settings) -> Detector:
        """Load a ``save_pretrained`` folder (offline: ``local_files_only=True``)."""
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from . import quiet_loading

        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        with quiet_loading():
            model = AutoModelForTokenClassification.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
        return cls(model, tok, **settings)

    def paragraph_score(self, word_probs: list[float]) -> float:
        """A paragraph's ``spun_score`` from its word probabilities, with this detector's settings."""
        return paragraph_score(word_probs, self.top_k, self.top_share, self.score, weights=self.score_weights)

    def word_probabilities(self, texts: list[str], batch_size: int = 32) -> list[tuple[list, list[float]]]:
        """For each text: its words (offsets into the *normalised* text) and their probabilities."""
        torch = self._torch
        items = []  # (text index, window)
        per_text = []
        for ti, text in enumerate(texts):
            toks = words(text)
            per_text.append((toks, [0.0] * len(toks), [0] * len(toks)))
            if toks:
                for win in encode_words(self.tokenizer, text, toks, self.max_length, self.stride):
                    items.append((ti, win))
        # longest first, so padding within a batch stays small
        order = sorted(range(len(items)), key=lambda k: -len(items[k][1].input_ids))
        pad = self.tokenizer.pad_token_id or 0
        for b in range(0, len(order), batch_size):
            batch = [items[k] for k in order[b : b + batch_size]]
            width = max(len(w.input_ids) for _, w in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, (_, w) in enumerate(batch):
                ids[r, : len(w.input_ids)] = torch.tensor(w.input_ids)
                mask[r, : len(w.input_ids)] = 1
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                logits = self.model(input_ids=ids, attention_mask=mask).logits  # (B, T, 2)
            probs = torch.softmax(logits.float(), dim=-1)[..., 1].tolist()
            for r, (ti, w) in enumerate(batch):
                _, acc, cnt = per_text[ti]
                for t, wi in enumerate(w.word_index):
                    if wi >= 0:
                        acc[wi] += probs[r][t]
                        cnt[wi] += 1
        out = [(toks, [a / c if c else 0.0 for a, c in zip(acc, cnt)]) for toks, acc, cnt in per_text]
        if self.context is not None:
            out = [(toks, self.context.adjust([compare_key(t.text) for t in toks], probs)) for toks, probs in out]
        return out

    def detect(self, texts: list[str], batch_size: int = 32, threshold: float | None = None) -> list[Detection]:
        """Score each text: ``spun_score`` per text and paragraph, flagged spans with offsets."""
        thr = self.threshold if threshold is None else float(threshold)
        norm = [normalize_with_map(t) for t in texts]
        results = self.word_probabilities([n for n, _ in norm], batch_size=batch_size)
        out = []
        for (text, (ntext, idx)), (toks, probs) in zip(zip(texts, norm), results):
            paras = []
            for a, b in paragraphs(ntext) or [(0, len(ntext))]:
                pp = [p for t, p in zip(toks, probs) if a <= t.start < b]
                paras.append({"start": idx[a], "end": idx[b], "spun_score": self.paragraph_score(pp),
                              "words": len(pp)})
            for p in paras:
                p["is_spun"] = bool(p["spun_score"] >= thr)
            # document score: word-weighted mean of paragraph scores (one odd paragraph in a long
            # clean article does not flag the article; the paragraph list still shows it)
            n = sum(p["words"] for p in paras)
            score = sum(p["spun_score"] * p["words"] for p in paras) / n if n else 0.0
            if len(paras) == 1:
                score = paras[0]["spun_score"]
            spans = [
                Span(idx[s.start], idx[s.end], s.score, text[idx[s.start] : idx[s.end]])
                for s in merge_spans(ntext, toks, probs, self.word_threshold)
            ]
            out.append(Detection(spun_score=float(score), is_spun=bool(score >= thr), spans=spans, paragraphs=paras))
        return out

