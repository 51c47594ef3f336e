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
