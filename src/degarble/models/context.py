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
``context.safetensors`` (hashed unigram and bigram counts) and ``context_inverse.tsv.gz`` (for
every spun key, its candidate originals with priors). Settings (smoothing, weights) are in the
manifest's ``detector.context``.
"""

from __future__ import annotations

import gzip
import hashlib
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..spin.inverse import lookup_possessive

FEATURES = ("gain", "gain_prior", "has_original", "log_unigram")
COUNTS_FILE = "context.safetensors"
INVERSE_FILE = "context_inverse.tsv.gz"
BOS, EOS = "<s>", "</s>"
_CLIP = 15.0  # nats; a gain beyond this says nothing more and an unseen word should not dominate
_SEP = "\x1f"  # joins the two words of a bigram key (never inside a word)


def key_hashes(keys: list[str]) -> np.ndarray:
    """Stable 64-bit hashes of n-gram keys (Python's own ``hash`` differs per process)."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(k.encode("utf-8"), digest_size=8).digest(), "little")
                        for k in keys), dtype=np.uint64, count=len(keys))


def sequence_keys(words: Iterable[str]) -> list[str]:
    """The keys a text is counted under: its words with sentence-boundary marks."""
    return [BOS, *words, EOS]


class NgramCounts:
    """Unigram and bigram counts stored as sorted 64-bit key hashes with counts.

    ``count("foreign")``, ``count("foreign", "minister")``; :meth:`counts` looks up many at once.
    """

    def __init__(self, keys: np.ndarray, counts: np.ndarray, total: int, vocab: int):
        order = np.argsort(keys, kind="stable")
        self.keys = np.ascontiguousarray(keys[order])
        self.values = np.ascontiguousarray(counts[order])
        self.total = int(total)
        self.vocab = int(vocab)
        self._cache: dict[str, int] = {}

    @classmethod
    def from_sequences(cls, sequences: Iterable[list[str]], min_bigram_count: int = 2) -> NgramCounts:
        """Count word sequences (each already wrapped by :func:`sequence_keys`); bigrams seen fewer
        than ``min_bigram_count`` times are dropped (they are most of the table and say little)."""
        uni: Counter = Counter()
        bi: Counter = Counter()
        for ks in sequences:
            uni.update(ks)
            bi.update(zip(ks, ks[1:]))
        keys = list(uni) + [a + _SEP + b for (a, b), c in bi.items() if c >= min_bigram_count]
        counts = list(uni.values()) + [c for c in bi.values() if c >= min_bigram_count]
        return cls(key_hashes(keys), np.array(counts, dtype=np.uint32), sum(uni.values()), len(uni))

    @classmethod
    def load(cls, path: str | Path) -> NgramCounts:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        t = load_file(str(path))
        return cls(t["keys"], t["counts"], int(meta["total"]), int(meta["vocab"]))

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        save_file({"keys": self.keys, "counts": self.values}, str(path),
                  metadata={"total": str(self.total), "vocab": str(self.vocab)})

    def counts(self, keys: list[str]) -> list[int]:
        """Counts of unigram keys (``"word"``) and bigram keys (``bigram_key(a, b)``), 0 if unseen."""
        if len(self._cache) > 500_000:  # a long batch job: keep memory flat
            self._cache.clear()
        todo = [k for k in dict.fromkeys(keys) if k not in self._cache]
        if todo:
            h = key_hashes(todo)
            pos = np.minimum(np.searchsorted(self.keys, h), len(self.keys) - 1)
            found = np.where(self.keys[pos] == h, self.values[pos], 0)
            self._cache.update(zip(todo, found.tolist()))
        return [self._cache[k] for k in keys]

    def count(self, a: str, b: str | None = None) -> int:
        return self.counts([a if b is None else bigram_key(a, b)])[0]


def bigram_key(a: str, b: str) -> str:
    return a + _SEP + b


class ContextScorer:
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
        self.counts = counts
        self.inverse = inverse
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = float(bias)
        self.mu = float(mu)
        self.max_candidates = int(max_candidates)
        self.floor = float(floor)
        self._parsed: dict[str, list[tuple[str, float]] | None] = {}

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

    def _lookup(self, key: str) -> list[tuple[str, float]] | None:
        """``key``'s parsed candidates, None when the table has no such key."""
        if key not in self._parsed:
            raw = self.inverse.get(key)
            parts = raw.split("\t") if raw is not None else []
            self._parsed[key] = (None if raw is None else
                                 [(parts[k], float(parts[k + 1])) for k in range(0, len(parts) - 1, 2)])
        return self._parsed[key]

    def features(self, keys: list[str], which: Iterable[int] | None = None) -> np.ndarray:
        """:data:`FEATURES` for the words ``keys`` (compare keys, in order), one row per word;
        ``which`` limits the work to those word positions (other rows stay zero)."""
        seq = sequence_keys(keys)
        idx = range(len(keys)) if which is None else which
        plans = []  # (word position, [(candidate words, prior)])
        need: list[str] = []
        for i in idx:
            p, w, n = seq[i], seq[i + 1], seq[i + 2]
            cands = self.candidates(w)
            plans.append((i, cands))
            need += [w, p, bigram_key(p, w), bigram_key(w, n)]
            for cs, _ in cands:
                need += [*cs, bigram_key(p, cs[0]), bigram_key(cs[-1], n)]
                need += [bigram_key(a, b) for a, b in zip(cs, cs[1:])]
        need += seq  # unigram counts for the neighbours' denominators
        table = dict(zip(need, self.counts.counts(need)))
        n_total, v = self.counts.total, self.counts.vocab
        mu = self.mu

        def p_uni(x: str) -> float:
            return (table[x] + 0.1) / (n_total + 0.1 * v)

        def lp(a: str, b: str) -> float:  # log P(b | a), Dirichlet-smoothed towards P(b)
            return math.log((table[bigram_key(a, b)] + mu * p_uni(b)) / (table[a] + mu))

        out = np.zeros((len(keys), len(FEATURES)))
        for i, cands in plans:
            p, w, n = seq[i], seq[i + 1], seq[i + 2]
            here = lp(p, w) + lp(w, n)
            best = best_prior = -_CLIP
            for cs, prior in cands:
                g = lp(p, cs[0]) + lp(cs[-1], n) + sum(lp(a, b) for a, b in zip(cs, cs[1:])) - here
                best = max(best, g)
                best_prior = max(best_prior, g + math.log(prior + 1e-3))
            if not cands:
                best = best_prior = 0.0
            out[i] = (_clip(best), _clip(best_prior), float(bool(cands)), math.log(p_uni(w)))
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


def _clip(x: float) -> float:
    return max(-_CLIP, min(_CLIP, x))


def write_inverse(path: str | Path, table: dict[str, list[tuple[str, float]]], max_candidates: int = 60) -> None:
    """Write ``spun key -> [(original, prior), ...]`` as gzipped TSV (key, then original/prior pairs)."""
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        for key in sorted(table):
            cands = [(c, p) for c, p in table[key] if c][:max_candidates]
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
