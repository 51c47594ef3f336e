"""The spinner's tables read backwards: spun wording -> the originals a spinner could have replaced.

A spinner swaps a word for one of its thesaurus entries, so the original of a spun word is one of
the words whose entry lists it ("overseas" is in the entries of "foreign" and "abroad"). The
restorer ranks these candidates with its seq2seq model (:mod:`degarble.models.restorer`); this
module only proposes them, each with a prior: the share of the original's entry weight that the
spun wording has (how likely a spinner starting from that original was to write it).

Sources, all shipped in the package: the thesaurus (the first ``top_k`` entries of each key, as far
as any spinner profile reaches), the rule tables of :mod:`degarble.spin.rules` (function words,
phrases, the content-farm favourites, contractions both ways, number words written as digits,
"%"), and inserted fillers (candidate: the empty string, i.e. delete).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

from ..text import compare_key
from . import rules
from .thesaurus import Thesaurus, load_thesaurus

_ALL_TABLES = ("FUNCTION_WORDS", "PHRASES", "EXTRA_EXPANSIONS", "NEWS_SPINNER")


def lookup_possessive(get, key: str) -> list[tuple[str, float]]:
    """``get(key)`` (a table lookup: originals with priors, or None when the key is absent), and for
    an absent possessive the stem's one-word originals with "'s": the spinner swaps the stem and
    keeps "'s". Shared by :class:`Inverse` and the detector's corpus evidence."""
    hits = get(key)
    if hits is None and key.endswith("'s") and len(key) > 3:
        hits = [(o + "'s", p) for o, p in (get(key[:-2]) or []) if o and " " not in o]
    return hits or []


def order_key(original: str, prior: float, weight: Callable[[str], float] | None = None) -> float:
    """What :meth:`Inverse.candidates` chooses and orders candidates by: the log prior, plus
    ``weight(original)`` where a weight is given."""
    return math.log(max(prior, 1e-12)) + (weight(original) if weight is not None else 0.0)


class Inverse:
    """``Inverse(table).candidates("overseas")`` -> ``[("foreign", 0.12), ("abroad", 0.2), ...]``.

    ``table`` looks up a spun key (a compare key): its originals with their prior, best first, or
    ``None`` for a key it does not have. :func:`load_inverse` builds it from the bundled tables
    (:meth:`from_thesaurus`); a detector bundle's corpus evidence carries the same table in a file
    that is read lazily (:meth:`degarble.models.context.ContextScorer.spinner_inverse`).
    """

    def __init__(self, table: Callable[[str], list[tuple[str, float]] | None], per_word: int = 6,
                 max_candidates: int = 24):
        self._get = table
        self.table: dict[str, list[tuple[str, float]]] | None = None  # set by from_thesaurus
        self.per_word = per_word
        self.max_candidates = max_candidates
        # an inserted filler's original is nothing (the empty candidate: delete it)
        self._fillers = {f for f, _ in rules.FILLERS}

    @classmethod
    def from_thesaurus(cls, thesaurus: Thesaurus, top_k: int = 30, **settings) -> Inverse:
        """Invert ``thesaurus`` and the rule tables; the table is kept as ``.table`` (a dict)."""
        inv: dict[str, dict[str, float]] = {}

        def add(original: str, entries: list[tuple[str, float]]) -> None:
            entries = [(c, w) for c, w in entries[:top_k] if w > 0 and c != original]
            # the spinner draws among its first candidates in proportion to their weights
            total = sum(w for _, w in entries[:10]) or 1.0
            for c, w in entries:
                d = inv.setdefault(c, {})
                d[original] = max(d.get(original, 0.0), min(1.0, w / total))

        for original, entries in thesaurus.table.items():
            add(original, entries)
        for original, entries in rules.merged_rules(_ALL_TABLES).items():
            add(original, entries)
        for contracted, expanded in rules.CONTRACTIONS.items():
            add(contracted, [(expanded, 1.0)])
            add(expanded, [(contracted, 1.0)])
        for word, digits in rules.NUMBER_WORDS.items():
            add(word, [(digits, 1.0)])
        add("percent", [("%", 1.0)])
        table = {k: sorted(d.items(), key=lambda x: -x[1]) for k, d in inv.items()}
        out = cls(table.get, **settings)
        out.table = table
        return out

    def lookup(self, key: str) -> list[tuple[str, float]]:
        """Originals (lowercased) whose spinner entries contain ``key``, with their prior, best first."""
        return lookup_possessive(self._get, compare_key(key))

    def candidates(self, span: str, limit: int | None = None,
                   weight: Callable[[str], float] | None = None) -> list[tuple[str, float]]:
        """Candidate originals of a flagged span (a word or a run of words), with their priors.

        The whole span is looked up first ("12 months" -> "year"); a run of words is also read as
        words swapped one by one ("Common Meeting" -> "general assembly"): the product of each
        word's candidates (itself included), best priors first. At most ``limit`` (default
        ``max_candidates``).

        ``weight``: where given, candidates are chosen (and ordered) by ``log prior +
        weight(original)`` instead of the prior alone, for each word of a run as for the whole
        span; the priors returned are unchanged. The prior is P(span | original): by itself it
        favours rare originals with few synonyms ("states general" for "assembly") over common
        ones ("meeting"), which a weight of the original's corpus frequency puts right.
        """
        limit = self.max_candidates if limit is None else int(limit)

        def key(item: tuple[str, float]) -> float:
            return order_key(*item, weight)

        def best(items, n: int | None = None) -> list[tuple[str, float]]:
            return items[:n] if weight is None else sorted(items, key=key, reverse=True)[:n]

        out: dict[str, float] = dict(self.lookup(span))
        parts = span.split()
        if len(parts) > 1:
            # a beam over the words, best kept: the full product grows as per_word ** words
            beam: list[tuple[list[str], float, float]] = [([], 1.0, 0.0)]  # (words, prior, order key)
            for w in parts:
                # the word kept as it is (prior 1) is weighed too: a rare spun word kept loses
                # to a common original, as it should
                opts = [(compare_key(w), 1.0)] + best(self.lookup(w), self.per_word)
                step = [(o, q, key((o, q))) for o, q in opts]
                beam = [(b + [o], p * q, s + k) for b, p, s in beam for o, q, k in step]
                # without a weight, by the product of the priors exactly as before (its log sum
                # could break ties differently)
                beam = sorted(beam, key=(lambda x: -x[1]) if weight is None else (lambda x: -x[2]))
                beam = beam[: limit + 1]
            whole = compare_key(" ".join(parts))
            for combo, p, _ in beam:
                text = " ".join(o for o in combo if o)
                if text != whole:
                    out[text] = max(out.get(text, 0.0), p)
        ranked = best(sorted(out.items(), key=lambda x: -x[1]), limit)
        if compare_key(span) in self._fillers:
            ranked.append(("", 0.05))  # fillers are inserted at a low rate (Profile.fillers)
        return ranked


@cache
def load_inverse() -> Inverse:
    """The inverse of the bundled thesaurus and rule tables (built once: about two seconds and a few
    hundred MB; a model bundle's restorer reads the detector's copy instead)."""
    return Inverse.from_thesaurus(load_thesaurus())
