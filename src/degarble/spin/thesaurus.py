"""The bundled thesaurus: lowercased word or phrase -> weighted replacement candidates.

Built by ``data/build_thesaurus.py`` from MyThes (WordNet), Moby and PPDB; see
``resources/README.md`` for provenance. Pure standard library; loaded once and cached.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

THESAURUS_VERSION = "en.v1"


class ThesaurusError(ValueError):
    """The thesaurus resource is missing or malformed."""


class Thesaurus:
    """Weighted candidates per key, Zipf frequencies, and the inverted (spun -> original) view."""

    def __init__(self, table: dict[str, list[tuple[str, float]]], zipf: dict[str, float], version: str):
        self.table = table
        self._zipf = zipf
        self.version = version
        self._inverse: dict[str, list[str]] | None = None
        # longest key in words, so the spinner knows how far to look ahead for phrases
        self.max_key_words = max((k.count(" ") + 1 for k in table), default=1)

    def candidates(self, key: str) -> list[tuple[str, float]]:
        """Replacement candidates (phrase, weight) for a lowercased word or phrase, best first."""
        return self.table.get(key, [])

    def zipf(self, word: str) -> float:
        """wordfreq Zipf frequency of a lowercased word (0.0 when unknown)."""
        return self._zipf.get(word, 0.0)

    def neighbours(self, word: str) -> list[str]:
        """Words linked to ``word`` in either direction (what FGWS compares against)."""
        if self._inverse is None:
            inv: dict[str, list[str]] = {}
            for k, cands in self.table.items():
                for c, _ in cands:
                    inv.setdefault(c, []).append(k)
            self._inverse = inv
        out = [c for c, _ in self.table.get(word, [])]
        out += [k for k in self._inverse.get(word, []) if k not in out]
        return out

    def __contains__(self, key: str) -> bool:
        return bool(self.table.get(key))

    def __len__(self) -> int:
        return len(self.table)


def parse_table(lines) -> Thesaurus:
    """Parse the TSV format (``key<TAB>zipf<TAB>cand=weight|...``) into a :class:`Thesaurus`."""
    table: dict[str, list[tuple[str, float]]] = {}
    zipf: dict[str, float] = {}
    version = THESAURUS_VERSION
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) > 3 and parts[1] == "degarble" and parts[2] == "thesaurus":
                version = parts[3].rstrip(":")
            continue
        try:
            key, z, cands = line.split("\t")
            zipf[key] = float(z)
            if cands:
                table[key] = [(c, float(w)) for c, _, w in (item.rpartition("=") for item in cands.split("|"))]
        except ValueError as e:
            raise ThesaurusError(f"thesaurus line {n} is malformed: {line[:80]!r}") from e
    return Thesaurus(table, zipf, version)


@cache
def load_thesaurus(version: str = THESAURUS_VERSION) -> Thesaurus:
    """Load the thesaurus shipped in the package (cached; about a second the first time)."""
    # next to this file: installed packages keep resources/ beside the module (package-data)
    ref = Path(__file__).resolve().parent / "resources" / f"thesaurus-{version}.tsv.gz"
    if not ref.is_file():
        raise ThesaurusError(f"no bundled thesaurus {version!r} at {ref}; available: {THESAURUS_VERSION!r}")
    with gzip.open(ref, "rt", encoding="utf-8") as f:
        return parse_table(f)
