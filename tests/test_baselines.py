"""Tests for degarble.baselines: do-nothing and FGWS, on a tiny hand-made thesaurus."""

import pytest

from degarble import score
from degarble.baselines import FGWS, DoNothing, load_baseline
from degarble.edits import apply_edits

# word -> Zipf frequency, and the links of a tiny thesaurus (both directions are built below)
ZIPF = {"said": 6.0, "mentioned": 4.8, "stated": 4.5, "doable": 3.0, "possible": 5.4, "feasible": 3.9,
        "query": 3.6, "question": 5.3, "see": 6.1, "battle": 4.6, "war": 5.5, "grumpy": 2.5,
        "cross": 4.5, "big": 5.8}
LINKS = [("said", "mentioned"), ("said", "stated"), ("possible", "doable"), ("possible", "feasible"),
         ("question", "query"), ("war", "battle"), ("grumpy", "cross"), ("big", "large scale")]


class FakeThesaurus:
    version = "fake.v1"

    def neighbours(self, word):
        out = {b for a, b in LINKS if a == word} | {a for a, b in LINKS if b == word}
        return sorted(out)

    def zipf(self, word):
        return ZIPF.get(word, 0.0)


@pytest.fixture
def fgws():
    return FGWS.from_thesaurus(FakeThesaurus(), max_zipf=4.0, min_gain=1.0, threshold=0.1)


def test_do_nothing():
    m = DoNothing()
    texts = ["He mentioned it.", ""]
    assert [d.spun_score for d in m.detect(texts)] == [0.0, 0.0]
    assert [d.is_spun for d in m.detect(texts)] == [False, False]
    assert [r.text for r in m.restore(texts)] == texts
    assert all(r.edits == [] for r in m.restore(texts))


test_fgws_restore_cases = [
    # doable 3.0 -> possible 5.4 (gain 2.4); query 3.6 -> question 5.3 (1.7): both rarer than 4.0
    ("A doable query.", "A possible question."),
    # case is kept
    ("Doable? QUERY!", "Possible? QUERY!"),  # all-capital words are left alone (acronyms)
    ("Doable, doable.", "Possible, possible."),
    # mentioned 4.8 is not rarer than max_zipf 4.0; battle 4.6 neither
    ("He mentioned the battle.", "He mentioned the battle."),
    # grumpy 2.5 -> cross 4.5: gain 2.0, kept; "large scale" would be a phrase, never used
    ("A grumpy man.", "A cross man."),
    # feasible 3.9 -> possible 5.4 (gain 1.5)
    ("It is feasible", "It is possible"),
    ("Nothing here at all", "Nothing here at all"),
    ("", ""),
]


@pytest.mark.parametrize("text, expected", test_fgws_restore_cases)
def test_fgws_restore(fgws, text, expected):
    r = fgws.restore([text])[0]
    assert r.text == expected
    assert apply_edits(text, r.edits) == expected


test_fgws_detect_cases = [
    # text, spun_score (flagged / words), is_spun at threshold 0.1, flagged spans
    ("A doable query", 2 / 3, True, [(2, 8), (9, 14)]),
    ("one two three four five six seven eight nine doable", 0.1, True, [(45, 51)]),
    ("one two three four five six seven eight nine ten doable", 1 / 11, False, [(49, 55)]),
    ("He mentioned the battle", 0.0, False, []),
    ("", 0.0, False, []),
]


@pytest.mark.parametrize("text, expected_score, expected_spun, expected_spans", test_fgws_detect_cases)
def test_fgws_detect(fgws, text, expected_score, expected_spun, expected_spans):
    d = fgws.detect([text])[0]
    assert d.spun_score == pytest.approx(expected_score)
    assert d.is_spun is expected_spun
    assert [(s.start, s.end) for s in d.spans] == expected_spans
    assert all(0.5 < s.score < 1.0 for s in d.spans)


def test_fgws_span_score_is_frequency_share(fgws):
    # doable -> possible, gain 2.4 Zipf: the neighbour's share of the pair is 1 / (1 + 10 ** -2.4)
    span = fgws.detect(["doable"])[0].spans[0]
    assert span.score == pytest.approx(1 / (1 + 10**-2.4))


def test_fgws_scores_with_shared_scorer(fgws):
    spun, original = ["A doable query, he mentioned."], ["A possible question, he said."]
    restored = [r.text for r in fgws.restore(spun)]
    s = score.edit_prf(spun, original, restored)
    # adjacent swaps form one edit, (1, 3, "possible question"), which FGWS gets; "said" it misses
    assert (s.tp, s.fp, s.fn) == (1, 0, 1)


def test_fgws_hash_depends_on_settings():
    a = FGWS.from_thesaurus(FakeThesaurus())
    b = FGWS.from_thesaurus(FakeThesaurus(), max_zipf=3.0)
    assert a.bundle_hash != b.bundle_hash and len(a.bundle_hash) == 8
    assert a.config()["thesaurus"] == "fake.v1"


def test_fgws_needs_neighbours():
    with pytest.raises(TypeError):
        FGWS.from_thesaurus(object())


def test_load_baseline():
    assert load_baseline("do-nothing").name == "do-nothing"
    with pytest.raises(ValueError, match="do-nothing"):
        load_baseline("nope")


def test_fgws_on_bundled_thesaurus():
    # the real table: "doubtlessly" is rare and links to far more common words
    f = load_baseline("fgws")
    out = f.restore(["It was doubtlessly harmful."])[0]
    assert out.text != "It was doubtlessly harmful."
    assert f.restore(["The minister said on Saturday."])[0].text == "The minister said on Saturday."
