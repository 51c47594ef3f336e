"""Text segmentation with character offsets, and normalisation for comparing words.

Everything here is pure standard library: the spinner, the models, scoring and the corpus
scripts all segment text the same way, so offsets mean the same thing everywhere.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

# A word: an acronym with dots (U.S., U.N.), a number (1,200 / 3.5 / 20), or letters/digits with
# inner apostrophes (it's, don't, Ryabkov’s). Hyphens split words ("face-to-face" is three words),
# as real spinners swap the parts of hyphenated compounds independently.
#: Sentence-boundary keys of the n-gram counts (models/context.py) and of the spinner's fit.
BOS, EOS = "<s>", "</s>"

_WORD_RE = re.compile(
    r"(?:[A-Za-z]\.){2,}"  # acronyms with dots
    r"|\d+(?:[.,:]\d+)*"  # numbers
    r"|[^\W_]+(?:['’][^\W_]+)*",  # words, with inner apostrophes
    re.UNICODE,
)

# Abbreviations after which a full stop does not end a sentence.
_ABBREV = {
    "mr", "mrs", "ms", "dr", "prof", "st", "sen", "rep", "gov", "gen", "col", "lt", "sgt", "capt",
    "jr", "sr", "inc", "ltd", "co", "corp", "vs", "etc", "no", "vol", "fig", "jan", "feb", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mt", "ft", "approx", "est",
}
_SENT_END_RE = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+)")

# Typography that scraped text varies in and that must not count as spinning.
_QUOTE_DASH_MAP = str.maketrans(
    {
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'",
        "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"',
        "–": "-", "—": "-", "‒": "-", "―": "-", "−": "-", "‐": "-", "‑": "-",
        "\u00a0": " ", "\u2009": " ", "\u202f": " ",
    }
)


@dataclass(frozen=True)
class Token:
    """A word with its character span in the text it came from."""

    start: int
    end: int
    text: str


def words(text: str) -> list[Token]:
    """Split ``text`` into word tokens with character offsets (punctuation is skipped)."""
    return [Token(m.start(), m.end(), m.group()) for m in _WORD_RE.finditer(text)]


def paragraphs(text: str) -> list[tuple[int, int]]:
    """Character spans of the non-blank paragraphs (separated by one or more newlines)."""
    spans = []
    for m in re.finditer(r"[^\n]+", text):
        seg = m.group()
        if seg.strip():
            lead = len(seg) - len(seg.lstrip())
            trail = len(seg) - len(seg.rstrip())
            spans.append((m.start() + lead, m.end() - trail))
    return spans


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences, paragraph by paragraph (a rule-based splitter).

    Splits after ``. ! ?`` (with closing quotes or brackets) followed by whitespace, unless the
    full stop ends a known abbreviation (Mr., U.S., Jan.) or the next word starts in lower case.
    """
    out: list[tuple[int, int]] = []
    for p_start, p_end in paragraphs(text):
        para = text[p_start:p_end]
        start = 0
        for m in _SENT_END_RE.finditer(para):
            end = m.end()
            before = para[start : m.start() + 1]
            last = re.search(r"([A-Za-z.]+)\.$", before)
            if last and m.group().startswith("."):
                w = last.group(1).lower()
                if w.rstrip(".") in _ABBREV or re.fullmatch(r"(?:[a-z]\.)+[a-z]", w):
                    continue
                # A middle initial ("George W. Bush", "Robert A. Iger"). "I" is left out:
                # "World War I." ends sentences far more often than it is an initial.
                i = last.start(1)
                if re.fullmatch(r"[A-HJ-Z]", last.group(1)) and i > 0 and before[i - 1].isspace():
                    continue
            nxt = para[end:].lstrip()
            if nxt and nxt[0].islower():
                continue
            seg = para[start:end]
            if seg.strip():
                lead = len(seg) - len(seg.lstrip())
                out.append((p_start + start + lead, p_start + end))
            start = end
        seg = para[start:]
        if seg.strip():
            lead = len(seg) - len(seg.lstrip())
            trail = len(seg) - len(seg.rstrip())
            out.append((p_start + start + lead, p_end - trail))
    return out


def normalize_typography(text: str) -> str:
    """Map curly quotes, dashes and odd spaces to plain ASCII ones (length-preserving)."""
    return text.translate(_QUOTE_DASH_MAP)


def clean_scraped(text: str) -> str:
    """Unescape HTML entities (``&amp;``, ``&#8217;``) and normalise Unicode to NFC.

    Used on input before detection when the caller asks for it; offsets then index the
    cleaned text, so the CLI only does this when told to.
    """
    return unicodedata.normalize("NFC", html.unescape(text))


def compare_key(word: str) -> str:
    """The form two words are compared in: typography-normalised and case-folded."""
    return normalize_typography(word).casefold()


def match_case(template: str, word: str) -> str:
    """Give ``word`` the capitalisation pattern of ``template`` (UPPER, Title or lower).

    For multi-word replacements only the first word takes a leading capital, as in running text
    ("Common Meeting" keeps each word's case because each word is swapped on its own).
    """
    if not template or not word:
        return word
    letters = [c for c in template if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return word.upper()
    if template[0].isupper():
        return word[0].upper() + word[1:]
    return word
