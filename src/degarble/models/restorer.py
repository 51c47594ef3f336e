"""The restorer: a seq2seq span infiller that writes the original wording of flagged spans.

Design (measured against the alternatives in ``training/README.md``): the input is a piece of
text (whole sentences, up to ``max_words`` words) in which every flagged span is wrapped in
marker tokens; the decoder writes only the replacements, one after the other, separated by a
separator token::

    encoder: [CLS] ... deputy <s0> overseas </s> minister <s1> instructed </s> state media ... [SEP]
    decoder: [CLS] <s0> foreign <s1> told [SEP]

Each span has its own numbered sentinel, in the input and before its replacement in the output,
as in T5's span corruption: the decoder finds the span it is writing by matching the sentinel it
just wrote (a first version with one shared separator had restored 0.6 % of spans after 500 steps,
because the decoder had to count spans to know which one came next).

Only the replacement is generated, never the whole sentence, so the model does not have to
learn to copy (the slow road on a CPU, see ``shared/docs/MEASUREMENTS.md``) and everything
outside the spans stays byte for byte as it was. The model is a ``transformers``
:class:`~transformers.EncoderDecoderModel`: the encoder is all-MiniLM-L6-v2 (pretrained), the
decoder a 2-layer BERT decoder warm-started from MiniLM's first layers, with new cross-attention;
the decoder's word embeddings and output layer are tied to the encoder's, which keeps the
restorer at 28 M parameters (55 MB in fp16).

MiniLM's vocabulary is uncased, so capitalisation is taken from the span being replaced
(:func:`restore_case`): a restored "General Assembly" is capitalised where "Common Meeting" was.

Everything that training and inference must agree on lives here: segmenting, marking, targets,
decoding the output back into text.
"""

from __future__ import annotations

import functools
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
def marker_ids(tokenizer) -> tuple[int, list[int]]:
    """Vocabulary ids of the close marker and of the sentinels (span 0, 1, ...)."""
    ids = tokenizer.convert_tokens_to_ids([CLOSE, *SENTINELS])
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError(f"tokenizer has no {CLOSE}..{SENTINELS[-1]} entries; the restorer needs a BERT-style vocabulary")
    return ids[0], ids[1:]


def encode_source(tokenizer, text: str, spans: list[tuple[int, int]]) -> list[int]:
    """Token ids of ``text`` with span ``k`` of ``spans`` wrapped in sentinel ``k`` and the close marker.

    ``spans`` (at most :data:`MAX_SPANS`) are sorted, non-overlapping and word-aligned.
    Returns ``[CLS] ... [SEP]``.
    """
    close, sentinels = marker_ids(tokenizer)
    ids = [tokenizer.cls_token_id]
    pos = 0
    for k, (a, b) in enumerate(spans):
        ids += _ids(tokenizer, text[pos:a]) + [sentinels[k]] + _ids(tokenizer, text[a:b]) + [close]
        pos = b
    ids += _ids(tokenizer, text[pos:]) + [tokenizer.sep_token_id]
    return ids


def encode_target(tokenizer, replacements: list[str]) -> list[int]:
    """Decoder labels: sentinel ``k`` then replacement ``k``, for each span, then ``[SEP]`` (end)."""
    _, sentinels = marker_ids(tokenizer)
    ids: list[int] = []
    for k, r in enumerate(replacements):
        ids += [sentinels[k]] + _ids(tokenizer, r)
    return ids + [tokenizer.sep_token_id]


def _ids(tokenizer, s: str) -> list[int]:
    return tokenizer(s, add_special_tokens=False)["input_ids"] if s.strip() else []


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


class Restorer:
    """A loaded restorer: ``Restorer.from_dir(path, ...)``, then :meth:`restore`.

    :param min_score: an edit whose replacement probability is below this is not made (the
        value shipped in the bundle is calibrated on validation data for edit F0.5).
    :param max_words: words per piece (pieces of whole sentences).
    :param num_beams: beam width for ``generate`` (1 = greedy, the fastest).
    """

    def __init__(self, model, tokenizer, *, min_score: float = 0.0, max_words: int = 60, max_length: int = 192,
                 num_beams: int = 1, bf16: bool | None = None):
        import torch

        from .detector import cpu_has_bf16

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.min_score = float(min_score)
        self.max_words = int(max_words)
        self.max_length = int(max_length)
        self.num_beams = int(num_beams)
        self.bf16 = cpu_has_bf16() if bf16 is None else bf16
        self._torch = torch
        self._sentinel_index = {t: k for k, t in enumerate(marker_ids(tokenizer)[1])}

    @classmethod
    def from_dir(cls, path: str | Path, **settings) -> Restorer:
        """Load a ``save_pretrained`` folder (offline)."""
        import torch
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = span_infiller_class().from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
        return cls(model, tok, **settings)

    # -- the seq2seq step ---------------------------------------------------------------------
    def infill(self, items: list[tuple[str, list[tuple[int, int]]]], batch_size: int = 32) -> list[list[tuple[str, float]]]:
        """For each ``(text, spans)``: the generated replacement and its probability, per span.

        ``spans`` are character spans of ``text`` to rewrite. Items whose encoding would exceed
        ``max_length`` tokens are split by span groups, never truncated.
        """
        torch = self._torch
        encoded: list[tuple[int, int, list[int], int]] = []  # (item, first span, ids, n spans)
        for k, (text, spans) in enumerate(items):
            encoded += self._encode_within_limit(k, text, spans)
        results: list[list[tuple[str, float]]] = [[] for _ in items]
        parts: dict[tuple[int, int], list[tuple[str, float]]] = {}
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][2]))
        pad = self.tokenizer.pad_token_id
        for b in range(0, len(order), batch_size):
            batch = [encoded[i] for i in order[b : b + batch_size]]
            width = max(len(e[2]) for e in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, e in enumerate(batch):
                ids[r, : len(e[2])] = torch.tensor(e[2])
                mask[r, : len(e[2])] = 1
            # room for every span's words (a phrase can grow: "year" -> "12 months") and separators
            max_new = min(self.max_length, 8 + 6 * max(e[3] for e in batch) + 2 * max(len(e[2]) for e in batch) // 3)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                gen = self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=max_new, num_beams=self.num_beams,
                    do_sample=False, output_scores=True, return_dict_in_generate=True,
                )
            seqs = gen.sequences[:, 1:]  # drop the decoder start token
            logp = self.model.compute_transition_scores(gen.sequences, gen.scores, normalize_logits=True,
                                                        beam_indices=getattr(gen, "beam_indices", None))
            for r, e in enumerate(batch):
                toks = seqs[r].tolist()
                lps = logp[r].float().tolist()
                parts[(e[0], e[1])] = self._split_output(toks, lps, e[3])
        for (k, _first), segs in sorted(parts.items()):
            results[k].extend(segs)
        return results

    def _encode_within_limit(self, k, text, spans, first=0):
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
            return [(k, first, ids, len(spans))]
        h = len(spans) // 2
        return self._encode_within_limit(k, text, spans[:h], first) + self._encode_within_limit(
            k, text, spans[h:], first + h
        )

    def _split_output(self, toks: list[int], lps: list[float], n: int) -> list[tuple[str | None, float]]:
        """Generated ids -> ``n`` (replacement, probability) pairs, one per sentinel.

        A replacement's probability is that of its words and of the token that ends it (the next
        sentinel or the end), so a replacement cut short scores low. A span whose sentinel never
        comes out is left alone: ``(None, 0.0)``.
        """
        import math

        segs: dict[int, tuple[list[int], float]] = {}
        cur = None
        for t, lp in zip(toks, lps):
            if t == self.tokenizer.pad_token_id:
                break
            lp = lp if math.isfinite(lp) else -50.0
            if cur is not None:
                segs[cur] = (segs[cur][0], segs[cur][1] + lp)
            if t == self.tokenizer.sep_token_id:
                break
            if t in self._sentinel_index:
                cur = self._sentinel_index[t]
                segs.setdefault(cur, ([], 0.0))
            elif cur is not None:
                segs[cur][0].append(t)
        return [(detokenize(self.tokenizer, segs[k][0]), math.exp(segs[k][1])) if k in segs else (None, 0.0)
                for k in range(n)]

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
            for (a, b), (rep, score) in zip(job.spans, reps):
                e = self._edit(text, a, b, rep, score, job.seg[0])
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

    def _edit(self, text: str, a: int, b: int, rep: str | None, score: float, seg_start: int) -> Edit | None:
        before = text[a:b]
        if rep is None or score < self.min_score:
            return None
        if compare_key(rep) == compare_key(before):
            return None  # the model kept the span: the detector's flag was a false alarm
        if rep == "":
            # a deleted filler takes one neighbouring space with it
            if b < len(text) and text[b] == " ":
                b += 1
            elif a > 0 and text[a - 1] == " ":
                a -= 1
            return Edit(a, b, text[a:b], "", score)
        curly = text.count("’") > text.count("'")
        after = restore_case(before, rep, _sentence_initial(text, a, seg_start), curly)
        return Edit(a, b, before, after, score)


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
    return assemble_span_infiller(enc, dec, tok), tok


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
