"""The restorer: a seq2seq span infiller that writes the original wording of flagged spans.

Design (measured against the alternatives in ``training/README.md``): the encoder reads a piece
of text (whole sentences, up to ``max_words`` words) in which flagged span ``k`` is wrapped in
sentinel ``k`` and a close marker; for each span, the decoder is started with the span's own
words and writes only the replacement::

    encoder: [CLS] ... deputy <s0> overseas </s> minister <s1> instructed </s> state media ... [SEP]
    decoder: [CLS] <s0> overseas </s> | foreign [SEP]          (one row per span; "|": the forced
             [CLS] <s1> instructed </s> | told [SEP]             prompt ends, generation starts)

Only the replacement is generated, never the whole sentence, so the model does not have to learn
to copy (the slow road on a CPU, see ``shared/docs/MEASUREMENTS.md``) and everything outside the
spans stays byte for byte as it was. The decoder sees the spun words in its own prompt, so it
does not have to find them through cross-attention first: two designs that made it do so (one
output sequence for all spans, with a shared separator or with numbered sentinels) had restored
under 1 % of spans after 500 training steps, writing "the" for every span. The encoder pass is
shared by all spans of a piece; the decoder rows are decoded greedily in one batch (prompts of
different lengths, right-padded, which ``generate()`` cannot batch for a decoder with absolute
positions). With candidate ranking (``rank``, on in the shipped bundle) the greedy output competes
with the span itself and the originals the inverted spinner tables give for it, scored by the
model's likelihood (continuing the same prompt cache), their prior and their bigram fit.

The model is a ``transformers`` :class:`~transformers.EncoderDecoderModel`: the encoder is
all-MiniLM-L6-v2 (pretrained), the decoder a 2-layer BERT decoder warm-started from MiniLM's
first layers (cross-attention initialised from self-attention); the decoder's word embeddings and
output layer are tied to the encoder's, which keeps the restorer at 28 M parameters (55 MB in fp16).

MiniLM's vocabulary is uncased, so capitalisation is taken from the span being replaced
(:func:`restore_case`): a restored "General Assembly" is capitalised where "Common Meeting" was.

Everything that training and inference must agree on lives here: segmenting, marking, targets,
decoding the output back into text.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..text import Token, compare_key, sentences, words
from ..types import Detection, Edit, Restoration

# Vocabulary entries of the MiniLM (BERT uncased) vocabulary used as markers. They exist in the
# vocabulary but the tokenizer splits the strings, so ids are inserted directly (never tokenized).
MAX_SPANS = 64  # sentinels per model input; a piece with more spans is split
CLOSE = "[unused1]"
SENTINELS = tuple(f"[unused{k}]" for k in range(2, 2 + MAX_SPANS))


# ---- segmenting --------------------------------------------------------------------------------
def segments(text: str, max_words: int = 60) -> list[tuple[int, int]]:
    """Character spans of pieces of ``text``: consecutive whole sentences, up to ``max_words`` words.

    A sentence longer than ``max_words`` is cut into runs of ``max_words`` words. Pieces never
    cross a paragraph break. Training cuts its examples with the same function.
    """
    out: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    n = 0
    para_of = _paragraph_index(text)
    for a, b in sentences(text):
        toks = words(text[a:b])
        k = len(toks)
        if cur is not None and (n + k > max_words or para_of(a) != para_of(cur[0])):
            out.append(cur)
            cur, n = None, 0
        if k > max_words:
            for i in range(0, k, max_words):
                chunk = toks[i : i + max_words]
                s = a if i == 0 else a + chunk[0].start
                e = b if i + max_words >= k else a + chunk[-1].end
                out.append((s, e))
            continue
        cur = (a, b) if cur is None else (cur[0], b)
        n += k
    if cur is not None:
        out.append(cur)
    return out


def _paragraph_index(text: str):
    breaks = [m.start() for m in re.finditer(r"\n", text)]

    def para_of(pos: int) -> int:
        lo, hi = 0, len(breaks)
        while lo < hi:
            mid = (lo + hi) // 2
            if breaks[mid] < pos:
                lo = mid + 1
            else:
                hi = mid
        return lo

    return para_of


def merge_flagged(text: str, toks: list[Token], flags: list[bool]) -> list[tuple[int, int]]:
    """Runs of flagged words (first and last word index) with only whitespace between them.

    The detector reports spans the same way (:func:`degarble.models.detector.merge_spans`), so
    the restorer is trained on the span shapes it will see: "Common Meeting" is one span.
    """
    runs: list[tuple[int, int]] = []
    for k, f in enumerate(flags):
        if not f:
            continue
        if runs and runs[-1][1] == k - 1 and text[toks[k - 1].end : toks[k].start].strip() == "":
            runs[-1] = (runs[-1][0], k)
        else:
            runs.append((k, k))
    return runs


# ---- encoding ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)  # called per piece and per span: the lookup costs ~0.1 ms each time
def marker_ids(tokenizer) -> tuple[int, tuple[int, ...]]:
    """Vocabulary ids of the close marker and of the sentinels (span 0, 1, ...)."""
    ids = tokenizer.convert_tokens_to_ids([CLOSE, *SENTINELS])
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError(f"tokenizer has no {CLOSE}..{SENTINELS[-1]} entries; the restorer needs a BERT-style vocabulary")
    return ids[0], tuple(ids[1:])


def encode_source(tokenizer, text: str, spans: list[tuple[int, int]]) -> list[int]:
    """Token ids of ``text`` with span ``k`` of ``spans`` wrapped in sentinel ``k`` and the close marker.

    ``spans`` (at most :data:`MAX_SPANS`) are sorted, non-overlapping and word-aligned.
    Returns ``[CLS] ... [SEP]``.
    """
    close, sentinels = marker_ids(tokenizer)
    cuts = [0, *(x for span in spans for x in span), len(text)]
    # one tokenizer call for all parts: before span 0, span 0, between spans 0 and 1, ..., after the last
    parts = _ids_many(tokenizer, [text[a:b] for a, b in zip(cuts, cuts[1:])])
    ids = [tokenizer.cls_token_id]
    for k in range(len(spans)):
        ids += parts[2 * k] + [sentinels[k]] + parts[2 * k + 1] + [close]
    return ids + parts[-1] + [tokenizer.sep_token_id]


def decoder_prompt(tokenizer, k: int, span_text: str) -> list[int]:
    """The decoder's forced start for span ``k``: ``[CLS] <sk> spun words </s>``."""
    return _prompt_ids(tokenizer, k, _ids(tokenizer, span_text))


def _prompt_ids(tokenizer, k: int, span_ids: list[int]) -> list[int]:
    close, sentinels = marker_ids(tokenizer)
    return [tokenizer.cls_token_id, sentinels[k], *span_ids, close]


def decoder_target(tokenizer, replacement: str) -> list[int]:
    """What the decoder writes after the prompt: the replacement, then ``[SEP]`` (end)."""
    return decoder_targets(tokenizer, [replacement])[0]


def decoder_targets(tokenizer, replacements: list[str]) -> list[list[int]]:
    """:func:`decoder_target` of each replacement, in one tokenizer call."""
    return [ids + [tokenizer.sep_token_id] for ids in _ids_many(tokenizer, replacements)]


def _ids(tokenizer, s: str) -> list[int]:
    return _ids_many(tokenizer, [s])[0]


def _ids_many(tokenizer, strings: list[str]) -> list[list[int]]:
    """Token ids of each string (no special tokens; none for a blank one), in one tokenizer call:
    a call costs tens of microseconds whatever its length, and the restorer makes thousands."""
    if not strings:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        # the fast tokenizer's Rust backend directly: the same ids, without the per-string
        # Python dicts (attention masks, type ids) that ``tokenizer(...)`` builds and we drop
        out = [e.ids for e in backend.encode_batch(list(strings), add_special_tokens=False)]
    else:
        out = tokenizer(list(strings), add_special_tokens=False)["input_ids"]
    return [ids if s.strip() else [] for s, ids in zip(strings, out)]


def pad_batch(seqs: list[list[int]], pad: int, torch, width: int | None = None):
    """Right-padded ``(ids, mask)`` tensors of shape (len(seqs), width or the longest)."""
    w = width or max(len(x) for x in seqs)
    ids = torch.full((len(seqs), w), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), w), dtype=torch.long)
    for r, x in enumerate(seqs):
        ids[r, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[r, : len(x)] = 1
    return ids, mask


# ---- decoding ------------------------------------------------------------------------------------
_JOIN_RE = re.compile(r"(?<=\w) ?([-'’/]) ?(?=\w)")
_INITIALS_RE = re.compile(r"\b(\w)\. (?=\w\.)")


def detokenize(tokenizer, ids: list[int]) -> str:
    """WordPiece ids -> text: ``it ' s`` -> ``it's``, ``face - to - face`` -> ``face-to-face``."""
    s = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
    s = _JOIN_RE.sub(r"\1", s)
    return _INITIALS_RE.sub(r"\1.", " ".join(s.split()))


_SMALL = {"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "with"}


def restore_case(before: str, after: str, sentence_initial: bool, curly: bool = False) -> str:
    """Capitalise ``after`` (lower case from the uncased decoder) the way ``before`` is.

    * all capitals (a headline): all capitals;
    * every word capitalised, in a name ("Common Meeting", or one capitalised word inside a
      sentence, "White Home"): every word of ``after`` capitalised, small words excepted;
    * only the first letter capitalised (the start of a sentence): the first letter;
    * the pronoun "I" is always a capital; apostrophes are curly where the text's are (``curly``).
    """
    if not after:
        return after
    letters = [c for c in before if c.isalpha()]
    bwords = [w for w in before.split() if w.lower() not in _SMALL] or before.split()
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return after.upper()
    out = after
    if bwords and all(w[:1].isupper() for w in bwords) and (len(before.split()) > 1 or not sentence_initial):
        parts = out.split(" ")
        out = " ".join(p if (k and p in _SMALL) else p[:1].upper() + p[1:] for k, p in enumerate(parts))
    elif before[:1].isupper():
        out = out[:1].upper() + out[1:]
    if "’" in before or (curly and "'" not in before):
        out = out.replace("'", "’")
    return re.sub(r"\bi\b", "I", out)


def _sentence_initial(text: str, start: int, seg_start: int) -> bool:
    head = text[seg_start:start].rstrip(" \t\"'“‘([")
    return head == "" or head[-1] in ".!?:\n"


# ---- inference -------------------------------------------------------------------------------------
@dataclass
class _Job:
    text_index: int
    seg: tuple[int, int]
    spans: list[tuple[int, int]]  # character spans into the text (word-aligned)


@dataclass
class _Prompted:
    """The decoder rows after their forced prompts: what greedy decoding and candidate scoring
    both continue from (the prompts go through the decoder once)."""

    dec: CachedDecoder  # never stepped further: greedy decoding and scoring step forks of it
    first: object  # (rows, vocabulary) log P(first written token | prompt)
    length: list[int]  # each row's prompt length (its next position)


@dataclass
class RankOption:
    """One option of candidate ranking for a flagged span (:meth:`Restorer.rank_options`)."""

    text: str  # compare key (lower case): restore_case gives it the span's capitalisation
    table_prior: float = 0.0  # P(span | this original) in the spinner tables; 0 when not from them
    keep: bool = False  # the span itself: choosing it leaves the span alone
    generated: bool = False  # the greedy replacement
    fit: float = 0.0  # bigram log probability between the span's neighbours (0 without counts)

    def prior(self, keep_prior: float, generated_prior: float) -> float:
        """The prior the ranking weighs: the tables', at least ``keep_prior`` for the span itself
        and ``generated_prior`` for the greedy output (floored at 1e-6, for the log)."""
        return max(self.table_prior, keep_prior if self.keep else 0.0, generated_prior if self.generated else 0.0, 1e-6)


# what a ``rank`` setting left out means (Restorer(rank=...); training/tune_ranking.py reads them too)
RANK_DEFAULTS = {"candidates": 12, "prior_weight": 0.5, "keep_prior": 0.1, "generated_prior": 0.05,
                 "lm_weight": 0.0, "confidence": "share", "shortlist": None, "frequency_weight": 0.0}


# the features of "learned" confidence, in this order (weights are stored by name)
CONFIDENCE_FEATURES = ("log_likelihood", "likelihood", "log_prior", "fit_gain", "generated", "span_words", "words",
                       "from_tables", "options")


def confidence_features(winner: RankOption, span: RankOption, n_options: int, log_likelihood: float,
                        keep_prior: float, generated_prior: float) -> dict[str, float]:
    """What "learned" confidence judges a span's winning option by: the model's log likelihood
    of it, its prior, how much better it fits between the neighbours than the ``span`` itself,
    whether it is the greedy output, the words of span and winner, and the span's number of
    options. (Not the greedy output's likelihood: greedy decoding stops early below ``min_score``,
    so it is not known where calibration, at ``min_score`` 0, knew it.)"""
    import math

    return {
        "log_likelihood": log_likelihood,
        "likelihood": math.exp(log_likelihood),
        "log_prior": math.log(winner.prior(keep_prior, generated_prior)),
        "fit_gain": winner.fit - span.fit,
        "generated": float(winner.generated),
        "span_words": float(len(span.text.split())),
        "words": float(len(winner.text.split())),
        "from_tables": float(winner.table_prior > 0),
        "options": float(n_options),
    }


def logistic(weights: dict[str, float], features: dict[str, float]) -> float:
    """``sigmoid(bias + sum of weight x feature)``; ``weights`` by feature name, plus ``"bias"``."""
    import math

    z = weights.get("bias", 0.0) + sum(w * features[k] for k, w in weights.items() if k != "bias")
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


class Restorer:
    """A loaded restorer: ``Restorer.from_dir(path, ...)``, then :meth:`restore`.

    :param min_score: an edit whose replacement probability is below this is not made (the
        value shipped in the bundle is calibrated on validation data for edit F0.5).
    :param max_words: words per piece (pieces of whole sentences).
    :param rank: ``None`` (generate each replacement greedily) or the settings of candidate
        ranking, ``{"candidates": K, "prior_weight": L, "keep_prior": Q, "generated_prior": P,
        "lm_weight": M, "confidence": "share" | "likelihood" | "learned", "shortlist": S,
        "frequency_weight": F, "confidence_weights": {...}}``: the originals a spinner could have
        turned the span into (:mod:`degarble.spin.inverse`, best ``K`` by prior, or with ``F`` > 0
        by log prior + ``F`` x the original's unigram log probability), the span itself (a false alarm;
        prior ``Q``) and the greedy replacement (prior ``P``) are scored by the model's
        likelihood plus ``L`` x the log prior plus ``M`` x their bigram log probability between
        the span's neighbours (``context``); see :meth:`_rerank` (``training/tune_ranking.py``
        fits these weights).
    :param context: the detector's corpus evidence (:class:`~degarble.models.context.ContextScorer`),
        whose bigram counts ``lm_weight`` uses; without it ``lm_weight`` is ignored.
    :param precision: ``fp32``, ``bf16`` or ``int8`` (:mod:`degarble.models.precision`); ``None``
        reads ``$DEGARBLE_PRECISION``, else ``auto``. ``int8`` quantizes ``model`` in place.
    """

    def __init__(self, model, tokenizer, *, min_score: float = 0.0, max_words: int = 60, max_length: int = 192,
                 precision: str | None = None, rank: dict | None = None, context=None):
        import torch

        from .precision import quantize_int8, resolve_precision

        self.model = model.eval()
        self.precision = resolve_precision(precision)
        if self.precision == "int8":
            # the encoder and the decoder's layers, in place; the LM head stays fp32, because
            # min_score and the candidate ranking compare its probabilities
            quantize_int8(self.model.encoder)
            quantize_int8(self.model.decoder.bert)
        self.tokenizer = tokenizer
        self.min_score = float(min_score)
        self.max_words = int(max_words)
        self.max_length = int(max_length)
        self.bf16 = self.precision == "bf16"
        self._torch = torch
        self.rank = rank
        self.context = context
        self.alternatives = 0  # runners-up reported per edit (using(alternatives=k)); ranking only
        marker_ids(tokenizer)  # fail early on a vocabulary without the markers

    @property
    def rank(self) -> dict | None:
        """The candidate-ranking settings (``None``: greedy decoding); checked when set, so a
        bundle with a bad setting fails when it loads, not at its first restore."""
        return self._rank

    @rank.setter
    def rank(self, rank: dict | None) -> None:
        rank = dict(rank) if rank else None
        if rank is not None:
            confidence = rank.get("confidence", RANK_DEFAULTS["confidence"])
            if confidence not in ("share", "likelihood", "learned"):
                raise ValueError(f'rank "confidence": expected "share", "likelihood" or "learned", got {confidence!r}')
            if confidence == "learned" and not rank.get("confidence_weights"):
                raise ValueError('rank "confidence": "learned" needs "confidence_weights"')
        self._rank = rank

    def greedy(self, min_score: float | None = None) -> Restorer:
        """This restorer without candidate ranking (each replacement generated greedily), at
        ``min_score`` (default: this one's). It shares the weights; greedy decoding is the
        first stage of ranking, so it restores about 1.5x faster, at lower edit recall."""
        other = copy.copy(self)
        other.rank = None
        if min_score is not None:
            other.min_score = float(min_score)
        return other

    def using(self, alternatives: int | None = None, min_score: float | None = None) -> Restorer:
        """This restorer with other settings for a call; it shares the weights.

        ``alternatives``: also report up to that many alternatives per edit, the ranking's
        next-best options for the same span (:attr:`degarble.types.Edit.alternatives`), for an
        editor to pick from. The chosen edits stay the same; finding the runners-up scores a few
        more options per span. Needs candidate ranking (a greedy restorer has no options).
        ``min_score``: the confidence an edit needs (default: the calibrated one); lower gives more
        edits, more of them wrong, for a reviewer who accepts or rejects each.
        """
        other = copy.copy(self)
        if alternatives is not None:
            if alternatives < 0:
                raise ValueError(f"alternatives must be >= 0, got {alternatives}")
            if alternatives and not self.rank:
                raise ValueError("alternatives need candidate ranking; this restorer decodes greedily")
            other.alternatives = int(alternatives)
        if min_score is not None:
            if not 0.0 <= min_score <= 1.0:
                raise ValueError(f"min_score must be in [0, 1], got {min_score}")
            other.min_score = float(min_score)
        return other

    @classmethod
    def from_dir(cls, path: str | Path, **settings) -> Restorer:
        """Load a ``save_pretrained`` folder (offline)."""
        import torch
        from transformers import AutoTokenizer

        from . import quiet_loading

        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        with quiet_loading():
            model = span_infiller_class().from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
        return cls(model, tok, **settings)

    # -- the seq2seq step ---------------------------------------------------------------------
    def infill(self, items: list[tuple[str, list[tuple[int, int]]]],
               batch_size: int = 32) -> list[list[tuple[str | None, float, list]]]:
        """For each ``(text, spans)``, per span: the replacement, its probability and the
        alternatives (:meth:`using`; ``[]`` unless asked for, and without ranking).

        ``spans`` are character spans of ``text`` to rewrite. A piece whose encoding would exceed
        ``max_length`` tokens is split by span groups, never truncated. A span whose replacement
        does not end within the length budget, or whose probability falls below ``min_score``
        while it is written, gets ``(None, 0.0, [])`` (left alone).
        """
        torch = self._torch
        encoded = []  # (item, first span, encoder ids, span texts)
        for k, (text, spans) in enumerate(items):
            encoded += self._encode_within_limit(k, text, spans)
        near = [_neighbours(text, spans) for text, spans in items] if self.rank else None
        parts: dict[tuple[int, int], list[tuple[str | None, float, list]]] = {}
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][2]))
        for b in range(0, len(order), batch_size):
            batch = [encoded[i] for i in order[b : b + batch_size]]
            ids, mask = pad_batch([e[2] for e in batch], self.tokenizer.pad_token_id, torch)
            rows = [r for r, e in enumerate(batch) for _ in e[3]]
            span_ids = iter(_ids_many(self.tokenizer, [t for e in batch for t in e[3]]))
            prompts = [_prompt_ids(self.tokenizer, j, next(span_ids)) for e in batch for j in range(len(e[3]))]
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                hidden = self.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                with SharedCrossAttention(self.model, hidden) as cross:
                    around = [x for e in batch for x in near[e[0]][e[1] : e[1] + len(e[3])]] if self.rank else None
                    outs = self._decode_rows(cross, mask, rows, prompts, [t for e in batch for t in e[3]], around)
            pos = 0
            for e in batch:
                parts[(e[0], e[1])] = outs[pos : pos + len(e[3])]
                pos += len(e[3])
        results: list[list[tuple[str | None, float, list]]] = [[] for _ in items]
        for (k, _first), segs in sorted(parts.items()):
            results[k].extend(segs)
        return results

    def _decode_rows(self, cross: SharedCrossAttention, mask, rows: list[int], prompts: list[list[int]],
                     span_texts: list[str] | None = None, around=None) -> list[tuple[str | None, float, list]]:
        """(replacement, probability, alternatives) for every decoder row: greedy decoding, then, with ``rank``,
        the choice among candidates (:meth:`_rerank`; needs ``span_texts`` and ``around``).

        ``cross`` holds the encoder states of the batch's pieces; row ``r`` reads piece ``rows[r]``.
        """
        import math

        if not prompts:
            return []
        start = self._prompt(cross, mask, rows, prompts)
        greedy = self._greedy(start)
        if self.rank:
            return self._rerank(start, span_texts, greedy, around)
        return [(None, 0.0, []) if ids is None else (detokenize(self.tokenizer, ids), math.exp(lp), [])
                for ids, lp in greedy]

    def _prompt(self, cross: SharedCrossAttention, mask, rows: list[int], prompts: list[list[int]]) -> _Prompted:
        """Every row's forced prompt through the decoder (right-padded, the padding masked out):
        the cache that greedy decoding and candidate scoring both continue from.

        Rows go through in a few groups of similar prompt length (:func:`length_groups`), not
        padded to the batch's longest prompt: most spans are a word or two, and padding them all
        to the longest made nearly half of the step's tokens padding.
        """
        torch = self._torch
        length = [len(p) for p in prompts]
        decs, firsts, order = [], [], []
        for group in length_groups(length):
            ids, pmask = pad_batch([prompts[i] for i in group], self.tokenizer.pad_token_id, torch)
            dec = CachedDecoder(cross, torch.tensor([rows[i] for i in group]), mask)
            states = dec.step(ids, torch.arange(ids.shape[1]).expand_as(ids), pmask.bool())
            firsts.append(self._log_probs(states[torch.arange(len(group)), torch.tensor([length[i] for i in group]) - 1]))
            decs.append(dec)
            order += group
        back = torch.argsort(torch.tensor(order))  # the groups' rows back in the caller's order
        dec = CachedDecoder.concat(decs)
        dec.select(back)
        return _Prompted(dec, torch.cat(firsts)[back], length)

    def _greedy(self, start: _Prompted) -> list[tuple[list[int] | None, float]]:
        """Greedy decoding of every row after its prompt: (token ids, log probability) per row.

        Each step feeds only the newest token of each row (:class:`CachedDecoder` keeps the
        earlier tokens' keys and values), so a step costs one token per row instead of the whole
        prefix. A row stops as soon as its probability falls below ``min_score``: it only falls
        further, and below ``min_score`` no edit is made anyway; such a row, and one with no end
        within its length budget, gets ``(None, log probability so far)`` (left alone).
        """
        import math

        torch = self._torch
        floor = math.log(self.min_score) if self.min_score > 0 else -math.inf
        sep = self.tokenizer.sep_token_id
        n = len(start.length)
        budget = [min(24, 4 + 3 * (k - 3)) for k in start.length]  # "year" -> "12 months" grows
        written: list[list[int] | None] = [[] for _ in range(n)]
        logp = [0.0] * n
        dec = start.dec.fork()
        length = list(start.length)
        lp = start.first
        active = list(range(n))
        while active:
            best = lp.argmax(dim=-1).tolist()
            keep, nxt = [], []  # positions in ``active`` that go on, and their next input tokens
            for r, i in enumerate(active):
                t = best[r]
                logp[i] += float(lp[r, t])
                if t == sep:
                    continue
                written[i].append(t)
                if len(written[i]) < budget[i] and logp[i] >= floor:
                    keep.append(r)
                    nxt.append(t)
                else:
                    written[i] = None  # no end within the budget, or too unlikely: leave the span alone
            if not keep:
                break
            if len(keep) < len(active):
                dec.select(torch.tensor(keep))
            active = [active[r] for r in keep]
            pos = torch.tensor([[length[i]] for i in active])
            for i in active:
                length[i] += 1
            last = dec.step(torch.tensor(nxt).unsqueeze(1), pos, torch.ones(len(active), 1, dtype=torch.bool))[:, 0]
            lp = self._log_probs(last)
        return list(zip(written, logp))

    def _log_probs(self, states):
        """log P(next token) (float32) from decoder states: the model's LM head.

        Under bf16 autocast the 30 k x 384 output matrix would be cast to bf16 on every call (a
        copy of 23 MB per decoding step); the cast is kept instead, and made again only when the
        weight changes.
        """
        torch = self._torch
        head = self.model.decoder.cls.predictions
        if not (self.bf16 and torch.is_autocast_enabled("cpu")):
            return torch.log_softmax(head(states).float(), dim=-1)
        w = head.decoder.weight
        key = (w.data_ptr(), w._version)
        if getattr(self, "_head_key", None) != key:
            self._head_bf16, self._head_key = w.detach().to(torch.bfloat16), key
        x = head.transform(states).to(torch.bfloat16)
        logits = torch.nn.functional.linear(x, self._head_bf16, head.bias.to(torch.bfloat16))
        return torch.log_softmax(logits.float(), dim=-1)

    def _rank_setting(self, name: str):
        """A candidate-ranking setting: the bundle's, else :data:`RANK_DEFAULTS`."""
        return self.rank.get(name, RANK_DEFAULTS[name])

    def rank_options(self, span_texts: list[str], greedy, around) -> list[list[RankOption]]:
        """Each span's options for candidate ranking, with what :meth:`_rerank` weighs them by.

        The span itself first (kept: the flag was a false alarm), then the originals the spinner
        tables map to its wording (best ``"candidates"`` by prior P(span | original), with
        ``"frequency_weight"`` times the original's unigram log probability added), and the
        greedy replacement (``greedy``: (token ids or ``None``, log probability) per span); one
        option per distinct compare key. ``around``: the compare keys of the words just before
        and after each span, for the bigram fit (where the restorer has corpus counts).
        """
        from ..spin.inverse import load_inverse

        # the detector's copy of the inverted tables, read lazily, where the bundle has one
        inverse = self.context.spinner_inverse() if self.context is not None else load_inverse()
        k_max = int(self._rank_setting("candidates"))
        freq = float(self._rank_setting("frequency_weight"))
        weight = None
        if freq and self.context is not None:
            def weight(original: str) -> float:
                return freq * self.context.unigram_logprob(original)
        out = []
        for span, (ids, _) in zip(span_texts, greedy):
            opts = {compare_key(span): RankOption(compare_key(span), keep=True)}
            for cand, prior in inverse.candidates(span, limit=k_max, weight=weight):
                o = opts.setdefault(cand, RankOption(cand))
                o.table_prior = max(o.table_prior, prior)
            if ids is not None:
                g = compare_key(detokenize(self.tokenizer, ids))
                opts.setdefault(g, RankOption(g)).generated = True
            out.append(list(opts.values()))
        if self.context is not None:
            # every span's options in one call: the bigram lookups are vectorised over all of them
            slots = [(prev, [o.text.split() for o in opts], nxt) for opts, (prev, nxt) in zip(out, around)]
            for opts, fits in zip(out, self.context.chain_logprobs(slots)):
                for o, f in zip(opts, fits):
                    o.fit = float(f)
        return out

    def _rerank(self, start: _Prompted, span_texts, greedy, around) -> list[tuple[str | None, float, list]]:
        """Choose each span's replacement among candidates, by likelihood and prior: per span,
        ``(replacement, probability, alternatives)``, the last the ``self.alternatives`` best
        other options that change the span, as ``(replacement, probability)``, best first.

        The options (:meth:`rank_options`): the span itself, the spinner tables' originals for
        it and the greedy replacement. Each is scored ``log P_model(option) + prior_weight x
        log prior + lm_weight x fit``; the prior is the tables' P(span | option), or at least
        ``keep_prior`` for the span itself and ``generated_prior`` for the greedy output; the fit
        is the option's bigram log probability between the span's neighbours. The probability
        reported (what ``min_score`` is compared with) is, with ``"confidence": "share"`` (the
        default), the winner's share of the softmax over the options' scores; with
        ``"likelihood"``, the model's own probability of the winner, as greedy decoding reports
        it; with ``"learned"``, a logistic model of "this edit is right" over the winner's
        features (:func:`confidence_features`, weights ``"confidence_weights"``, fitted by
        ``training/tune_ranking.py``); an alternative's probability is computed the same way, as if
        it had won. With ``"shortlist": S`` the model scores only the span,
        the greedy output and the ``S`` other options with the best prior and fit. The model's
        likelihoods continue the greedy pass's prompt cache (:meth:`_continuations`), and the
        greedy output's is already known.
        """
        import math

        weight = float(self._rank_setting("prior_weight"))
        gen_prior = float(self._rank_setting("generated_prior"))
        keep_prior = float(self._rank_setting("keep_prior"))
        lm_weight = float(self._rank_setting("lm_weight")) if self.context is not None else 0.0
        confidence = self._rank_setting("confidence")  # checked when ``rank`` was set
        learned = self.rank.get("confidence_weights") if confidence == "learned" else None
        shortlist = self._rank_setting("shortlist")
        options: list[list[tuple[RankOption, float]]] = []  # per span: (option, score before the model)
        counts = []  # per span: its number of options, before the shortlist
        for opts in self.rank_options(span_texts, greedy, around):
            counts.append(len(opts))
            scored = [(o, weight * math.log(o.prior(keep_prior, gen_prior)) + lm_weight * o.fit) for o in opts]
            if shortlist is not None:
                # the model (the costly part) scores only the span itself, the greedy output and
                # the ``shortlist`` best of the rest by prior and corpus fit
                rest = sorted((x for x in scored[1:] if not x[0].generated), key=lambda x: -x[1])[: int(shortlist)]
                scored = [scored[0], *(x for x in scored[1:] if x[0].generated), *rest]
            options.append(scored)
        # the winner, and with ``alternatives`` the runners-up: the span itself may be among the
        # best, so two more than asked are scored exactly
        top = 1 + (self.alternatives + 1 if self.alternatives else 0)
        logp = self._option_logps(start, greedy, [[(o.text, pre) for o, pre in s] for s in options],
                                  exhaustive=confidence == "share", top=top)

        def conf(k: int, opts, model: list, scores: list[float], n_options: int) -> float:
            """The probability reported for option ``k`` of a span (what ``min_score`` is compared with)."""
            if confidence == "share":
                z = max(scores)
                return math.exp(scores[k] - z) / sum(math.exp(x - z) for x in scores)
            if confidence == "likelihood":
                return math.exp(model[k])
            return logistic(learned, confidence_features(opts[k][0], opts[0][0], n_options, model[k],
                                                         keep_prior, gen_prior))

        out, pos = [], 0
        for opts, n_options in zip(options, counts):
            model = logp[pos : pos + len(opts)]
            pos += len(opts)
            scores = [-math.inf if lp is None else lp + pre for lp, (_, pre) in zip(model, opts)]
            ranked = sorted(range(len(opts)), key=lambda k: -scores[k])[:top]
            # runners-up that change the span (option 0 is the span itself), best first
            alts = [(opts[k][0].text, conf(k, opts, model, scores, n_options))
                    for k in ranked[1:] if k and scores[k] > -math.inf][: self.alternatives]
            out.append((opts[ranked[0]][0].text, conf(ranked[0], opts, model, scores, n_options), alts))
        return out

    def _option_logps(self, start: _Prompted, greedy, options, exhaustive: bool, top: int = 1) -> list[float | None]:
        """The model's log likelihood of every option of :meth:`_rerank` (flattened), or ``None``
        for an option that cannot win (be among its span's ``top`` best), when not ``exhaustive``.

        The greedy output's likelihood is already known (where its words tokenize back the same).
        An option's likelihood is at most that of its first token, which the prompt pass gave for
        free, so an option whose first-token probability plus its prior score is below a score
        already reached for its span cannot win and is not scored. Best first, in rounds: each round
        scores, for every span, its option of best bound among those that can still win (branch and
        bound: the ``top`` best options and their scores are exactly those of scoring everything).
        """
        import math

        torch = self._torch
        sep = self.tokenizer.sep_token_id
        targets = iter(decoder_targets(self.tokenizer, [c for opts in options for c, _ in opts]))
        flat = [(i, next(targets), pre) for i, opts in enumerate(options) for _, pre in opts]
        known = {(i, tuple(ids) + (sep,)): lp for i, (ids, lp) in enumerate(greedy) if ids is not None}
        logp = [known.get((i, tuple(t))) for i, t, _ in flat]

        def score(todo: list[int]) -> None:
            for k, lp in zip(todo, self._continuations(start, [flat[k][0] for k in todo], [flat[k][1] for k in todo])):
                logp[k] = lp

        if exhaustive:
            score([k for k, lp in enumerate(logp) if lp is None])
            return logp
        first = start.first[torch.tensor([i for i, _, _ in flat]), torch.tensor([t[0] for _, t, _ in flat])]
        bound = [lp + pre for lp, (_, _, pre) in zip(first.tolist(), flat)]
        while True:
            scored: dict[int, list[float]] = {}  # per span: the scores of its options scored so far
            for k, (i, _, pre) in enumerate(flat):
                if logp[k] is not None:
                    scored.setdefault(i, []).append(logp[k] + pre)
            # per span: the score an option must reach to be among the ``top`` best
            reached = {i: sorted(xs, reverse=True)[top - 1] for i, xs in scored.items() if len(xs) >= top}
            todo: dict[int, int] = {}  # per span: its unscored option of best bound that can still win
            for k, (i, _, _) in enumerate(flat):
                if logp[k] is None and bound[k] >= reached.get(i, -math.inf) and (i not in todo or bound[k] > bound[todo[i]]):
                    todo[i] = k
            if not todo:
                return logp
            score(list(todo.values()))

    def _continuations(self, start: _Prompted, rows: list[int], targets: list[list[int]],
                       chunk: int = 1024) -> list[float]:
        """log P(``targets[i]`` | the prompt of row ``rows[i]``), teacher-forced from ``start``.

        The first token's probability is read from ``start.first``; the rest come from cached
        decoder steps that feed each target but its last token after its prompt's cache: the
        prompt is not decoded again. Targets go in a few groups of similar length
        (:func:`length_groups`), right-padded within a group, the padding masked out.
        """
        torch = self._torch
        if not rows:
            return []
        out = start.first[torch.tensor(rows), torch.tensor([t[0] for t in targets])].tolist()
        longer = [k for k, t in enumerate(targets) if len(t) > 1]
        for group in length_groups([len(targets[k]) - 1 for k in longer]):
            group = [longer[g] for g in group]
            for c in range(0, len(group), chunk):
                part = group[c : c + chunk]
                fed = [targets[k][:-1] for k in part]
                ids, real = pad_batch(fed, self.tokenizer.pad_token_id, torch)
                real = real.bool()
                dec = start.dec.fork(torch.tensor([rows[k] for k in part]))
                pos = torch.tensor([start.length[rows[k]] for k in part]).unsqueeze(1) + torch.arange(ids.shape[1])
                states = dec.step(ids, pos, real)
                # the LM head (most of the decoder's cost) only on the states that predict a target
                # token; ``states[real]`` lists them row by row, as ``nxt`` does
                lp = self._log_probs(states[real])
                nxt = torch.tensor([x for k in part for x in targets[k][1:]]).unsqueeze(1)
                owner = torch.repeat_interleave(torch.arange(len(part)), torch.tensor([len(f) for f in fed]))
                picked = torch.zeros(len(part)).index_add_(0, owner, lp.gather(-1, nxt).squeeze(1)).tolist()
                for k, x in zip(part, picked):
                    out[k] += x
        return out

    def _encode_within_limit(self, k, text, spans, first=0):
        span_texts = [text[a:b] for a, b in spans]
        ids = encode_source(self.tokenizer, text, spans[:MAX_SPANS])
        if (len(ids) <= self.max_length and len(spans) <= MAX_SPANS) or len(spans) <= 1:
            if len(ids) > self.max_length:
                # one span in a piece too long: keep a window of words around it
                a, b = spans[0]
                toks = words(text)
                left = [t for t in toks if t.end <= a][-40:]
                right = [t for t in toks if t.start >= b][:40]
                lo = left[0].start if left else a
                hi = right[-1].end if right else b
                ids = encode_source(self.tokenizer, text[lo:hi], [(a - lo, b - lo)])
            return [(k, first, ids, span_texts)]
        h = len(spans) // 2
        return self._encode_within_limit(k, text, spans[:h], first) + self._encode_within_limit(
            k, text, spans[h:], first + h
        )

    # -- the whole pass -------------------------------------------------------------------------
    def restore(self, texts: list[str], detections: list[Detection], batch_size: int = 32) -> list[Restoration]:
        """Rewrite the spans the detector flagged (in paragraphs it judged spun) in each text."""
        jobs: list[_Job] = []
        for ti, (text, det) in enumerate(zip(texts, detections)):
            jobs += self._jobs(ti, text, det)
        outs = self.infill([(texts[j.text_index][j.seg[0] : j.seg[1]],
                             [(a - j.seg[0], b - j.seg[0]) for a, b in j.spans]) for j in jobs], batch_size)
        edits: list[list[Edit]] = [[] for _ in texts]
        for job, reps in zip(jobs, outs):
            text = texts[job.text_index]
            for (a, b), (rep, score, alts) in zip(job.spans, reps):
                e = self._edit(text, a, b, rep, score, job.seg[0], alts)
                if e is not None:
                    edits[job.text_index].append(e)
        from ..edits import apply_edits

        return [Restoration(apply_edits(t, es), sorted(es, key=lambda e: e.start)) for t, es in zip(texts, edits)]

    def _jobs(self, ti: int, text: str, det: Detection) -> list[_Job]:
        spun_paras = [(p["start"], p["end"]) for p in det.paragraphs if p.get("is_spun")]
        if not det.spans or not spun_paras:
            return []
        toks = words(text)
        flags = [False] * len(toks)
        k = 0
        for s in sorted(det.spans, key=lambda s: s.start):
            if not any(a <= s.start < b for a, b in spun_paras):
                continue
            while k < len(toks) and toks[k].end <= s.start:
                k += 1
            j = k
            while j < len(toks) and toks[j].start < s.end:
                flags[j] = True
                j += 1
        jobs = []
        for a, b in segments(text, self.max_words):
            idx = [i for i, t in enumerate(toks) if a <= t.start < b]
            if not idx or not any(flags[i] for i in idx):
                continue
            sub = [toks[i] for i in idx]
            runs = merge_flagged(text, sub, [flags[i] for i in idx])
            jobs.append(_Job(ti, (a, b), [(sub[i].start, sub[j].end) for i, j in runs]))
        return jobs

    def _edit(self, text: str, a: int, b: int, rep: str | None, score: float, seg_start: int,
              alternatives: list[tuple[str, float]] = ()) -> Edit | None:
        """The edit that puts ``rep`` in place of ``text[a:b]``, or ``None`` (no replacement, the
        span kept, or ``score`` below ``min_score``), with ``alternatives`` as edits of their own."""
        before = text[a:b]
        if rep is None or score < self.min_score:
            return None
        if compare_key(rep) == compare_key(before):
            return None  # the model kept the span: the detector's flag was a false alarm
        main = self._change(text, a, b, rep, score, seg_start)
        alts = [self._change(text, a, b, r, s, seg_start) for r, s in alternatives if compare_key(r) != compare_key(before)]
        return dataclasses.replace(main, alternatives=tuple(x for x in alts if (x.start, x.end, x.after) !=
                                                            (main.start, main.end, main.after)))

    def _change(self, text: str, a: int, b: int, rep: str, score: float, seg_start: int) -> Edit:
        """``rep`` in place of ``text[a:b]``: its capitalisation and quotes follow the text, and
        words it shares with the span at either end are left out of the edit."""
        before = text[a:b]
        curly = text.count("’") > text.count("'")
        after = restore_case(before, rep, _sentence_initial(text, a, seg_start), curly) if rep else ""
        s, e, after = trim_common_words(before, after)
        a, b = a + s, a + e
        if after == "":
            # a deleted filler takes one neighbouring space with it
            if b < len(text) and text[b] == " ":
                b += 1
            elif a > 0 and text[a - 1] == " ":
                a -= 1
        return Edit(a, b, text[a:b], after, score)


def length_groups(lengths: list[int], overhead: int = 128) -> list[list[int]]:
    """Indices of ``lengths`` (sorted by length) split into consecutive groups that minimise the
    padded size ``sum(len(group) x longest in group)`` plus ``overhead`` per group (a decoder
    call's fixed cost, in tokens' worth: measured at about a hundred on this CPU). Exact, by
    dynamic programming over the distinct lengths."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    if not order:
        return []
    distinct = sorted(set(lengths))
    ordered = sorted(lengths)
    upto = [bisect.bisect_right(ordered, d) for d in distinct]  # rows with a length up to distinct[j]
    best = [0.0] + [math.inf] * len(distinct)  # best[j]: cost of the rows with the j shortest lengths
    cut = [0] * (len(distinct) + 1)
    for j in range(1, len(distinct) + 1):
        for i in range(j):  # a group holding lengths distinct[i:j]
            c = best[i] + (upto[j - 1] - (upto[i - 1] if i else 0)) * distinct[j - 1] + overhead
            if c < best[j]:
                best[j], cut[j] = c, i
    bounds, j = [], len(distinct)
    while j:
        bounds.append((upto[cut[j] - 1] if cut[j] else 0, upto[j - 1]))
        j = cut[j]
    return [order[a:b] for a, b in reversed(bounds)]


def _neighbours(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, str]]:
    """For each span, the compare keys of the words just before and after it (sentence marks of
    :func:`~degarble.models.context.sequence_keys` at the edges of ``text``)."""
    from .context import BOS, EOS

    toks = words(text)
    out = []
    for a, b in spans:
        before = [t for t in toks if t.end <= a]
        after = [t for t in toks if t.start >= b]
        out.append((compare_key(before[-1].text) if before else BOS, compare_key(after[0].text) if after else EOS))
    return out


def trim_common_words(before: str, after: str) -> tuple[int, int, str]:
    """The part of a replacement that changes: ``(start, end, after)``, offsets into ``before``.

    Words that ``before`` and ``after`` share at either end are left out of the edit: where the
    detector flagged a kept word beside a swapped one ("the Common Meeting" -> "the General
    Assembly"), the editor sees, and accepts or rejects, only "Common Meeting" -> "General
    Assembly", which is also the edit a scorer matches exactly. At least one word of ``before``
    stays in the edit; ``after`` may become empty (a deletion: "really important" -> "important").
    """
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", before)]
    if not spans:
        return 0, len(before), after
    bw = [compare_key(before[x:y]) for x, y in spans]
    aw = after.split()
    i = 0
    while i < len(bw) - 1 and i < len(aw) and bw[i] == compare_key(aw[i]):
        i += 1
    j = 0
    while j < len(bw) - 1 - i and j < len(aw) - i and bw[-1 - j] == compare_key(aw[-1 - j]):
        j += 1
    if i == j == 0:
        return 0, len(before), after
    return spans[i][0], spans[len(bw) - 1 - j][1], " ".join(aw[i : len(aw) - j])


class SharedCrossAttention:
    """Cross-attention keys and values computed once per piece, shared by all of its decoder rows.

    A piece has one decoder row per span (and, when ranking, one per candidate), and every row
    attends to the same encoder states. Projecting those states to keys and values is most of a
    small decoder's work, so it is done once per piece here: while the context is open, each
    decoder layer's cross-attention ``key``/``value`` layer is replaced by a stand-in that returns
    the precomputed projections of the rows being decoded (:meth:`decode`), and restored on exit.
    """

    def __init__(self, model, hidden):
        self.model = model
        self.hidden = hidden
        self.saved: list[tuple[object, str, object]] = []

    def __enter__(self):
        Projected = _projected_class()
        self.standins = []
        for layer in self.model.decoder.bert.encoder.layer:
            att = layer.crossattention.self
            for name in ("key", "value"):
                lin = getattr(att, name)
                self.saved.append((att, name, lin))
                standin = Projected(lin(self.hidden))
                self.standins.append(standin)
                setattr(att, name, standin)
        return self

    def decode(self, rows, mask, dec_ids):
        """Decoder hidden states (R, T, H) of ``dec_ids``; row ``r`` reads piece ``rows[r]``."""
        for standin in self.standins:
            standin.index = rows
        b, s, h = self.hidden.shape
        # the stand-ins ignore the states passed in: a zero-stride view gives them their shape
        states = self.hidden[:1].expand(len(rows), s, h)
        return self.model.decoder.bert(input_ids=dec_ids, encoder_hidden_states=states,
                                       encoder_attention_mask=mask[rows]).last_hidden_state

    def __exit__(self, *exc):
        for att, name, lin in reversed(self.saved):
            setattr(att, name, lin)
        self.saved.clear()
        return False


class CachedDecoder:
    """The decoder run a few tokens at a time, keeping each row's self-attention keys and values.

    Greedy decoding adds one token per row per step; recomputing every row's whole prefix (the
    plain forward pass) costs prefix-length times more. ``transformers``' own cache assumes one
    position per step for the whole batch, but our rows have prompts of different lengths, so
    each row carries its own positions and a mask of which cached slots are real. The layer
    arithmetic is BERT's (post-LayerNorm); its sub-modules' weights are used as they are, and a
    test checks the states against the model's forward pass.

    Cross-attention reads the keys and values that ``cross`` (:class:`SharedCrossAttention`)
    projected once per piece; row ``r`` reads piece ``rows[r]`` (see :meth:`_cross`).
    """

    def __init__(self, cross: SharedCrossAttention, rows, mask):
        import torch.nn.functional as F

        self._sdpa = F.scaled_dot_product_attention
        self.bert = cross.model.decoder.bert
        cfg = self.bert.config
        self.heads, self.head_dim = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
        tables = [s.table for s in cross.standins]  # per layer: key, value (pieces, S, H)
        self.cross_kv = [(self._split(tables[2 * k]), self._split(tables[2 * k + 1]))
                         for k in range(len(self.bert.encoder.layer))]
        self.cross_mask = mask.bool()[:, None, None, :]
        self.rows = rows
        self.self_kv: list[tuple[object, object] | None] = [None] * len(self.bert.encoder.layer)
        self.valid = None  # (R, slots): which cached slots hold real tokens

    def _split(self, x):  # (R, T, H) -> (R, heads, T, head_dim)
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def _merge(self, x):  # (R, heads, T, head_dim) -> (R, T, H)
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)

    @staticmethod
    def concat(parts: list[CachedDecoder]) -> CachedDecoder:
        """One decoder with the rows of ``parts`` (stepped on the same pieces), in that order.

        Caches of fewer slots are padded at the end with slots marked not real, as right-padding
        a short prompt does, so later steps line up.
        """
        import torch
        import torch.nn.functional as F

        if len(parts) == 1:
            return parts[0]
        width = max(p.valid.shape[1] for p in parts)

        def cat(tensors, dim_from_end: int, value=0.0):
            # pad each to ``width`` slots (the dimension ``dim_from_end`` from the last), then stack rows
            return torch.cat([F.pad(x, (0, 0) * dim_from_end + (0, width - x.shape[-1 - dim_from_end]), value=value)
                              for x in tensors])

        out = copy.copy(parts[0])
        out.rows = torch.cat([p.rows for p in parts])
        out.valid = cat([p.valid for p in parts], 0, value=False)
        out.self_kv = [(cat([p.self_kv[k][0] for p in parts], 1), cat([p.self_kv[k][1] for p in parts], 1))
                       for k in range(len(parts[0].self_kv))]
        return out

    def select(self, keep) -> None:
        """Keep only the rows ``keep`` (indices into the current rows), in that order."""
        self.rows = self.rows[keep]
        self.self_kv = [(k[keep], v[keep]) for k, v in self.self_kv]
        self.valid = self.valid[keep]

    def fork(self, keep=None) -> CachedDecoder:
        """A copy to step on independently, of all rows or of rows ``keep`` (repeats allowed).

        Stepping never changes a cached tensor in place (it concatenates), so the copy shares
        the tensors until it selects or steps.
        """
        other = copy.copy(self)
        other.self_kv = list(self.self_kv)
        if keep is not None:
            other.select(keep)
        return other

    def _cross(self, k: int, q):
        """Cross-attention of queries ``q`` (R, heads, T, d) of layer ``k``, grouped by piece.

        The rows of one piece share its keys and values, so their queries are stacked into one
        sequence per piece instead of copying the keys and values to every row (rows x length x
        width, most of the cost of a step otherwise).
        """
        import torch

        pieces, piece = torch.unique(self.rows, return_inverse=True)
        order = torch.argsort(piece, stable=True)
        counts = torch.bincount(piece, minlength=len(pieces))
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(piece)
        slot[order] = torch.arange(len(piece)) - starts[piece[order]]
        r, h, t, d = q.shape
        m = int(counts.max())
        grouped = q.new_zeros(len(pieces), m, h, t, d)
        grouped[piece, slot] = q
        grouped = grouped.transpose(1, 2).reshape(len(pieces), h, m * t, d)
        key, val = self.cross_kv[k]
        out = self._sdpa(grouped, key[pieces], val[pieces], attn_mask=self.cross_mask[pieces])
        return out.view(len(pieces), h, m, t, d).transpose(1, 2)[piece, slot]

    def step(self, ids, positions, real):
        """Decoder states (R, T, H) of the next ``T`` tokens of every row.

        ``ids``, ``positions`` (each row's own position ids) and ``real`` (False for padding)
        are (R, T); each new token attends to the real cached slots and to the new ones up to itself.
        """
        import torch

        old = 0 if self.valid is None else self.valid.shape[1]
        t = ids.shape[1]
        self.valid = real if self.valid is None else torch.cat([self.valid, real], dim=1)
        causal = torch.ones(t, old + t, dtype=torch.bool).tril(old)
        self_mask = self.valid[:, None, None, :] & causal  # (R, 1, T, slots)
        h = self.bert.embeddings(input_ids=ids, position_ids=positions)
        for k, layer in enumerate(self.bert.encoder.layer):
            att = layer.attention.self
            q, key, val = (self._split(lin(h)) for lin in (att.query, att.key, att.value))
            if self.self_kv[k] is not None:
                key = torch.cat([self.self_kv[k][0], key], dim=2)
                val = torch.cat([self.self_kv[k][1], val], dim=2)
            self.self_kv[k] = (key, val)
            a = layer.attention.output(self._merge(self._sdpa(q, key, val, attn_mask=self_mask)), h)
            c = layer.crossattention.output(self._merge(self._cross(k, self._split(layer.crossattention.self.query(a)))), a)
            h = layer.output(layer.intermediate(c), c)
        return h


@functools.lru_cache(maxsize=1)
def _projected_class():
    """:class:`SharedCrossAttention`'s stand-in layer class (made once: a class made per batch
    would be a reference cycle left for the garbage collector each time)."""
    import torch

    class Projected(torch.nn.Module):
        """Returns rows ``index`` of a precomputed projection, whatever its input."""

        def __init__(self, table):
            super().__init__()
            self.table, self.index = table, None

        def forward(self, _x):
            return self.table[self.index]

    return Projected


@functools.lru_cache(maxsize=1)
def span_infiller_class():
    """The model class (built on first use, so importing this module does not import transformers)."""
    from transformers import EncoderDecoderModel

    class SpanInfiller(EncoderDecoderModel):
        """An ``EncoderDecoderModel`` whose decoder shares the encoder's word embeddings.

        The decoder's output layer is tied to its input embeddings (BERT's default), and those
        to the encoder's: one 30 k x 384 matrix instead of three.
        """

        _tied_weights_keys = {
            "decoder.bert.embeddings.word_embeddings.weight": "encoder.embeddings.word_embeddings.weight"
        }

    return SpanInfiller


def build_span_infiller(base_path: str | Path, decoder_layers: int = 2):
    """A new restorer from a pretrained BERT-style encoder folder (MiniLM): encoder + small decoder.

    The decoder copies the encoder's first ``decoder_layers`` layers and gets new cross-attention.
    Returns ``(model, tokenizer)``.
    """
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertLMHeadModel

    tok = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    enc = AutoModel.from_pretrained(str(base_path), local_files_only=True)
    dcfg = BertConfig.from_pretrained(str(base_path), num_hidden_layers=decoder_layers, is_decoder=True,
                                      add_cross_attention=True, local_files_only=True)
    dec = BertLMHeadModel.from_pretrained(str(base_path), config=dcfg, local_files_only=True)
    warm_start_decoder(dec)
    return assemble_span_infiller(enc, dec, tok), tok


def warm_start_decoder(decoder) -> None:
    """Give the decoder's new parts a pretrained start instead of random weights.

    * cross-attention of each layer = a copy of that layer's self-attention: encoder and decoder
      states live in the same (MiniLM) space, so a pretrained attention already finds related
      tokens there; randomly initialised cross-attention had learned almost nothing after 500
      steps here (the decoder wrote "the" for every span);
    * the LM head's transform = identity, so hidden states meet the (tied) word embeddings directly.
    """
    import torch

    with torch.no_grad():
        for layer in decoder.bert.encoder.layer:
            for name in ("query", "key", "value"):
                getattr(layer.crossattention.self, name).load_state_dict(getattr(layer.attention.self, name).state_dict())
            layer.crossattention.output.load_state_dict(layer.attention.output.state_dict())
        t = decoder.cls.predictions.transform
        t.dense.weight.copy_(torch.eye(t.dense.weight.shape[0]))
        t.dense.bias.zero_()


def assemble_span_infiller(encoder, decoder, tokenizer):
    """Join a BERT encoder and a BERT decoder (``is_decoder``, cross-attention) into a :class:`SpanInfiller`.

    Ties the decoder's word embeddings to the encoder's and sets the special-token ids that
    ``generate`` needs ([CLS] starts the output, [SEP] ends it).
    """
    from transformers import EncoderDecoderConfig

    cfg = EncoderDecoderConfig.from_encoder_decoder_configs(encoder.config, decoder.config)
    cfg.tie_word_embeddings = True
    cfg.decoder_start_token_id = tokenizer.cls_token_id
    cfg.eos_token_id = tokenizer.sep_token_id
    cfg.pad_token_id = tokenizer.pad_token_id
    model = span_infiller_class()(cfg, encoder=encoder, decoder=decoder)
    model.tie_weights()
    gen = model.generation_config
    gen.decoder_start_token_id, gen.eos_token_id, gen.pad_token_id = cfg.decoder_start_token_id, cfg.eos_token_id, cfg.pad_token_id
    return model
