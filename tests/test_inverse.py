"""The inverted spinner tables: spun wording -> candidate originals."""

from degarble.spin import Spinner
from degarble.spin.inverse import load_inverse
from degarble.text import compare_key


def originals(span: str) -> list[str]:
    return [c for c, _ in load_inverse().candidates(span)]


def test_a_spun_word_leads_back_to_its_original():
    assert "foreign" in originals("overseas")
    assert "told" in originals("instructed")
    assert "news" in originals("Information")  # keys are compared case-folded
    assert "house" in originals("Home")


def test_rule_tables_are_inverted_too():
    assert originals("5") == ["five"]  # number words written as digits
    assert originals("%") == ["percent"]
    assert "it's" in originals("it is") and "it is" in originals("it's")  # contractions both ways
    assert "year" in originals("12 months")
    assert "" in originals("just")  # an inserted filler: its original is nothing


def test_runs_of_words_are_read_as_words_swapped_one_by_one():
    assert "general assembly" in originals("Common Meeting")
    assert "the most" in originals("probably the most")


def test_priors_are_probabilities_best_first_and_capped():
    inv = load_inverse()
    cands = inv.candidates("made")
    assert 0 < len(cands) <= inv.max_candidates
    priors = [p for _, p in cands]
    assert priors == sorted(priors, reverse=True) and all(0 < p <= 1 for p in priors)
    assert inv.candidates("zzzqx") == []


def test_a_limit_asks_for_more_or_fewer_than_the_default_cap():
    """The restorer asks for its bundle's number of candidates ("candidates" in its rank
    settings), which may exceed the table's default cap: the originals of common spun words are
    many, and at the default 24 the true one was missing for about a third of simulated swaps."""
    inv = load_inverse()
    many = inv.candidates("made", limit=60)
    assert len(many) > inv.max_candidates and len(many) <= 60
    assert many[: inv.max_candidates] == inv.candidates("made")  # the same order, only longer
    assert inv.candidates("made", limit=3) == many[:3]
    pair = inv.candidates("Common Meeting", limit=60)
    assert inv.max_candidates < len(pair) <= 60  # runs of words: the beam widens with the limit


def test_a_weight_on_the_original_reorders_and_reselects_candidates():
    """The prior P(span | original) alone puts rare originals with few synonyms first; a weight
    on the original (the restorer's unigram log probability) brings common ones forward, for
    single words and for each word of a run. The priors returned stay the tables'; no weight
    changes nothing."""
    inv = load_inverse()
    common = {"meeting": 0.0, "told": 0.0, "general": 0.0}

    def weight(original: str) -> float:  # a stand-in for frequency: known words score 0, others -20
        return sum(common.get(w, -20.0) for w in original.split()) if original else 0.0

    plain = dict(inv.candidates("instructed", limit=60))
    weighted = inv.candidates("instructed", limit=60, weight=weight)
    assert weighted[0][0] == "told" and all(plain[c] == p for c, p in weighted)
    assert sorted(weighted) == sorted(plain.items())  # the same 60 (all there are), reordered
    assert inv.candidates("instructed", limit=5, weight=None) == inv.candidates("instructed", limit=5)
    # a run of words: the beam keeps the combinations the weight favours
    run = [c for c, _ in inv.candidates("Common Meeting", limit=3, weight=weight)]
    assert run[0] == "general meeting"


def test_originals_of_simulated_single_word_swaps_are_found(sample_paragraphs):
    """Every single-word swap the simulator makes can be looked up backwards (uncapped lookup)."""
    inv = load_inverse()
    found = total = 0
    for k, text in enumerate(sample_paragraphs[:40]):
        spun = Spinner("synonym-swap.v2", rate="heavy", seed=k).spin(text)
        for e in spun.edits:
            if " " in e.before.strip() or " " in e.after.strip() or not e.before.strip() or not e.after.strip():
                continue
            total += 1
            found += compare_key(e.after) in [c for c, _ in inv.lookup(e.before)]
    assert total > 50
    assert found / total > 0.95, (found, total)
