"""Corpus evidence for the detector: would a likelier original fit this spot?

A spinner swaps a word for one of its thesaurus entries, and the swap rarely fits the words
around it as well as the original did ("deputy *overseas* minister", "*instructed* state media").
For each word ``w`` between neighbours ``p`` and ``n``, and each original ``c`` a spinner could have
turned into ``w`` (the inverted spinner tables, :mod:`degarble.spin.inverse`), this module compares
bigram log probabilities from clean training text::

    gain(c) = log P(c | p) + log P(n | c) - log P(w | p) - log P(n | w)   (+ c's inner bigrams)

The detector's word probability and four features (the best ``gain``, the best ``gain`` plus the
log prior of the swap, whether ``w`` has any candidate original, and ``w``'s log unigram
frequency) are combined by a logistic regression fitted on spun training paragraphs that the
counts never saw (``training/fit_context.py``). It is an explicit memory of collocations that the
6-layer encoder only partly learns; on validation it raised light-rate paragraph recall and token
F1 (numbers in training/README.md).

Everything the scorer needs ships in the detector folder, so a bundle behaves as it was measured:
``context.safetensors`` (the vocabulary with its unigram counts, and bigram counts) and ``context_inverse.tsv.gz`` (for
every spun key, its candidate originals with priors). Settings (smoothing, weights) are in the
manifest's ``detector.context``.
"""

from __future__ import annotations

import gzip
import io
import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..spin.inverse import Inverse, lookup_possessive, order_key
from ..text import BOS, EOS

FEATURES = ("gain", "gain_prior", "has_original", "log_unigram")
COUNTS_FILE = "context.safetensors"
INVERSE_FILE = "context_inverse.tsv.gz"
_CLIP = 15.0  # nats; a gain beyond this says nothing more and an unseen word should not dominate
_SEP = "\x1f"  # separates the words of the stored vocabulary (never inside a word)


def sequence_keys(words: Iterable[str]) -> list[str]:
    """The keys a text is counted under: its words with sentence-boundary marks."""
    return [BOS, *words, EOS]


class NgramCounts:
    """Unigram and bigram counts over a vocabulary.

    Words are numbered by their place in the sorted vocabulary; a bigram is the integer
    ``a * V + b`` of its two word numbers, and bigram counts are kept sorted by it, so the counts
    of every (neighbour, candidate) pair of a text come from one ``searchsorted`` instead of one
    Python lookup each (the scorer asks for about 60 per word). ``count("foreign")``,
    ``count("foreign", "minister")``; :meth:`ids`, :meth:`unigram` and :meth:`bigram` work on arrays.
    """

    def __init__(self, words: list[str], unigrams: np.ndarray, bigram_keys: np.ndarray, bigram_counts: np.ndarray):
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.unigrams = np.ascontiguousarray(unigrams, dtype=np.int64)
        order = np.argsort(bigram_keys, kind="stable")
        self.bigram_keys = np.ascontiguousarray(bigram_keys[order], dtype=np.int64)
        self.bigram_counts = np.ascontiguousarray(bigram_counts[order], dtype=np.int64)
        self.total = int(self.unigrams.sum())
        self.vocab = len(self.words)

    @classmethod
    def from_sequences(cls, sequences: Iterable[list[str]], min_bigram_count: int = 2) -> NgramCounts:
        """Count word sequences (each already wrapped by :func:`sequence_keys`); bigrams seen fewer
        than ``min_bigram_count`` times are dropped (they are most of the table and say little)."""
        uni: Counter = Counter()
        bi: Counter = Counter()
        for ks in sequences:
            uni.update(ks)
            bi.update(zip(ks, ks[1:]))
        words = sorted(uni)
        bad = next((w for w in words if _SEP in w or not w), None)
        if bad is not None:
            raise ValueError(f"n-gram counts: word {bad!r} is empty or holds the separator \\x1f")
        index = {w: i for i, w in enumerate(words)}
        kept = [(index[a] * len(words) + index[b], c) for (a, b), c in bi.items() if c >= min_bigram_count]
        keys = np.array([k for k, _ in kept], dtype=np.int64)
        return cls(words, np.array([uni[w] for w in words], dtype=np.int64), keys,
                   np.array([c for _, c in kept], dtype=np.int64))

    @classmethod
    def load(cls, path: str | Path, data: bytes | None = None) -> NgramCounts:
        """The counts saved at ``path`` (:meth:`save`); ``data``: that file's bytes, already read."""
        from safetensors.numpy import load, load_file

        t = load_file(str(path)) if data is None else load(data)
        if "vocab" not in t:
            raise ValueError(f"{path}: n-gram counts in an older format (hashed keys); "
                             "rebuild them with training/fit_context.py")
        words = t["vocab"].tobytes().decode("utf-8").split(_SEP) if len(t["vocab"]) else []
        return cls(words, t["unigrams"], t["bigram_keys"], t["bigram_counts"])

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        # the smallest integer types that hold the values keep the bundle small
        ucount = np.uint32 if self.unigrams.max(initial=0) < 2**32 else np.int64
        bcount = np.uint32 if self.bigram_counts.max(initial=0) < 2**32 else np.int64
        save_file({"vocab": np.frombuffer(_SEP.join(self.words).encode("utf-8"), dtype=np.uint8),
                   "unigrams": self.unigrams.astype(ucount), "bigram_keys": self.bigram_keys,
                   "bigram_counts": self.bigram_counts.astype(bcount)}, str(path))

    def ids(self, words: Iterable[str]) -> np.ndarray:
        """Word numbers, -1 for words the counts never saw."""
        get = self.index.get
        return np.array([get(w, -1) for w in words], dtype=np.int64)

    def unigram(self, ids: np.ndarray) -> np.ndarray:
        """Counts of words by number (0 for -1)."""
        ids = np.asarray(ids, dtype=np.int64)
        return np.where(ids >= 0, self.unigrams[np.maximum(ids, 0)], 0)

    def bigram(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Counts of the bigrams (a[k], b[k]) by word number (0 if unseen or either word is -1)."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        keys = a * self.vocab + b
        if not len(self.bigram_keys):
            return np.zeros(len(keys), dtype=np.int64)
        # the keys are looked up in sorted order: numpy's binary search starts from the last hit
        # when its queries ascend (72k pairs: 13.6 -> 7.2 ms; about 1 % of detect time)
        order = np.argsort(keys, kind="stable")
        pos = np.empty(len(keys), dtype=np.int64)
        pos[order] = np.searchsorted(self.bigram_keys, keys[order])
        pos = np.minimum(pos, len(self.bigram_keys) - 1)
        hit = (self.bigram_keys[pos] == keys) & (a >= 0) & (b >= 0)
        return np.where(hit, self.bigram_counts[pos], 0)

    def count(self, a: str, b: str | None = None) -> int:
        """The count of word ``a``, or of the bigram ``a b``."""
        if b is None:
            return int(self.unigram(self.ids([a]))[0])
        return int(self.bigram(self.ids([a]), self.ids([b]))[0])


class _Block(NamedTuple):
    """One spun key's candidate originals as arrays, for :meth:`ContextScorer.features`."""

    first: np.ndarray  # word number of each candidate's first word
    p_first: np.ndarray  # its unigram probability
    last: np.ndarray  # word number of its last word
    count_last: np.ndarray  # its count
    inner: np.ndarray  # log probability of the candidate's own bigrams (0 for one word)
    log_prior: np.ndarray  # log(prior + 1e-3)


class BigramModel:
    """A bigram language model over :class:`NgramCounts`: Dirichlet-smoothed ``log P(b | a)``.

    :param counts: n-gram counts of clean training text.
    :param mu: Dirichlet smoothing of the bigram probabilities (pseudo-counts of the unigram model).
    """

    def __init__(self, counts: NgramCounts, mu: float = 50.0):
        self.counts = counts
        self.mu = float(mu)
        self._unigram_cache: dict[str, float] = {}  # unigram_logprob's, by text

    def unigram_logprob(self, text: str) -> float:
        """log P of the words (compare keys, space-separated) of ``text`` under the unigram model,
        summed; 0 for the empty string. Cached: candidate ranking asks for the same originals
        over and over."""
        lp = self._unigram_cache.get(text)
        if lp is None:
            parts = text.split()
            lp = float(np.log(self._p_uni(self.counts.unigram(self.counts.ids(parts)))).sum()) if parts else 0.0
            self._unigram_cache[text] = lp
        return lp

    def _p_uni(self, count: np.ndarray) -> np.ndarray:
        """Add-0.1 unigram probabilities from counts."""
        return (count + 0.1) / (self.counts.total + 0.1 * self.counts.vocab)

    def _lp(self, a: np.ndarray, b: np.ndarray, count_a: np.ndarray, p_b: np.ndarray) -> np.ndarray:
        """log P(b | a) for word numbers, Dirichlet-smoothed towards P(b)."""
        return np.log((self.counts.bigram(a, b) + self.mu * p_b) / (count_a + self.mu))

    def _summed_logprob(self, pairs: list[tuple[int, str, str]], n: int) -> np.ndarray:
        """For ``(k, a, b)`` word pairs: the sum of log P(b | a) over each group ``k`` < ``n``."""
        return self._pair_sums([x[0] for x in pairs], [x[1] for x in pairs], [x[2] for x in pairs], n)

    def _pair_sums(self, group, firsts: list[str], seconds: list[str], n: int) -> np.ndarray:
        """:meth:`_summed_logprob` from flat lists: log P(``seconds[i]`` | ``firsts[i]``) summed
        over each ``group[i]`` < ``n``."""
        if not len(group):
            return np.zeros(n)
        c = self.counts
        a, b = c.ids(firsts), c.ids(seconds)
        lp = self._lp(a, b, c.unigram(a), self._p_uni(c.unigram(b)))
        return np.bincount(group, weights=lp, minlength=n)

    def chain_logprob(self, prev: str, options: list[list[str]], nxt: str) -> np.ndarray:
        """log P of each option's words (compare keys) between the words ``prev`` and ``nxt``
        under the smoothed bigram model; an empty option joins ``prev`` to ``nxt``. The restorer's
        candidate ranking compares options for one slot with it, and so does a spinner profile with
        ``context_fit`` (:class:`degarble.spin.Profile`)."""
        return self.chain_logprobs([(prev, options, nxt)])[0]

    def chain_logprobs(self, slots: list[tuple[str, list[list[str]], str]]) -> list[np.ndarray]:
        """:meth:`chain_logprob` of each ``(prev, options, nxt)`` slot, in one vectorised pass."""
        # flat lists of the words already held, no tuple per pair: hundreds of thousands of new
        # objects would set off full garbage collections over the (large) tables
        firsts: list[str] = []
        seconds: list[str] = []
        lengths: list[int] = []  # pairs per option
        sizes = []  # options per slot
        for prev, options, nxt in slots:
            for o in options:
                firsts.append(prev)
                firsts += o
                seconds += o
                seconds.append(nxt)
                lengths.append(len(o) + 1)
            sizes.append(len(options))
        flat = self._pair_sums(np.repeat(np.arange(len(lengths)), lengths), firsts, seconds, len(lengths))
        return np.split(flat, np.cumsum(sizes)[:-1]) if slots else []


class ContextScorer(BigramModel):
    """Adjusts the detector's word probabilities with corpus evidence (see the module docstring).

    :param counts: n-gram counts of clean training text.
    :param inverse: spun key -> its candidate originals, best prior first, as :func:`read_inverse`
        gives them (one unparsed ``original\tprior\t...`` string per key, parsed on first use).
    :param weights: logistic-regression weights: the model's logit first, then :data:`FEATURES`.
    :param mu: Dirichlet smoothing of the bigram probabilities (pseudo-counts of the unigram model).
    :param floor: words the model gives less than this keep its probability (saves the lookups for
        the bulk of clean words, whose adjusted probability would stay near zero anyway).
    """

    def __init__(self, counts: NgramCounts, inverse: dict[str, str], weights: list[float],
                 bias: float, mu: float = 50.0, max_candidates: int = 60, floor: float = 0.0):
        if len(weights) != 1 + len(FEATURES):
            raise ValueError(f"context weights: expected {1 + len(FEATURES)} (logit, {', '.join(FEATURES)}), "
                             f"got {len(weights)}")
        super().__init__(counts, mu)
        self.inverse = inverse
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = float(bias)
        self.max_candidates = int(max_candidates)
        self.floor = float(floor)
        self._parsed: dict[str, list[tuple[str, float]] | None] = {}
        self._blocks: dict[str, _Block | None] = {}
        self._spinner_inverse: Inverse | None = None

    @classmethod
    def from_dir(cls, folder: str | Path, settings: dict) -> ContextScorer:
        """Load from a detector folder with the manifest's ``detector.context`` settings."""
        folder = Path(folder)
        return cls(NgramCounts.load(folder / settings.get("counts", COUNTS_FILE)),
                   read_inverse(folder / settings.get("inverse", INVERSE_FILE)),
                   settings["weights"], settings["bias"], mu=settings.get("mu", 50.0),
                   max_candidates=settings.get("max_candidates", 60), floor=settings.get("floor", 0.0))

    def candidates(self, key: str) -> list[tuple[list[str], float]]:
        """The originals a spinner could have turned ``key`` into, as word lists with their prior."""
        hits = lookup_possessive(self._lookup, key)
        return [(c.split(), p) for c, p in hits[: self.max_candidates] if c]

    def spinner_inverse(self) -> Inverse:
        """The inverted spinner tables this scorer reads, as the restorer's candidate source.

        The same table as :func:`~degarble.spin.inverse.load_inverse` builds (written from it by
        ``training/fit_context.py``; priors to 4 significant digits, at most ``max_candidates``
        originals per key), parsed key by key as texts need them: no build time and little memory.
        """
        if self._spinner_inverse is None:
            self._spinner_inverse = Inverse(self._lookup)
        return self._spinner_inverse

    def _lookup(self, key: str) -> list[tuple[str, float]] | None:
        """``key``'s parsed candidates, None when the table has no such key."""
        if key not in self._parsed:
            raw = self.inverse.get(key)
            parts = raw.split("\t") if raw is not None else []
            self._parsed[key] = (None if raw is None else
                                 [(parts[k], float(parts[k + 1])) for k in range(0, len(parts) - 1, 2)])
        return self._parsed[key]

    def _block(self, key: str) -> _Block | None:
        """``key``'s candidates as arrays (cached: a text's words repeat, and so do texts' words)."""
        if key in self._blocks:
            return self._blocks[key]
        if len(self._blocks) > 200_000:  # a long batch job: keep memory flat
            self._blocks.clear()
            self._parsed.clear()
        cands = self.candidates(key)
        block = None
        if cands:
            c = self.counts
            # multi-word originals score their own bigrams too (0 for one word)
            inner = self._summed_logprob([(k, a, b) for k, (cs, _) in enumerate(cands) for a, b in zip(cs, cs[1:])],
                                         len(cands))
            first = c.ids(cs[0] for cs, _ in cands)
            last = c.ids(cs[-1] for cs, _ in cands)
            block = _Block(first, self._p_uni(c.unigram(first)), last, c.unigram(last), inner,
                           np.log(np.array([p for _, p in cands]) + 1e-3))
        self._blocks[key] = block
        return block

    def features(self, keys: list[str], which: Iterable[int] | None = None) -> np.ndarray:
        """:data:`FEATURES` for the words ``keys`` (compare keys, in order), one row per word;
        ``which`` limits the work to those word positions (other rows stay zero)."""
        out = np.zeros((len(keys), len(FEATURES)))
        idx = np.arange(len(keys)) if which is None else np.fromiter(which, dtype=np.int64)
        if not len(idx):
            return out
        c = self.counts
        ids = c.ids(sequence_keys(keys))  # word i is ids[i + 1], its neighbours ids[i] and ids[i + 2]
        uni = c.unigram(ids)
        p_uni = self._p_uni(uni)
        p, w, n = idx, idx + 1, idx + 2
        here = self._lp(ids[p], ids[w], uni[p], p_uni[w]) + self._lp(ids[w], ids[n], uni[w], p_uni[n])
        out[idx, FEATURES.index("log_unigram")] = np.log(p_uni[w])

        blocks = [self._block(keys[i]) for i in idx.tolist()]
        rows = np.array([r for r, b in enumerate(blocks) if b is not None], dtype=np.int64)
        if not len(rows):
            return out
        sizes = np.array([len(blocks[r].inner) for r in rows])
        at = np.repeat(rows, sizes)  # the row (into idx) of every (word, candidate) pair
        first, p_first, last, count_last, inner, log_prior = (
            np.concatenate(arrays) for arrays in zip(*(blocks[r] for r in rows)))
        gain = (self._lp(ids[p[at]], first, uni[p[at]], p_first)
                + self._lp(last, ids[n[at]], count_last, p_uni[n[at]]) + inner - here[at])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        out[idx[rows], FEATURES.index("gain")] = np.clip(np.maximum.reduceat(gain, starts), -_CLIP, _CLIP)
        out[idx[rows], FEATURES.index("gain_prior")] = np.clip(np.maximum.reduceat(gain + log_prior, starts),
                                                               -_CLIP, _CLIP)
        out[idx[rows], FEATURES.index("has_original")] = 1.0
        return out

    def adjust(self, keys: list[str], probs: list[float]) -> list[float]:
        """The detector's word probabilities with the corpus evidence folded in."""
        which = [i for i, q in enumerate(probs) if q >= self.floor]
        if not which:
            return list(probs)
        feats = self.features(keys, which)
        out = list(probs)
        for i in which:
            z = self.weights[0] * logit(probs[i]) + float(feats[i] @ self.weights[1:]) + self.bias
            out[i] = 1.0 / (1.0 + math.exp(-z))
        return out


def logit(p: float, eps: float = 1e-4) -> float:
    p = min(max(p, eps), 1 - eps)
    return math.log(p / (1 - p))


def write_inverse(path: str | Path, table: dict[str, list[tuple[str, float]]], max_candidates: int = 60,
                  weight: Callable[[str], float] | None = None) -> None:
    """Write ``spun key -> [(original, prior), ...]`` as gzipped TSV (key, then original/prior pairs).

    Keys with more than ``max_candidates`` originals keep the best by
    :func:`~degarble.spin.inverse.order_key` (the prior, plus ``weight(original)`` where given:
    by prior alone a common word with many synonyms, "meeting" for "assembly", loses its place to
    rare ones), still written in the table's order.
    """
    # no time stamp or file name in the gzip header: the same table gives the same bytes
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8") as f:
        for key in sorted(table):
            cands = [(c, p) for c, p in table[key] if c]
            if len(cands) > max_candidates:
                keep = set(sorted(range(len(cands)), key=lambda i: -order_key(*cands[i], weight))[:max_candidates])
                cands = [c for i, c in enumerate(cands) if i in keep]
            if cands and "\t" not in key:
                f.write(key + "".join(f"\t{c}\t{p:.4g}" for c, p in cands) + "\n")


def read_inverse(path: str | Path) -> dict[str, str]:
    """Read :func:`write_inverse`'s file: key -> its unparsed candidates (parsing a million pairs
    up front would add seconds to every cold start; a text needs a few hundred keys)."""
    out = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            key, _, rest = line.rstrip("\n").partition("\t")
            out[key] = rest
    return out
