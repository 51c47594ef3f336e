"""Tests for degarble.score: literal, hand-computed expected values (sacrebleu's test style)."""

import json
import math
from pathlib import Path

import pytest

from degarble import score
from degarble.score import Opcode, Signature
from degarble.types import Span

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "dev" / "seed_dev.jsonl"


# --------------------------------------------------------------------------------------------------
# alignment and gold labels

test_align_cases = [
    ("the cat sat", "The cat sat", [("equal", 0, 3, 0, 3)]),
    (
        "deputy overseas minister instructed",
        "deputy foreign minister told",
        [("equal", 0, 1, 0, 1), ("replace", 1, 2, 1, 2), ("equal", 2, 3, 2, 3), ("replace", 3, 4, 3, 4)],
    ),
    ("it’s a “test”", "It's a \"test\"", [("equal", 0, 3, 0, 3)]),
    ("so as to go", "to go", [("delete", 0, 2, 0, 0), ("equal", 2, 4, 0, 2)]),
    ("the way", "the same way", [("equal", 0, 1, 0, 1), ("insert", 1, 1, 1, 2), ("equal", 1, 2, 2, 3)]),
    ("", "", []),
]


@pytest.mark.parametrize("spun, original, expected", test_align_cases)
def test_align_words(spun, original, expected):
    assert score.align_words(spun, original) == [Opcode(*op) for op in expected]


test_token_label_cases = [
    ("He mentioned the battle", "He said the war", [0, 1, 0, 1]),
    ("probably the most acute", "the most acute", [1, 0, 0, 0]),
    ("the Common Meeting voted", "the General Assembly voted", [0, 1, 1, 0]),
    ("A B", "a b", [0, 0]),
    ("take care of the deal", "deal with the deal", [1, 1, 1, 0, 0]),
    ("", "", []),
]


@pytest.mark.parametrize("spun, original, expected", test_token_label_cases)
def test_token_labels(spun, original, expected):
    assert score.token_labels(spun, original) == expected


test_label_span_cases = [
    ("the Common Meeting will vote", [0, 1, 1, 0, 0], [(4, 18)]),
    ("a b c", [1, 0, 1], [(0, 1), (4, 5)]),
    ("x y", [0, 0], []),
    ("White Home, said", [0, 1, 1], [(6, 16)]),
    ("", [], []),
]


@pytest.mark.parametrize("text, labels, expected", test_label_span_cases)
def test_label_spans(text, labels, expected):
    assert score.label_spans(text, labels) == expected


def test_label_spans_wrong_length():
    with pytest.raises(ValueError):
        score.label_spans("a b", [1])


test_spans_to_labels_cases = [
    ("the Common Meeting", [(4, 10)], [0, 1, 0]),
    ("the Common Meeting", [(5, 6)], [0, 1, 0]),
    ("the Common Meeting", [(3, 4)], [0, 0, 0]),  # only the space between words
    ("the Common Meeting", [(0, 18)], [1, 1, 1]),
    ("the Common Meeting", [Span(11, 18, 0.9)], [0, 0, 1]),
    ("the Common Meeting", [{"start": 0, "end": 3, "score": 0.7}], [1, 0, 0]),
    ("the Common Meeting", [], [0, 0, 0]),
]


@pytest.mark.parametrize("text, spans, expected", test_spans_to_labels_cases)
def test_spans_to_labels(text, spans, expected):
    assert score.spans_to_labels(text, spans) == expected


def test_gold_spans_round_trip():
    spun, original = "the Common Meeting voted", "the General Assembly voted"
    labels = score.token_labels(spun, original)
    assert score.spans_to_labels(spun, score.label_spans(spun, labels)) == labels


# --------------------------------------------------------------------------------------------------
# detection

test_auroc_cases = [
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),
    ([0.5, 0.5], [0, 1], 0.5),
    ([1, 2, 3], [0, 0, 1], 1.0),
    ([3, 2, 1], [0, 0, 1], 0.0),
    ([0.2, 0.2, 0.9, 0.2], [0, 1, 1, 0], 0.75),  # two tied pairs count half each
    ([0.0, 0.0, 0.0], [1, 0, 1], 0.5),
]


@pytest.mark.parametrize("scores, labels, expected", test_auroc_cases)
def test_auroc(scores, labels, expected):
    assert score.auroc(scores, labels) == pytest.approx(expected)


def test_auroc_one_class_is_nan():
    assert math.isnan(score.auroc([0.1, 0.9], [1, 1]))


test_binary_prf_cases = [
    # pred, gold, (P, R, F1, FPR), (tp, fp, fn, tn)
    ([1, 1, 0, 0, 1], [1, 0, 1, 0, 1], (2 / 3, 2 / 3, 2 / 3, 0.5), (2, 1, 1, 1)),
    ([0, 0], [1, 0], (1.0, 0.0, 0.0, 0.0), (0, 0, 1, 1)),
    ([1, 1], [0, 0], (0.0, 1.0, 0.0, 1.0), (0, 2, 0, 0)),
    ([1, 0, 0, 0], [1, 1, 0, 0], (1.0, 0.5, 2 / 3, 0.0), (1, 0, 1, 2)),
]


@pytest.mark.parametrize("pred, gold, rates, counts", test_binary_prf_cases)
def test_binary_prf(pred, gold, rates, counts):
    s = score.binary_prf(pred, gold)
    assert (s.precision, s.recall, s.f1, s.fpr) == pytest.approx(rates)
    assert (s.tp, s.fp, s.fn, s.tn) == counts


test_prf_cases = [
    # tp, fp, fn, beta, (P, R, F)
    (1, 1, 3, 0.5, (0.5, 0.25, 0.15625 / 0.375)),
    (1, 1, 3, 1.0, (0.5, 0.25, 1 / 3)),
    (0, 0, 5, 0.5, (1.0, 0.0, 0.0)),
    (0, 0, 0, 0.5, (1.0, 1.0, 1.0)),
    (3, 1, 0, 0.5, (0.75, 1.0, 1.25 * 0.75 / (0.25 * 0.75 + 1.0))),
]


@pytest.mark.parametrize("tp, fp, fn, beta, expected", test_prf_cases)
def test_prf(tp, fp, fn, beta, expected):
    s = score.prf(tp, fp, fn, beta=beta)
    assert (s.precision, s.recall, s.f) == pytest.approx(expected)


test_token_prf_cases = [
    # one hit (mentioned), one miss (battle), one false alarm (cat)
    (
        ["He mentioned the battle", "the cat sat"],
        [[(3, 12)], [(4, 7)]],
        [[0, 1, 0, 1], [0, 0, 0]],
        (0.5, 0.5, 0.5, 1, 1, 1),
    ),
    (["a b c"], [[]], [[0, 0, 0]], (1.0, 1.0, 1.0, 0, 0, 0)),
    (["a b c"], [[(0, 5)]], [[0, 1, 0]], (1 / 3, 1.0, 0.5, 1, 2, 0)),
]


@pytest.mark.parametrize("texts, spans, gold, expected", test_token_prf_cases)
def test_token_prf(texts, spans, gold, expected):
    s = score.token_prf(texts, spans, gold)
    assert (s.precision, s.recall, s.f, s.tp, s.fp, s.fn) == pytest.approx(expected)


def test_detection_scores():
    d = score.detection_scores([0.9, 0.6, 0.4, 0.1], [1, 0, 1, 0], threshold=0.5)
    assert (d["precision"], d["recall"], d["fpr"], d["auroc"]) == pytest.approx((0.5, 0.5, 0.5, 0.75))
    assert d["threshold"] == 0.5 and d["n"] == 4


def test_precision_recall_curve():
    c = score.precision_recall_curve([0.9, 0.6, 0.4, 0.1], [1, 0, 1, 0])
    assert c["thresholds"] == [0.9, 0.6, 0.4, 0.1]
    assert c["precision"] == pytest.approx([1.0, 0.5, 2 / 3, 0.5])
    assert c["recall"] == pytest.approx([0.5, 0.5, 1.0, 1.0])


# --------------------------------------------------------------------------------------------------
# restoration

test_edit_triple_cases = [
    ("He mentioned the battle", "He said the war", {(1, 2, "said"), (3, 4, "war")}),
    ("so as to go", "to go", {(0, 2, "")}),
    ("the way", "the same way", {(1, 1, "same")}),
    ("White Home", "White House", {(1, 2, "house")}),
    ("the Common Meeting", "the General Assembly", {(1, 3, "general assembly")}),
    ("It’s fine", "it's fine", set()),
]


@pytest.mark.parametrize("source, target, expected", test_edit_triple_cases)
def test_edit_triples(source, target, expected):
    assert score.edit_triples(source, target) == expected


test_edit_prf_cases = [
    # spun, original, restored, (P, R, F0.5)
    ("He mentioned the battle", "He said the war", "He said the conflict", (0.5, 0.5, 0.5)),
    ("He mentioned the battle", "He said the war", "He mentioned the battle", (1.0, 0.0, 0.0)),
    ("He mentioned the battle", "He said the war", "He said the war", (1.0, 1.0, 1.0)),
    # touching an unspun word merges into one wrong edit (she said) next to a right one (war)
    ("He mentioned the battle", "He said the war", "She said the war", (0.5, 0.5, 0.5)),
    ("He mentioned the battle", "He said the war", "He mentioned a battle", (0.0, 0.0, 0.0)),
]


@pytest.mark.parametrize("spun, original, restored, expected", test_edit_prf_cases)
def test_edit_prf(spun, original, restored, expected):
    s = score.edit_prf([spun], [original], [restored])
    assert s.beta == 0.5
    assert (s.precision, s.recall, s.f) == pytest.approx(expected)


test_wer_token_cases = [
    ("Hello, world!", ["hello", ",", "world", "!"]),
    ("“The” U.S. – 1,200", ['"', "the", '"', "u.s.", "-", "1,200"]),
    ("face-to-face", ["face", "-", "to", "-", "face"]),
    ("", []),
]


@pytest.mark.parametrize("text, expected", test_wer_token_cases)
def test_wer_tokens(text, expected):
    assert score.wer_tokens(text) == expected


test_word_error_cases = [
    ("the cat sat", "the cat sat on the mat", (3, 6)),
    ("a b c", "a x c", (1, 3)),
    ("He said, “no.”", 'he said, "no."', (0, 7)),
    ("", "a b", (2, 2)),
    ("a b", "", (2, 0)),
]


@pytest.mark.parametrize("hyp, ref, expected", test_word_error_cases)
def test_word_errors(hyp, ref, expected):
    assert score.word_errors(hyp, ref) == expected


test_wer_cases = [
    (["a b c", "x"], ["a x c", "x y"], 0.4),
    (["a b c"], ["a b c"], 0.0),
    (["a, b"], ["a b"], 0.5),
]


@pytest.mark.parametrize("hyps, refs, expected", test_wer_cases)
def test_wer(hyps, refs, expected):
    assert score.wer(hyps, refs) == pytest.approx(expected)


test_sacrebleu_cases = [
    # BLEU: 1- to 4-gram precisions 4/5, 3/4, 2/3, 1/2, no brevity penalty -> 0.2 ** 0.25
    ("bleu", ["a b c d e"], ["a b c d f"], 100 * 0.2**0.25),
    ("bleu", ["the cat sat down"], ["the cat sat down"], 100.0),
    ("bleu", ["the cat sat"], ["the cat sat"], 0.0),  # no 4-gram at all: corpus BLEU is 0
    # chrF2: char 1-, 2-, 3-gram P = R = 2/3, 1/2, 0 (effective order 3) -> mean 7/18
    ("chrf", ["abc"], ["abd"], 100 * 7 / 18),
    ("chrf", ["the cat"], ["the cat"], 100.0),
]


@pytest.mark.parametrize("metric, hyps, refs, expected", test_sacrebleu_cases)
def test_sacrebleu_metrics(metric, hyps, refs, expected):
    s = getattr(score, metric)(hyps, refs)
    assert s.score == pytest.approx(expected)
    assert "nrefs:1" in s.signature and "version:" in s.signature


test_exact_match_cases = [
    (["He said “no”.", "a b"], ['he said "no".', "a c"], 0.5),
    (["a b."], ["a b"], 0.0),  # punctuation counts
    ([], [], 0.0),
]


@pytest.mark.parametrize("hyps, refs, expected", test_exact_match_cases)
def test_exact_match(hyps, refs, expected):
    assert score.exact_match(hyps, refs) == pytest.approx(expected)


def test_restoration_scores():
    s = score.restoration_scores(["He mentioned the battle."], ["He said the war."], ["He said the battle."])
    # tokens: he said the war . -> spun has 2 errors, restored 1, of 5 reference tokens
    assert s["wer_spun"] == pytest.approx(0.4)
    assert s["wer_restored"] == pytest.approx(0.2)
    assert s["wer_reduction"] == pytest.approx(0.5)
    assert (s["edit"]["precision"], s["edit"]["recall"]) == pytest.approx((1.0, 0.5))
    assert s["exact_match"] == 0.0 and s["n"] == 1
    assert s["bleu"]["signature"].startswith("BLEU|") and s["chrf"]["signature"].startswith("chrF2|")


def test_edit_recall_breakdown_puts_each_gold_edit_in_one_class():
    two = "He mentioned the battle.\n\nThe Common Meeting will vote."
    orig = "He said the war.\n\nThe General Assembly will vote."
    out = "He said the fight.\n\nThe Common Meeting will vote."
    para1, para2 = (0, 24), (26, len(two))
    # "mentioned" restored; "battle" flagged but written wrongly; "Common Meeting" sits in a
    # paragraph judged clean (its flag does not matter there)
    spans = [(3, 12), (17, 23), (30, 44)]
    b = score.edit_recall_breakdown([two], [orig], [out], [spans], [[(*para1, True), (*para2, False)]])
    assert (b["gold"], b["restored"], b["flagged_not_restored"], b["paragraph_not_flagged"]) == (3, 1, 1, 1)
    assert b["words_not_flagged"] == 0 and b["shares"]["restored"] == pytest.approx(1 / 3)
    # the same paragraph judged spun, with "battle" not flagged
    b = score.edit_recall_breakdown([two], [orig], [out], [[(3, 12), (30, 44)]], [[(0, len(two), True)]])
    assert (b["restored"], b["words_not_flagged"], b["flagged_not_restored"], b["paragraph_not_flagged"]) == (1, 1, 1, 0)


def test_edit_recall_breakdown_deleted_word_counts_as_flagged_by_a_neighbour():
    # the spinner dropped "the": restoring inserts it between "said" and "war"
    spun, orig = ["He said war ended."], ["He said the war ended."]
    flagged = score.edit_recall_breakdown(spun, orig, spun, [[(8, 11)]], [[(0, 18, True)]])
    assert flagged["flagged_not_restored"] == 1
    missed = score.edit_recall_breakdown(spun, orig, spun, [[]], [[(0, 18, True)]])
    assert missed["words_not_flagged"] == 1
    assert score.edit_recall_breakdown([""], [""], [""], [[]], [[]])["gold"] == 0


test_clean_preservation_cases = [
    # clean, outputs, (changed_share, changed_words_per_100)
    (["The cat sat.", "A dog ran."], ["The cat sat.", "A hound ran."], (0.5, 100 / 6)),
    (["It’s fine."], ["It's fine."], (1.0, 0.0)),  # byte change, no word change
    (["a b c d"], ["a b c d"], (0.0, 0.0)),
    (["a b c d"], ["a c d"], (1.0, 25.0)),
]


@pytest.mark.parametrize("clean, outputs, expected", test_clean_preservation_cases)
def test_clean_preservation(clean, outputs, expected):
    s = score.clean_preservation(clean, outputs)
    assert (s["changed_share"], s["changed_words_per_100"]) == pytest.approx(expected)


# --------------------------------------------------------------------------------------------------
# signatures

test_signature_cases = [
    (
        Signature("bbc-test.v1/medium", spin="synonym-swap.v1", rate=0.2, seed=13, model="en-small",
                  bundle_hash="3f2a9c1e77aa", version="0.1.0", extra={"thes": "en.v1"}),
        "degarble-eval|set:bbc-test.v1/medium|spin:synonym-swap.v1|thes:en.v1|rate:0.20|seed:13"
        "|model:en-small@3f2a9c1e|v:0.1.0",
    ),
    (
        Signature("seed-dev", spin="real", model="do-nothing", version="0.1.0"),
        "degarble-eval|set:seed-dev|spin:real|rate:-|seed:-|model:do-nothing|v:0.1.0",
    ),
]


@pytest.mark.parametrize("sig, expected", test_signature_cases)
def test_signature_format(sig, expected):
    assert sig.format() == expected
    assert str(sig) == expected


def test_signature_parse_spin():
    kw = Signature.parse_spin("spin:synonym-swap.v1|thes:en.v1|rate:0.35|seed:7|v:0.1.0")
    assert kw == {"spin": "synonym-swap.v1", "rate": 0.35, "seed": 7, "extra": {"thes": "en.v1"}}
    sig = Signature("x", model="m", version="0.1.0", **kw)
    assert sig.format() == "degarble-eval|set:x|spin:synonym-swap.v1|thes:en.v1|rate:0.35|seed:7|model:m|v:0.1.0"


# --------------------------------------------------------------------------------------------------
# the real dev article: doing nothing must reproduce the published figures


@pytest.mark.skipif(not DEV.exists(), reason="shared/dev/seed_dev.jsonl not present")
def test_dev_article_do_nothing():
    rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    spun = [r["spun"] for r in rows]
    original = [r["original"] for r in rows]
    s = score.restoration_scores(spun, original, spun)
    assert 100 * s["wer_spun"] == pytest.approx(31.2, abs=0.5)
    assert s["bleu"]["score"] == pytest.approx(44.0, abs=0.5)
    assert s["chrf"]["score"] == pytest.approx(66.2, abs=0.5)
    assert s["wer_reduction"] == 0.0
    assert (s["edit"]["precision"], s["edit"]["recall"], s["edit"]["f"]) == (1.0, 0.0, 0.0)


def test_suggestion_recall_counts_gold_edits_an_alternative_would_make():
    from degarble.types import Edit

    spun = "The big firm told overseas media."
    original = "The large firm told foreign media."
    b, o = spun.index("big"), spun.index("overseas")
    wrong = Edit(b, b + 3, "big", "huge", 0.6, alternatives=(Edit(b, b + 3, "big", "large", 0.3),))
    right = Edit(o, o + 8, "overseas", "foreign", 0.8, alternatives=(Edit(o, o + 8, "overseas", "abroad", 0.1),))
    r = score.suggestion_recall([spun], [original], [[right, wrong]])
    assert (r["gold"], r["chosen"], r["in_suggestions"]) == (2, 1, 2)
    assert (r["edits"], r["edits_with_alternatives"], r["rescued"]) == (2, 2, 1)
    assert r["recall_chosen"] == 0.5 and r["recall_in_suggestions"] == 1.0
    bare = score.suggestion_recall([spun], [original], [[Edit(b, b + 3, "big", "huge", 0.6)]])
    assert (bare["chosen"], bare["in_suggestions"], bare["edits_with_alternatives"], bare["rescued"]) == (0, 0, 0, 0)
