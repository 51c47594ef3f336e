"""The detector's corpus evidence: n-gram counts, the inverted tables, features and the adjustment."""

import json
import shutil

import numpy as np
import pytest

import degarble
from degarble.bundle import read_manifest, save_bundle
from degarble.models.context import (
    COUNTS_FILE,
    FEATURES,
    INVERSE_FILE,
    ContextScorer,
    NgramCounts,
    read_inverse,
    sequence_keys,
    write_inverse,
)

CORPUS = [
    "the deputy foreign minister told state media",
    "the foreign minister told reporters",
    "a foreign minister met the deputy foreign minister",
    "the minister told state media on saturday",
]


def _counts(min_bigram_count=1) -> NgramCounts:
    return NgramCounts.from_sequences((sequence_keys(s.split()) for s in CORPUS), min_bigram_count)


def _scorer(tmp_path, weights=(1.0, 0.0, 1.0, 0.0, 0.0), bias=0.0, floor=0.0) -> ContextScorer:
    write_inverse(tmp_path / INVERSE_FILE, {"overseas": [("foreign", 0.5), ("abroad", 0.2)],
                                            "instructed": [("told", 0.3), ("", 0.1)]})
    return ContextScorer(_counts(), read_inverse(tmp_path / INVERSE_FILE), list(weights), bias, floor=floor)


def test_counts_count_unigrams_and_bigrams_and_drop_rare_bigrams(tmp_path):
    c = _counts(min_bigram_count=2)
    assert c.count("foreign") == 4 and c.count("minister") == 5
    assert c.count("foreign", "minister") == 4
    assert c.count("minister", "met") == 0  # seen once: below min_bigram_count
    assert c.count("nonexistent") == 0
    assert c.total == sum(len(s.split()) + 2 for s in CORPUS) and c.vocab == len({w for s in CORPUS for w in s.split()}) + 2
    c.save(tmp_path / COUNTS_FILE)
    back = NgramCounts.load(tmp_path / COUNTS_FILE)
    assert back.unigram(back.ids(["foreign", "the", "zzz"])).tolist() == [4, 4, 0]
    # arrays of pairs at once; an unknown word on either side counts 0
    a, b = back.ids(["foreign", "deputy", "zzz", "the"]), back.ids(["minister", "foreign", "minister", "zzz"])
    assert back.bigram(a, b).tolist() == [4, 2, 0, 0]
    assert (back.total, back.vocab, back.words) == (c.total, c.vocab, c.words)


def test_bigram_lookup_keeps_the_order_of_its_queries():
    # the lookup sorts its queries for speed: the answers must come back in the caller's order,
    # repeats and misses included, and match a pair-by-pair count
    c = _counts()
    vocab = sorted({w for s in CORPUS for w in s.split()}) + ["zzz"]
    rng = np.random.default_rng(7)
    firsts, seconds = rng.choice(vocab, 300).tolist(), rng.choice(vocab, 300).tolist()
    got = c.bigram(c.ids(firsts), c.ids(seconds)).tolist()
    assert got == [c.count(a, b) for a, b in zip(firsts, seconds)]
    assert sum(got) > 0 and 0 in got


def test_counts_refuse_words_they_cannot_store_and_old_files(tmp_path):
    with pytest.raises(ValueError, match="separator"):
        NgramCounts.from_sequences([sequence_keys(["a\x1fb"])])
    from safetensors.numpy import save_file

    save_file({"keys": np.zeros(1, dtype=np.uint64), "counts": np.zeros(1, dtype=np.uint32)}, str(tmp_path / "old.safetensors"))
    with pytest.raises(ValueError, match="older format.*fit_context"):
        NgramCounts.load(tmp_path / "old.safetensors")


def test_inverse_file_round_trip_and_possessives(tmp_path):
    s = _scorer(tmp_path)
    assert s.candidates("overseas") == [(["foreign"], 0.5), (["abroad"], 0.2)]
    assert s.candidates("instructed") == [(["told"], 0.3)]  # the empty (delete) candidate is dropped
    assert s.candidates("overseas's") == [(["foreign's"], 0.5), (["abroad's"], 0.2)]
    assert s.candidates("minister") == []


def test_write_inverse_keeps_the_best_by_prior_or_by_prior_and_weight(tmp_path):
    table = {"assembly": [("states general", 0.9), ("coven", 0.5), ("meeting", 0.1)], "aide": [("helper", 0.4)]}
    write_inverse(tmp_path / "a.tsv.gz", table, max_candidates=2)
    assert read_inverse(tmp_path / "a.tsv.gz") == {"assembly": "states general\t0.9\tcoven\t0.5", "aide": "helper\t0.4"}
    # a weight that favours common words brings "meeting" in; the kept ones stay in the table's order
    common = {"meeting": 0.0, "states general": -9.0, "coven": -6.0, "helper": -5.0}
    write_inverse(tmp_path / "b.tsv.gz", table, max_candidates=2, weight=common.get)
    assert read_inverse(tmp_path / "b.tsv.gz") == {"assembly": "coven\t0.5\tmeeting\t0.1", "aide": "helper\t0.4"}


def test_features_favour_the_original_collocation(tmp_path):
    s = _scorer(tmp_path)
    keys = "the deputy overseas minister instructed state media".split()
    f = s.features(keys)
    assert f.shape == (len(keys), len(FEATURES))
    gain, gain_prior, has = (f[:, FEATURES.index(n)] for n in ("gain", "gain_prior", "has_original"))
    assert gain[2] > 2 and gain[4] > 2  # "foreign minister", "minister told state" beat the swaps
    assert gain_prior[2] == pytest.approx(gain[2] + np.log(0.5 + 1e-3))
    assert has.tolist() == [0, 0, 1, 0, 1, 0, 0] and gain[0] == 0.0
    # limiting the work to some words gives those words' rows and leaves the others zero
    part = s.features(keys, [2, 3])
    assert np.array_equal(part[[2, 3]], f[[2, 3]]) and not part[[0, 1, 4, 5, 6]].any()
    # in the original wording no word has a candidate original, so there is no evidence
    assert s.features("the deputy foreign minister told state media".split())[:, 0].tolist() == [0.0] * 7


def test_adjust_applies_the_weights_and_respects_the_floor(tmp_path):
    keys = "the deputy overseas minister instructed state media".split()
    probs = [0.01, 0.02, 0.3, 0.05, 0.4, 0.01, 0.01]
    up = _scorer(tmp_path).adjust(keys, probs)  # weights: logit + gain
    assert up[2] > 0.9 and up[4] > 0.9 and up[0] == pytest.approx(0.01, abs=1e-6)
    floored = _scorer(tmp_path, floor=0.1).adjust(keys, probs)
    assert floored[:2] == probs[:2] and floored[2] == pytest.approx(up[2])
    with pytest.raises(ValueError, match="expected 5"):
        ContextScorer(_counts(), {}, [1.0], 0.0)


def test_a_bundle_with_context_loads_it_and_its_scores_move(tmp_path, tiny_bundle):
    m = read_manifest(tiny_bundle)
    det = tmp_path / "detector"
    shutil.copytree(m.part_dir("detector"), det)
    _counts().save(det / COUNTS_FILE)
    write_inverse(det / INVERSE_FILE, {"overseas": [("foreign", 0.5)]})
    data = m.to_dict()
    data["detector"] = {**data["detector"], "context": {"weights": [0.0, 1.0, 0.0, 0.0, 0.0], "bias": -2.0}}
    out = save_bundle(tmp_path / "bundle", data, {"detector": det}).root
    model = degarble.load(out, precision="fp32")
    assert model.detector.context is not None
    assert {f"detector/{COUNTS_FILE}", f"detector/{INVERSE_FILE}"} <= set(model.manifest.files_sha256)
    text = "the deputy overseas minister told state media"
    toks, probs = model.detector.word_probabilities([text])[0]
    # weights ignore the model: the probability is sigmoid(gain - 2), high only at "overseas"
    assert probs[2] > 0.5 and max(probs[:2] + probs[3:]) < 0.2
    plain = degarble.load(tiny_bundle, precision="fp32").detector.word_probabilities([text])[0][1]
    assert probs != plain
    assert json.loads((out / "degarble.json").read_text())["detector"]["context"]["bias"] == -2.0


def test_chain_logprob_scores_options_for_one_slot(tmp_path):
    s = _scorer(tmp_path)
    fit = s.chain_logprob("deputy", [["foreign"], ["abroad"], [], ["foreign", "minister"]], "minister")
    assert fit[0] > fit[1]  # "deputy foreign minister" is in the counts, "deputy abroad" is not
    assert fit[3] < fit[0]  # one more word is one more factor below 1
    # no words: the one factor P(minister | deputy) (shorter chains are likelier; lm_weight is tuned for it)
    assert fit[2] == pytest.approx(np.log((0 + 50 * (5 + 0.1) / (s.counts.total + 0.1 * s.counts.vocab)) / (2 + 50)))
    assert s.chain_logprob("deputy", [], "minister").shape == (0,)


def test_chain_logprobs_scores_many_slots_as_one_slot_at_a_time(tmp_path):
    s = _scorer(tmp_path)
    slots = [("deputy", [["foreign"], ["abroad"], []], "minister"), ("the", [], "said"),
             ("state", [["media"], ["press", "agency"]], "told"), ("unseen", [["words", "here"]], "zzz")]
    got = s.chain_logprobs(slots)
    assert len(got) == len(slots)
    for (prev, options, nxt), fits in zip(slots, got):
        want = s._summed_logprob([(k, a, b) for k, o in enumerate(options) for a, b in zip([prev, *o], [*o, nxt])],
                                 len(options))
        np.testing.assert_allclose(fits, want, rtol=0, atol=1e-12)
    assert s.chain_logprobs([]) == []
