"""The spinner simulator: swaps words and phrases the way real article spinners do.

What it reproduces (``shared/docs/SPINNERS.md``), each behaviour switchable per profile:

* word swaps from the thesaurus, inflection kept (the table holds inflected forms), case kept;
* swaps inside names built from ordinary words ("White House" -> "White Home"), while person
  and place names, acronyms and digits stay;
* multi-word phrase swaps in both directions and word -> phrase paraphrases;
* number words -> digits, "percent" -> "%";
* modal, conjunction and preposition swaps; contractions both ways; inserted fillers;
* broken "a"/"an" agreement left in place (articles are never repaired);
* quotes spun unless the profile says not to;
* within one document a choice, once made, is mostly reused.

Determinism: the random generator is seeded from (profile, seed, text), so a text gets the same
spin however a corpus is sharded or ordered.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .._version import __version__
from ..text import BOS, EOS, Token, compare_key, match_case, sentences, words
from ..types import Edit, Spun
from . import rules
from .rules import DEFAULT_TABLES
from .thesaurus import Thesaurus, load_thesaurus

if TYPE_CHECKING:  # the models package imports this one: load it only when a profile needs it
    from ..models.context import BigramModel

RATES: dict[str, float] = {"light": 0.08, "medium": 0.20, "heavy": 0.35}


@dataclass(frozen=True)
class Profile:
    """A spinner's habits. Any change to a profile that alters output needs a new version name."""

    name: str
    rate: float = 0.25  # share of words to change; real spun news shows 25-30 per 100
    top_k: int = 10  # how far down the candidate list the spinner reaches
    sharpness: float = 1.0  # weight**sharpness: higher = sticks to the best candidates
    reuse: float = 0.85  # chance to reuse the choice made earlier in the same document
    rate_jitter: float = 0.5  # per-paragraph rate factor drawn from [1-j, 1+j]
    untouched: float = 0.05  # chance that a paragraph comes out untouched
    names: float = 0.8  # chance that an ordinary word inside a capitalised name is swappable
    quotes: bool = True  # spin quoted speech too
    contractions: float = 0.6  # chance to contract/expand a contraction site when chosen
    numbers: float = 0.9  # chance to write a number word as digits when chosen
    fillers: float = 0.05  # chance to insert a filler at each eligible slot
    phrase_bias: float = 1.0  # multiplier on candidates of two or more words
    rules: bool = True  # use the hand-written function-word and phrase rules
    tables: tuple[str, ...] = DEFAULT_TABLES  # which rule tables of spin/rules.py
    rule_bias: float = 1.0  # multiplier on the weights of rule-table candidates against the thesaurus
    never_swap: bool = True  # leave day and month names alone (rules.NEVER_SWAP); False only in v1 profiles
    articles: float = 0.2  # chance to repair "a"/"an" before a swapped word (most spinners don't)
    # prefer candidates that fit the words around them: each weight times exp(context_fit x (bigram
    # log-probability of the candidate between its neighbours - the best candidate's)); 0 = blind
    context_fit: float = 0.0


_V1 = [
    # the habits of the common content-farm spinner: swaps nearly anything it has an entry for
    Profile("synonym-swap.v1", never_swap=False),
    # a spinner that prefers paraphrases: more phrases, fillers and expanded contractions
    Profile("phrase-heavy.v1", top_k=15, phrase_bias=3.0, fillers=0.12, contractions=0.9, articles=0.6,
            never_swap=False),
    # a cautious spinner: leaves quotes and names alone, takes the first synonym
    Profile("first-synonym.v1", top_k=1, reuse=1.0, names=0.0, quotes=False, fillers=0.0, rate_jitter=0.2,
            articles=0.0, never_swap=False),
]
#: Profiles replaced by a newer version: still accepted by name, so old signatures can be reproduced.
RETIRED_PROFILES: dict[str, Profile] = {p.name: p for p in _V1}
#: The current profiles ("all profiles" in training and evaluation).
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        # v2 of the three above: day and month names are never swapped (rules.NEVER_SWAP)
        *(replace(p, name=p.name.replace(".v1", ".v2"), never_swap=True) for p in _V1),
        # the commercial spinners content farms run: a favourite replacement per frequent news word
        # (rules.NEWS_SPINNER) that outweighs the thesaurus, names swapped, choices kept all article long
        Profile("content-farm.v1", rate=0.3, top_k=4, sharpness=2.0, reuse=0.95, names=0.9, fillers=0.03,
                tables=DEFAULT_TABLES + ("NEWS_SPINNER",), rule_bias=3.0),
        # a spinner with a large, loose thesaurus: any of 30 candidates, nearly uniformly; it teaches
        # models the general shape of a swap rather than one table's favourites
        Profile("wide-thesaurus.v1", top_k=30, sharpness=0.3, reuse=0.6),
        # synonym-swap.v2 that reads the sentence: it prefers the synonyms that fit their neighbours
        # (bigram counts of clean news), so its swaps are as hard to see as a real spinner's. The
        # 0.2.1 detector finds 0.49 of them at the medium rate, as of the real dev article's swapped
        # words, against 0.78 of synonym-swap.v2's (data/README.md, "How hard the swaps are to see").
        Profile("natural.v1", context_fit=1.0),
    ]
}
DEFAULT_PROFILE = "synonym-swap.v2"
#: The profiles the shipped models of degarble 0.2 were trained, calibrated and tuned on: the
#: default of the scripts in training/, so that their recorded runs replay exactly.
BASE_PROFILES: tuple[str, ...] = (
    "content-farm.v1", "first-synonym.v2", "phrase-heavy.v2", "synonym-swap.v2", "wide-thesaurus.v1",
)

# Titles before a person's name: the capitalised word after them is a name ("President Trump").
_TITLES = {
    "president", "mr", "mrs", "ms", "dr", "prof", "sir", "dame", "lord", "lady", "king", "queen",
    "prince", "princess", "pope", "senator", "sen", "governor", "gov", "minister", "secretary",
    "chancellor", "mayor", "judge", "captain", "capt", "rep",
    "representative", "ambassador", "spokesman", "spokeswoman", "spokesperson", "chairman", "coach",
}
_QUOTE_RE = re.compile(r"“[^”]*”|\"[^\"\n]*\"|«[^»]*»")
_APOS = "’"


@dataclass
class _Site:
    i: int  # first token
    j: int  # last token (inclusive)
    key: str  # lowercased original, the lookup key
    cands: list[tuple[str, float]]
    kind: str  # "word", "contraction", "number", "percent"


def resolve_rate(rate: float | str | None, profile: Profile) -> float:
    """A rate given as a number, a name in :data:`RATES`, or ``None`` (the profile's default)."""
    if rate is None:
        return profile.rate
    if isinstance(rate, str):
        if rate in RATES:
            return RATES[rate]
        try:
            rate = float(rate)
        except ValueError:
            raise ValueError(f"unknown rate {rate!r}; use a number in [0, 1] or one of {sorted(RATES)}") from None
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    return float(rate)


def get_profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile] if profile in PROFILES else RETIRED_PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown spinner profile {profile!r}; available: {sorted(PROFILES)}") from None


class Spinner:
    """A configured spinner. ``Spinner(profile, rate, seed).spin(text)`` -> :class:`Spun`."""

    def __init__(
        self,
        profile: str | Profile = DEFAULT_PROFILE,
        rate: float | str | None = None,
        seed: int = 13,
        thesaurus: Thesaurus | None = None,
        quotes: bool | None = None,
        bigrams: BigramModel | None = None,
    ):
        """``bigrams``: the language model a profile with ``context_fit`` judges fit with (default:
        :func:`default_bigrams`, the counts of clean news shipped with the default bundle)."""
        self.profile = get_profile(profile)
        self._quotes_override = quotes is not None and quotes != self.profile.quotes
        if quotes is not None:
            self.profile = replace(self.profile, quotes=quotes)
        self.rate = resolve_rate(rate, self.profile)
        self.seed = int(seed)
        self.thesaurus = thesaurus or load_thesaurus()
        self.rules = {
            k: [(c, w * self.profile.rule_bias) for c, w in cands]
            for k, cands in (rules.merged_rules(self.profile.tables) if self.profile.rules else {}).items()
        }
        self.max_n = max(self.thesaurus.max_key_words, 4)
        self.bigrams = None
        if self.profile.context_fit > 0:
            self.bigrams = bigrams if bigrams is not None else default_bigrams()

    def signature(self) -> str:
        """``spin:NAME|thes:VERSION|rate:R|seed:S|v:DEGARBLE_VERSION`` (plus ``quotes:no`` when off,
        and ``lm:NAME`` for the bigram counts of a profile with ``context_fit``)."""
        sig = f"spin:{self.profile.name}|thes:{self.thesaurus.version}|rate:{self.rate:.2f}|seed:{self.seed}"
        if self._quotes_override:
            sig += "|quotes:" + ("yes" if self.profile.quotes else "no")
        if self.bigrams is not None:
            sig += f"|lm:{getattr(self.bigrams, 'name', 'custom')}"
        return sig + f"|v:{__version__}"

    # --- site finding -----------------------------------------------------------------------
    def _lookup(self, key: str, n: int) -> tuple[list[tuple[str, float]], str] | None:
        p = self.profile
        if self.profile.rules:
            if n == 1 and key in rules.CONTRACTIONS:
                return [(rules.CONTRACTIONS[key], 1.0)] + rules.EXTRA_EXPANSIONS.get(key, []), "contraction"
            if key in rules.EXPANSIONS:
                return [(rules.EXPANSIONS[key], 1.0)] + rules.EXTRA_EXPANSIONS.get(key, []), "contraction"
            if n == 1 and key in rules.NUMBER_WORDS and p.numbers > 0:
                return [(rules.NUMBER_WORDS[key], 1.0)], "number"
        cands = list(self.rules.get(key, [])) + self.thesaurus.candidates(key)
        if p.never_swap:
            cands = [(c, w) for c, w in cands if c not in rules.NEVER_SWAP]
        if not cands:
            return None
        return cands, "word"

    def _sites(self, text: str, toks: list[Token], keys: list[str], caps_ctx: list[bool]) -> list[list[_Site]]:
        """For each token (``keys``: their compare keys), the sites starting there, longest first."""
        protected = self._protected(text, toks, caps_ctx)
        out: list[list[_Site]] = [[] for _ in toks]
        for i in range(len(toks)):
            if protected[i]:
                continue
            for n in range(min(self.max_n, len(toks) - i), 0, -1):
                j = i + n - 1
                if any(protected[k] for k in range(i, j + 1)):
                    continue
                if n > 1 and any(text[toks[k].end : toks[k + 1].start] != " " for k in range(i, j)):
                    continue
                key = " ".join(keys[i : j + 1])
                hit = self._lookup(key, n)
                if hit is None and n == 1 and key.endswith("'s") and len(key) > 3:
                    # possessive of a swappable noun: swap the stem, keep "'s"
                    stem = self._lookup(key[:-2], 1)
                    if stem and stem[1] == "word":
                        apos = toks[i].text[-2]
                        poss = [(c + apos + "s", w) for c, w in stem[0]]
                        hit = (poss, "word") if poss else None
                if hit and hit[0]:
                    out[i].append(_Site(i, j, key, hit[0], hit[1]))
            if (
                keys[i] == "percent"
                and i > 0
                and keys[i - 1][:1].isdigit()
                and text[toks[i - 1].end : toks[i].start] == " "
                and self.profile.rules
            ):
                out[i].insert(0, _Site(i, i, "percent", [("%", 1.0)], "percent"))
        return out

    def _protected(self, text: str, toks: list[Token], caps_ctx: list[bool]) -> list[bool]:
        """Tokens the spinner never touches: names, acronyms, digits, quotes if the profile says so."""
        starts = {s for s, _ in sentences(text)}
        sent_initial = [False] * len(toks)
        si = sorted(starts)
        k = 0
        for idx, t in enumerate(toks):
            while k < len(si) and si[k] <= t.start:
                sent_initial[idx] = True
                k += 1
        # all-caps headlines: spin them, and write replacements in capitals
        quoted = [False] * len(toks)
        if not self.profile.quotes:
            spans = [m.span() for m in _QUOTE_RE.finditer(text)]
            for idx, t in enumerate(toks):
                quoted[idx] = any(a <= t.start < b for a, b in spans)
        caps = [t.text[:1].isupper() and not sent_initial[i] and not caps_ctx[i] for i, t in enumerate(toks)]

        def known(i: int) -> bool:
            key = compare_key(toks[i].text)
            return bool(self.thesaurus.candidates(key)) or key in self.rules

        prot = []
        for i, t in enumerate(toks):
            w = t.text
            letters = [c for c in w if c.isalpha()]
            if quoted[i] or not letters or any(c.isdigit() for c in w) or (
                self.profile.never_swap and compare_key(w) in rules.NEVER_SWAP
            ):
                prot.append(True)
                continue
            if "." in w or (len(letters) > 1 and all(c.isupper() for c in letters) and not caps_ctx[i]):
                prot.append(True)  # acronyms: U.S., NATO, FBI
                continue
            if caps[i]:
                # A capitalised word next to a capitalised word the thesaurus does not know is
                # part of a person or place name ("Mark Rutte", "New York"): leave it alone.
                near = [k for k in (i - 1, i + 1) if 0 <= k < len(toks) and caps[k]]
                gap_ok = [k for k in near if text[min(toks[k].end, t.end) : max(toks[k].start, t.start)] == " "]
                after_title = i > 0 and compare_key(toks[i - 1].text).rstrip(".") in _TITLES and (
                    text[toks[i - 1].end : t.start] in (" ", ". ")
                )
                # acronym neighbours ("CBS News") do not make a person name
                named = [k for k in gap_ok if not toks[k].text.isupper()]
                # whether ordinary words inside names get swapped is a per-word habit of the profile
                habit = random.Random(f"{self.seed}|names|{compare_key(w)}").random() < self.profile.names
                if any(not known(k) for k in named) or not known(i) or after_title or not habit:
                    prot.append(True)
                    continue
            prot.append(False)
        return prot

    @staticmethod
    def _caps_flags(text: str, toks: list[Token]) -> list[bool]:
        """Per token: is it inside an all-caps sentence (a headline)? Those are spun in capitals."""
        flags = [False] * len(toks)
        for a, b in sentences(text):
            letters = [c for c in text[a:b] if c.isalpha()]
            if len(letters) > 8 and sum(c.isupper() for c in letters) / len(letters) > 0.9:
                for k, t in enumerate(toks):
                    if a <= t.start < b:
                        flags[k] = True
        return flags

    # --- choosing ---------------------------------------------------------------------------
    def _choose(self, site: _Site, rng: random.Random, memo: dict[str, str], keys: list[str]) -> str | None:
        p = self.profile
        if site.kind == "contraction" and rng.random() > p.contractions:
            return None
        if site.kind == "number" and rng.random() > p.numbers:
            return None
        if site.key in memo and rng.random() < p.reuse:
            return memo[site.key]
        cands = site.cands[: max(1, p.top_k)]
        if not cands:
            return None
        weights = [max(w, 1e-6) ** p.sharpness * (p.phrase_bias if " " in c else 1.0) for c, w in cands]
        if self.bigrams is not None and site.kind == "word" and len(cands) > 1:
            prev = keys[site.i - 1] if site.i > 0 else BOS
            nxt = keys[site.j + 1] if site.j + 1 < len(keys) else EOS
            fit = self.bigrams.chain_logprob(prev, [compare_key(c).split() for c, _ in cands], nxt)
            weights = [w * math.exp(p.context_fit * f) for w, f in zip(weights, (fit - fit.max()).tolist())]
        choice = rng.choices([c for c, _ in cands], weights=weights)[0]
        memo[site.key] = choice
        return choice

    def _render(self, original: str, choice: str, toks: list[Token], site: _Site, caps: bool) -> str:
        if site.kind in ("number", "percent"):
            return choice
        first = toks[site.i].text
        if caps:
            return choice.upper()
        if "’" in original and "'" in choice:
            choice = choice.replace("'", _APOS)
        span = toks[site.i : site.j + 1]
        if len(span) > 1 and all(t.text[:1].isupper() for t in span):
            return " ".join(w[:1].upper() + w[1:] for w in choice.split())  # a name: Title Case
        if first == "I" and choice.startswith("i "):
            return "I" + choice[1:]
        out = match_case(first, choice)
        # "i'm" -> "i am": the pronoun stays capitalised wherever it lands
        return re.sub(r"\bi\b", "I", out) if site.kind == "contraction" else out

    # --- the whole pass ---------------------------------------------------------------------
    def spin(self, text: str) -> Spun:
        """Spin ``text``; return the spun text, gold edits (offsets into the spun text) and signature."""
        if not isinstance(text, str):
            raise TypeError(f"spin() needs a str, got {type(text).__name__}")
        seed_str = f"{self.profile.name}|{self.seed}|{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()}"
        rng = random.Random(seed_str)
        toks = words(text)
        keys = [compare_key(t.text) for t in toks]
        caps_ctx = self._caps_flags(text, toks)
        sites = self._sites(text, toks, keys, caps_ctx)
        memo: dict[str, str] = {}
        changes: list[tuple[int, int, str]] = []  # (start, end, replacement) in the original text
        para_q = self._paragraph_rates(text, toks, sites, rng)
        i = 0
        while i < len(toks):
            q = para_q(toks[i].start)
            done = False
            for site in sites[i]:
                if rng.random() >= q * (1.0 if site.j == site.i else min(1.0, 1.0 + 0.0)):
                    continue
                choice = self._choose(site, rng, memo, keys)
                if choice is None:
                    continue
                if site.kind == "percent":
                    start, end = toks[site.i - 1].end, toks[site.i].end
                else:
                    start, end = toks[site.i].start, toks[site.j].end
                original = text[start:end]
                rendered = self._render(original, choice, toks, site, caps_ctx[site.i])
                if compare_key(rendered) == compare_key(original):
                    continue
                changes.append((start, end, rendered))
                self._maybe_fix_article(text, toks, site.i, rendered, changes, rng)
                i = site.j + 1
                done = True
                break
            if done:
                continue
            # fillers: after a copula/modal/"to", before an ordinary lowercase word
            if (
                self.profile.fillers > 0
                and i + 1 < len(toks)
                and compare_key(toks[i].text) in rules.FILLER_AFTER
                and text[toks[i].end : toks[i + 1].start] == " "
                and toks[i + 1].text.isalpha()
                and toks[i + 1].text.islower()
                and toks[i + 1].text not in rules.NO_FILLER_BEFORE
                and rng.random() < self.profile.fillers * min(1.0, q / max(self.rate, 1e-6))
            ):
                filler = rng.choices([f for f, _ in rules.FILLERS], [w for _, w in rules.FILLERS])[0]
                pos = toks[i + 1].start
                changes.append((pos, pos, filler + " "))
            i += 1
        return self._build(text, changes)

    def _maybe_fix_article(self, text, toks, i, rendered, changes, rng) -> None:
        """Some spinners repair "a"/"an" before the word they swapped; most leave it broken."""
        if i == 0 or self.profile.articles <= 0 or text[toks[i - 1].end : toks[i].start] != " ":
            return
        art = toks[i - 1].text
        if art.lower() not in ("a", "an") or (changes and changes[-2:-1] and changes[-2][1] > toks[i - 1].start):
            return
        want = "an" if rendered[:1].lower() in "aeio" else "a"
        if art.lower() == want or rng.random() >= self.profile.articles:
            return
        changes.insert(len(changes) - 1, (toks[i - 1].start, toks[i - 1].end, match_case(art, want)))

    def _paragraph_rates(self, text, toks, sites, rng):
        """Per-paragraph chance that a site is taken, so the paragraph's changed share ~ rate."""
        from ..text import paragraphs

        paras = paragraphs(text) or [(0, len(text))]
        qs = []
        for a, b in paras:
            idx = [k for k, t in enumerate(toks) if a <= t.start < b]
            n_words = len(idx)
            swappable = sum(1 for k in idx if sites[k])
            jitter = 1.0 + rng.uniform(-self.profile.rate_jitter, self.profile.rate_jitter)
            if rng.random() < self.profile.untouched or swappable == 0:
                qs.append((a, b, 0.0))
                continue
            qs.append((a, b, min(1.0, self.rate * jitter * n_words / swappable)))

        def q_at(pos: int) -> float:
            for a, b, q in qs:
                if a <= pos < b:
                    return q
            return 0.0

        return q_at

    def _build(self, text: str, changes: list[tuple[int, int, str]]) -> Spun:
        out, edits, pos, shift = [], [], 0, 0
        for start, end, rep in sorted(changes):
            out.append(text[pos:start])
            s = start + shift
            edits.append(Edit(s, s + len(rep), rep, text[start:end]))
            out.append(rep)
            shift += len(rep) - (end - start)
            pos = end
        out.append(text[pos:])
        return Spun("".join(out), edits, self.signature())


def spin(
    text: str,
    rate: float | str | None = None,
    seed: int = 13,
    profile: str | Profile = DEFAULT_PROFILE,
    quotes: bool | None = None,
) -> Spun:
    """Spin ``text`` like a real article spinner.

    :param text: clean English text (any length; paragraphs separated by newlines).
    :param rate: share of words to change, a number in [0, 1] or ``"light"``/``"medium"``/``"heavy"``;
        ``None`` takes the profile's default (0.25, as in real spun news).
    :param seed: with ``text`` and ``profile``, fixes the output exactly.
    :param profile: a name from :data:`PROFILES`.
    :param quotes: override the profile: ``False`` leaves quoted speech alone.
    :returns: :class:`~degarble.types.Spun` with the spun text and the gold edits that restore it.
    """
    return _cached_spinner(profile if isinstance(profile, str) else profile, rate, seed, quotes).spin(text)


_SPINNERS: dict = {}


@functools.cache
def default_bigrams() -> BigramModel:
    """The bigram model of clean news that ships in the default bundle's detector (its
    ``context.safetensors``), named by the first 12 hex digits of the file's SHA-256."""
    from ..bundle import DEFAULT_BUNDLE_DIR, MANIFEST_NAME
    from ..models.context import COUNTS_FILE, BigramModel, NgramCounts

    try:
        det = json.loads((DEFAULT_BUNDLE_DIR / MANIFEST_NAME).read_text())["detector"]
        path = DEFAULT_BUNDLE_DIR / det.get("dir", "detector") / det["context"].get("counts", COUNTS_FILE)
        data = path.read_bytes()  # read once: loaded and hashed
        counts = NgramCounts.load(path, data)
    except (OSError, KeyError, ValueError) as e:
        raise RuntimeError(f"spinner profiles with context_fit need the bigram counts of the default bundle "
                           f"({DEFAULT_BUNDLE_DIR}): {e}") from e
    model = BigramModel(counts)
    model.name = "en-news:" + hashlib.sha256(data).hexdigest()[:12]
    return model


def _cached_spinner(profile, rate, seed, quotes) -> Spinner:
    key = (profile, rate, seed, quotes)
    sp = _SPINNERS.get(key)
    if sp is None:
        if len(_SPINNERS) > 256:
            _SPINNERS.clear()
        sp = _SPINNERS[key] = Spinner(profile, rate, seed, quotes=quotes)
    return sp
