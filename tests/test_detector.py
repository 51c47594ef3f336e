"""The detector: windowing, offsets, aggregation, the API and the CLI on real model code.

Mechanics run on a tiny random-weight bundle (conftest.tiny_bundle); quality checks run on the
shipped bundle and are skipped where it has not been trained yet.
"""

from __future__ import annotations

import json

import pytest

import degarble
from degarble.bundle import DEFAULT_BUNDLE_DIR
from degarble.models.detector import encode_words, merge_spans, normalize_with_map, paragraph_score
from degarble.text import Token, words

SHIPPED = (DEFAULT_BUNDLE_DIR / "degarble.json").is_file()
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="no trained bundle shipped yet")


# --- pure helpers ----------------------------------------------------------------------------
def test_normalize_with_map_unescapes_entities_and_maps_offsets_back():
    text = "AT&amp;T&#8217;s deal &nbsp;ok &bogus; end"
    norm, idx = normalize_with_map(text)
    assert norm == "AT&T’s deal \u00a0ok &bogus; end"
    assert len(idx) == len(norm) + 1
    # "deal" in the normalised text maps to "deal" in the input
    a = norm.index("deal")
    assert text[idx[a] : idx[a + 4]] == "deal"
    assert idx[-1] == len(text)


@pytest.mark.parametrize(
    ("probs", "k", "expected"),
    [([], 3, 0.0), ([0.6], 3, 0.2), ([0.9, 0.1, 0.5, 0.7], 3, 0.7), ([1.0, 1.0, 0.0, 0.0], 2, 1.0), ([0.3, 0.6], 3, 0.3)],
)
def test_paragraph_score_is_mean_of_top_k(probs, k, expected):
    assert paragraph_score(probs, k) == pytest.approx(expected)


def test_paragraph_score_top_share_grows_with_length():
    # 20 words, share 0.2: the top 4 count; a long clean paragraph's two false alarms weigh less
    clean_long = [0.9, 0.8] + [0.05] * 18
    assert paragraph_score(clean_long, 3, 0.2) == pytest.approx((0.9 + 0.8 + 0.05 + 0.05) / 4)
    assert paragraph_score(clean_long, 3, 0.2) < paragraph_score(clean_long, 3)
    assert paragraph_score([0.9, 0.8, 0.7, 0.6], 3, 0.2) == paragraph_score([0.9, 0.8, 0.7, 0.6], 3)  # short: top-k
    assert paragraph_score([], 3, 0.2) == 0.0


def test_evidence_score_adds_up_confident_swaps_per_square_root_of_length():
    import math

    ev = lambda p: paragraph_score(p, method="evidence")  # noqa: E731
    assert ev([]) == 0.0
    assert ev([0.9] + [0.0] * 99) == pytest.approx(1 - math.exp(math.log(0.1) / 10))
    # one false alarm in a long clean paragraph weighs less than in a short one ...
    assert ev([0.9] + [0.02] * 99) < ev([0.9] + [0.02] * 20)
    # ... while swaps all through a long paragraph keep it high
    assert ev([0.9, 0.02, 0.02, 0.02, 0.02] * 20) > 0.9
    # a short line is scored as if it had min_words words: one doubtful word is weak evidence
    assert ev([0.5]) == pytest.approx(1 - math.exp(-math.log(2) / math.sqrt(10)))
    assert ev([1.0]) < 1.0  # probabilities are clipped: no infinite evidence
    with pytest.raises(ValueError, match="unknown paragraph score"):
        paragraph_score([0.5], method="max")


def test_evidence_max_weighs_the_evidence_and_the_likeliest_word():
    import math

    from degarble.models.context import logit

    w = [0.8, 0.3, 0.9]
    score = lambda p: paragraph_score(p, method="evidence_max", weights=w)  # noqa: E731
    probs = [0.9] + [0.02] * 30
    ev = paragraph_score(probs, method="evidence")
    z = 0.8 * logit(ev) + 0.3 * logit(0.9) + 0.9
    assert score(probs) == pytest.approx(1 / (1 + math.exp(-z)))
    # same evidence, a more suspicious single word: higher (a lightly spun paragraph's one swap)
    assert score([0.95] + [0.02] * 30) > score(probs)
    assert 0.0 < score([]) < 1.0  # no words: the bias alone (evidence 0, no word)
    for bad in (None, [0.8, 0.3]):
        with pytest.raises(ValueError, match="three weights"):
            paragraph_score(probs, method="evidence_max", weights=bad)


def test_detector_with_evidence_max_needs_its_weights(tmp_path, sample_paragraphs):
    from conftest import make_tiny_detector_dir

    from degarble.models.detector import Detector

    folder = make_tiny_detector_dir(tmp_path / "det", sample_paragraphs)
    with pytest.raises(ValueError, match="three weights"):
        Detector.from_dir(folder, score="evidence_max")
    det = Detector.from_dir(folder, score="evidence_max", score_weights=[0.8, 0.3, 0.9])
    assert det.paragraph_score([0.9] + [0.02] * 30) == paragraph_score([0.9] + [0.02] * 30, method="evidence_max",
                                                                        weights=[0.8, 0.3, 0.9])


def test_merge_spans_joins_adjacent_flagged_words_only():
    text = "the Common Meeting will vote, he mentioned"
    toks = words(text)
    spans = merge_spans(text, toks, [0.1, 0.9, 0.8, 0.2, 0.1, 0.1, 0.7], 0.5)
    assert [(text[s.start : s.end], round(s.score, 2)) for s in spans] == [("Common Meeting", 0.9), ("mentioned", 0.7)]


def test_encode_words_windows_overlap_and_label_every_word_once():
    class Tok:  # a whitespace "tokenizer": one sub-word per word, two for long words
        cls_token_id, sep_token_id = 1, 2

        def __call__(self, text, add_special_tokens, return_offsets_mapping, verbose=True):
            ids, offs = [], []
            for t in words(text):
                ids.append(10)
                offs.append((t.start, t.start + min(4, len(t.text))))
                if len(t.text) > 4:
                    ids.append(11)
                    offs.append((t.start + 4, t.end))
            return {"input_ids": ids, "offset_mapping": offs}

    text = " ".join(f"word{i}x" for i in range(50))
    toks = words(text)
    wins = encode_words(Tok(), text, toks, max_length=12, stride=4, labels=[i % 2 for i in range(50)])
    assert all(len(w.input_ids) <= 12 for w in wins)
    covered = {wi for w in wins for wi in w.word_index if wi >= 0}
    assert covered == set(range(50))  # nothing truncated
    for w in wins:
        for wi, lab in zip(w.word_index, w.labels):
            assert lab == (-100 if wi < 0 else wi % 2)


# --- the model through the public API, tiny bundle ----------------------------------------------
def test_load_and_detect_contract(tiny_bundle):
    model = degarble.load(tiny_bundle)
    assert model.name == "tiny-test" and len(model.bundle_hash) == 8 and model.threshold == 0.5
    texts = ["The Common Meeting will vote on Monday.", "", "   \n ", "A second paragraph.\n\nAnd a third one here."]
    out = model.detect(texts)
    assert len(out) == len(texts)
    for text, d in zip(texts, out):
        assert 0.0 <= d.spun_score <= 1.0
        assert d.is_spun == (d.spun_score >= model.threshold)
        for s in d.spans:
            assert 0 <= s.start < s.end <= len(text) and 0 <= s.score <= 1
            assert text[s.start : s.end].strip() == text[s.start : s.end]
    assert out[1].spun_score == 0.0 and out[1].spans == []
    assert len(out[3].paragraphs) == 2
    one = degarble.detect(texts[0], model=tiny_bundle)
    assert one.spun_score == pytest.approx(out[0].spun_score, abs=1e-5)
    with pytest.raises(TypeError):
        model.detect("not a list")


def test_long_document_is_windowed_not_truncated(tiny_bundle):
    model = degarble.load(tiny_bundle)
    long = " ".join(["the minister said the meeting was possible"] * 300)  # ~2100 words, 32-token windows
    det = model.detector
    (toks, probs), = det.word_probabilities([long])
    assert len(probs) == len(words(long)) and all(p > 0 for p in probs)  # every word was scored
    # threshold 0 flags every word: spans must reach the end of the document
    d = model.detect([long], threshold=0.0)[0]
    assert d.is_spun


def test_offsets_index_the_raw_input_with_html_entities_and_curly_quotes(tiny_bundle):
    model = degarble.load(tiny_bundle)
    text = "“It&#8217;s over,” the minister said &amp; left — ALL CAPS HEADLINE HERE"
    det = model.detector
    det.word_threshold = 0.0  # flag everything, to check every offset
    try:
        d = model.detect([text])[0]
    finally:
        det.word_threshold = 0.5
    joined = " ".join(text[s.start : s.end] for s in d.spans)
    assert "It&#8217;s" in joined and "minister" in joined and "HEADLINE" in joined


def test_cli_detect_on_tiny_bundle(tiny_bundle, tmp_path, capsys):
    from degarble.cli import main

    inp = tmp_path / "in.jsonl"
    inp.write_text(
        json.dumps({"id": "a", "text": "The White Home said so.", "keep": 1}) + "\n"
        + "{not json\n"
        + json.dumps({"id": "c", "text": 5}) + "\n"
        + json.dumps({"id": "d", "text": ""}) + "\n",
        encoding="utf-8",
    )
    out, errs = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    code = main(["detect", str(inp), "--output", str(out), "--model", str(tiny_bundle), "--errors", str(errs)])
    assert code == 1  # some records failed, the rest were written
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "d"]
    assert rows[0]["keep"] == 1 and set(rows[0]) >= {"spun_score", "is_spun", "spans"}
    bad = [json.loads(line) for line in errs.read_text().splitlines()]
    assert [b["line"] for b in bad] == [2, 3]


# --- the shipped model ----------------------------------------------------------------------------
@needs_shipped
def test_shipped_bundle_flags_spun_news_and_passes_clean_news():
    clean = ("Russia's deputy foreign minister told state media on Saturday that preparations were "
             "underway for a meeting between the two presidents.")
    spun = degarble.spin(clean, rate="heavy", seed=3).text
    d_clean, d_spun = degarble.load().detect([clean, spun])
    assert d_spun.spun_score > d_clean.spun_score
    assert d_spun.spans


@needs_shipped
def test_shipped_bundle_manifest_has_calibrated_threshold_and_fits_budget():
    from degarble.bundle import read_manifest, verify

    m = verify(DEFAULT_BUNDLE_DIR)
    assert 0.0 < m.threshold < 1.0
    assert "calibration" in m.scores
    size = sum(p.stat().st_size for p in DEFAULT_BUNDLE_DIR.rglob("*") if p.is_file())
    assert size < 120 * 1024 * 1024
    assert read_manifest(DEFAULT_BUNDLE_DIR).spin_signature.startswith("spin:")


def test_token_is_public_for_offsets():
    assert Token(0, 1, "a").end == 1
