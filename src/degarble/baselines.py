"""Baselines that every evaluation runs side by side with the model.

Both have the model's interface (``name``, ``bundle_hash``, ``threshold``, ``detect(texts)``,
``restore(texts)``), so the harness scores them with the same code path.

* :class:`DoNothing` — output = input, ``spun_score`` 0. Its restoration numbers are the spun
  text's own distance from the original: the floor a restorer has to beat.
* :class:`FGWS` — frequency-guided word substitution (Mozes, Stenetorp, Kleinberg & Griffin,
  "Frequency-Guided Word Substitutions for Detecting Textual Adversarial Examples", EACL 2021),
  adapted to spinning: a word rarer than ``max_zipf`` whose most frequent thesaurus neighbour is at
  least ``min_gain`` Zipf points (``10 ** min_gain`` times) more frequent is flagged and replaced by
  that neighbour, keeping the word's case. The paragraph's ``spun_score`` is the share of its words
  flagged. The original method compares a classifier's confidence before and after substitution;
  with no classifier to consult, the substitution itself is the detector here.

Pure Python (no torch): the thesaurus is degarble's own spinner table, read in both directions.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from .text import Token, match_case, words
from .types import Detection, Edit, Restoration, Span

__all__ = ["BASELINES", "DoNothing", "FGWS", "load_baseline"]

_RESOURCE = Path(__file__).resolve().parent / "spin" / "resources" / "thesaurus-en.v1.tsv.gz"


class DoNothing:
    """Output = input; every text scores 0 and nothing is flagged."""

    name = "do-nothing"
    kind = "baseline"
    bundle_hash = ""
    threshold = 0.5

    def detect(self, texts: Sequence[str]) -> list[Detection]:
        return [Detection(0.0, False, []) for _ in texts]

    def restore(self, texts: Sequence[str]) -> list[Restoration]:
        return [Restoration(t, []) for t in texts]

    def config(self) -> dict:
        return {}


class FGWS:
    """Frequency-guided word substitution (see the module docstring).

    :param neighbours: ``word_lower -> list of words`` linked to it in the thesaurus, either direction.
    :param zipf: ``word_lower -> Zipf frequency`` (log10 of occurrences per billion words; 0 if unknown).
    :param max_zipf: only words rarer than this are candidates (4.0 is 10 per million words).
    :param min_gain: the neighbour must be at least this many Zipf points more frequent.
    :param threshold: a paragraph is spun when at least this share of its words is flagged.
    :param resource_id: identifies the thesaurus in the baseline's hash (for signatures).

    Only single words are flagged and only single-word neighbours are used (FGWS is word-level);
    tokens with digits or dots, and all-capital acronyms, are left alone. Defaults are round values,
    not tuned for score (on the dev article, ``max_zipf`` from 3.5 to 5.0 all raise WER).
    """

    name = "fgws"
    kind = "baseline"

    def __init__(
        self,
        neighbours: Callable[[str], Sequence[str]],
        zipf: Callable[[str], float],
        max_zipf: float = 4.0,
        min_gain: float = 1.0,
        threshold: float = 0.05,
        resource_id: str = "",
    ):
        self._neighbours = neighbours
        self._zipf = zipf
        self.max_zipf = float(max_zipf)
        self.min_gain = float(min_gain)
        self.threshold = float(threshold)
        self.resource_id = resource_id
        self._cache: dict[str, tuple[str, float] | None] = {}
        cfg = f"{resource_id}|max_zipf:{self.max_zipf}|min_gain:{self.min_gain}|t:{self.threshold}"
        self.bundle_hash = hashlib.sha256(cfg.encode()).hexdigest()[:8]

    def config(self) -> dict:
        return {
            "max_zipf": self.max_zipf,
            "min_gain": self.min_gain,
            "threshold": self.threshold,
            "thesaurus": self.resource_id,
        }

    @classmethod
    def from_thesaurus(cls, thesaurus=None, **kwargs) -> FGWS:
        """Build FGWS on the spinner's thesaurus (``degarble.spin.thesaurus.load_thesaurus()``).

        Uses ``thesaurus.neighbours`` and ``thesaurus.zipf``. When the spinner package is not
        available, the bundled table file is read directly (same data, same two directions).
        """
        if thesaurus is None:
            try:
                from .spin.thesaurus import load_thesaurus
            except ImportError:
                thesaurus = _TableThesaurus.load(_RESOURCE)
            else:
                thesaurus = load_thesaurus()
        if not hasattr(thesaurus, "neighbours"):
            raise TypeError("FGWS needs a thesaurus with .neighbours(word) and .zipf(word)")
        rid = str(getattr(thesaurus, "version", "") or getattr(thesaurus, "signature", "") or "thes")
        if callable(rid):
            rid = rid()
        return cls(thesaurus.neighbours, thesaurus.zipf, resource_id=str(rid), **kwargs)

    def _best(self, key: str) -> tuple[str, float] | None:
        """The replacement for a lower-cased word and its Zipf gain, or ``None``."""
        if key in self._cache:
            return self._cache[key]
        out = None
        z = self._zipf(key)
        if z < self.max_zipf:
            best, best_z = None, z + self.min_gain
            # sorted: the same input always picks the same neighbour on ties
            for n in sorted(set(self._neighbours(key))):
                if " " in n or n == key or not n.isalpha():
                    continue
                nz = self._zipf(n)
                if nz >= best_z and (best is None or nz > best_z):
                    best, best_z = n, nz
            if best is not None:
                out = (best, best_z - z)
        self._cache[key] = out
        return out

    def flags(self, text: str) -> list[tuple[Token, str, float]]:
        """The words FGWS would replace: ``(token, replacement with case kept, Zipf gain)``."""
        out = []
        for tok in words(text):
            w = tok.text
            if not w.replace("'", "").replace("’", "").isalpha() or (len(w) > 1 and w.isupper()):
                continue
            hit = self._best(w.lower())
            if hit is not None:
                out.append((tok, match_case(w, hit[0]), hit[1]))
        return out

    @staticmethod
    def _prob(gain: float) -> float:
        # the neighbour's share of the pair's occurrences: f(n) / (f(w) + f(n))
        return 1.0 / (1.0 + 10.0 ** (-gain))

    def detect(self, texts: Sequence[str]) -> list[Detection]:
        out = []
        for text in texts:
            flagged = self.flags(text)
            n = len(words(text))
            score = len(flagged) / n if n else 0.0
            spans = [Span(t.start, t.end, self._prob(g), t.text) for t, _, g in flagged]
            out.append(Detection(score, score >= self.threshold, spans))
        return out

    def restore(self, texts: Sequence[str]) -> list[Restoration]:
        out = []
        for text in texts:
            edits = [Edit(t.start, t.end, t.text, rep, self._prob(g)) for t, rep, g in self.flags(text)]
            pieces, pos = [], 0
            for e in edits:
                pieces += [text[pos : e.start], e.after]
                pos = e.end
            pieces.append(text[pos:])
            out.append(Restoration("".join(pieces), edits))
        return out


class _TableThesaurus:
    """Reads the bundled table (``key <TAB> zipf <TAB> cand=weight|...``) in both directions.

    Only a stand-in for :func:`degarble.spin.thesaurus.load_thesaurus` when that is not importable.
    """

    def __init__(self, table: dict[str, list[str]], zipfs: dict[str, float], version: str):
        self._zipfs = zipfs
        self.version = version
        links: dict[str, set[str]] = defaultdict(set)
        for key, cands in table.items():
            for c in cands:
                links[key].add(c)
                links[c].add(key)
        self._links = links
        try:  # words the table has no line for
            from wordfreq import zipf_frequency

            self._wordfreq: Callable[[str], float] | None = lambda w: zipf_frequency(w, "en")
        except ImportError:  # pragma: no cover - wordfreq is in the dev environment
            self._wordfreq = None

    @classmethod
    @functools.lru_cache(maxsize=2)
    def load(cls, path: Path) -> _TableThesaurus:
        table: dict[str, list[str]] = {}
        zipfs: dict[str, float] = {}
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("#") or not line.strip():
                    continue
                key, z, cands = (line.rstrip("\n").split("\t") + ["", ""])[:3]
                zipfs[key] = float(z or 0.0)
                table[key] = [c.rsplit("=", 1)[0] for c in cands.split("|") if c]
        version = path.name.removeprefix("thesaurus-").split(".tsv")[0]
        return cls(table, zipfs, version)

    def neighbours(self, word: str) -> list[str]:
        return sorted(self._links.get(word, ()))

    def zipf(self, word: str) -> float:
        if word in self._zipfs:
            return self._zipfs[word]
        return self._wordfreq(word) if self._wordfreq else 0.0


#: The baselines every evaluation runs, by name.
BASELINES = {"do-nothing": DoNothing, "fgws": FGWS.from_thesaurus}


def load_baseline(name: str):
    """A baseline by name (``do-nothing`` or ``fgws``)."""
    try:
        return BASELINES[name]()
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}") from None
