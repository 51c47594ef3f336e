"""The detector training script runs end to end on tiny data and writes a bundle that loads."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_tiny_detector_dir

import degarble
from degarble.models.precision import cpu_has_bf16

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "paragraphs.jsonl"
TRAINING = REPO / "training"


def _tiny_detector_cmd(tmp_path, base) -> list[str]:
    """train_detector.py on the sample paragraphs with the tiny config, from the tiny base model ``base``."""
    return [
        sys.executable, str(TRAINING / "train_detector.py"), "--config", str(TRAINING / "configs" / "tiny.json"),
        "--base_model", str(base), "--train_file", str(SAMPLE), "--validation_file", str(SAMPLE),
        "--out_dir", str(tmp_path / "run"), "--max_length", "48", "--threads", "1", "--no-bf16",
    ]


def test_train_detector_tiny_run_writes_a_loadable_bundle(tmp_path, sample_paragraphs):
    base = make_tiny_detector_dir(tmp_path / "base", sample_paragraphs)
    bundle = tmp_path / "bundle"
    cmd = _tiny_detector_cmd(tmp_path, base) + ["--bundle_out", str(bundle)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3 and 0 < summary["calibration"]["threshold"] < 1
    model = degarble.load(bundle)
    assert model.manifest.train_config["max_steps"] == 3
    d = model.detect(["The Common Meeting will vote on Monday."])[0]
    assert 0.0 <= d.spun_score <= 1.0


def test_train_restorer_tiny_run_adds_a_restorer_to_the_bundle(tmp_path, sample_paragraphs, tiny_bundle):
    import shutil

    base = make_tiny_detector_dir(tmp_path / "base", sample_paragraphs)
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)  # a detector-only bundle; the run adds the restorer
    cmd = [
        sys.executable, str(REPO / "training" / "train_restorer.py"),
        "--config", str(REPO / "training" / "configs" / "tiny-restorer.json"),
        "--base_model", str(base), "--train_file", str(SAMPLE), "--validation_file", str(SAMPLE),
        "--out_dir", str(tmp_path / "run"), "--bundle", str(bundle), "--calibration_paragraphs", "6",
        "--decoder_layers", "1", "--threads", "1",  # no --bf16 flag: the default follows the CPU
        # half the pieces marked by a trained detector's own flags (here the tiny bundle's)
        "--detector_spans", "0.5", "--detector_bundle", str(tiny_bundle),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["validation"]["spans"] > 0
    assert summary["config"]["detector_spans"] == 0.5
    # bf16 autocast only where the CPU runs it natively: emulated bf16 is many times slower than fp32
    assert summary["config"]["bf16"] == cpu_has_bf16()
    model = degarble.load(bundle)
    assert model.has_restorer and model.manifest.restorer["min_score"] >= 0.0
    assert "restorer_calibration" in model.manifest.scores
    res = model.restore(["The Common Meeting will vote on Monday."])[0]
    assert degarble.apply_edits("The Common Meeting will vote on Monday.", res.edits) == res.text

    # calibrate_restorer.py --run puts the same run into another bundle, with the run's config and scores
    other = tmp_path / "other"
    shutil.copytree(tiny_bundle, other)
    cmd = [sys.executable, str(TRAINING / "calibrate_restorer.py"), "--run", str(tmp_path / "run"),
           "--bundle", str(other), "--validation", str(SAMPLE), "-n", "6"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    m = degarble.load(other).manifest
    assert m.to_dict()["restorer_train_config"] == summary["config"]
    assert m.scores["restorer_validation"] == summary["validation"]


def test_detector_recalibration_keeps_the_restorer(tmp_path, tiny_full_bundle):
    """calibrate_detector.py rewrites the manifest of a bundle that also holds a restorer."""
    import shutil

    sys.path.insert(0, str(TRAINING))
    try:
        from calibrate_detector import rewrite_bundle
    finally:
        sys.path.remove(str(TRAINING))
    from degarble.bundle import read_manifest

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_full_bundle, bundle)
    rewrite_bundle(bundle, {"threshold": 0.42, "word_threshold": 0.3, "top_k": 3, "top_share": 0.2})
    m = read_manifest(bundle)
    assert m.detector["threshold"] == 0.42 and m.detector["top_share"] == 0.2
    assert m.parts() == ["detector", "restorer"] and m.part_dir("restorer").is_dir()
    assert degarble.load(bundle).restorer is not None
    # int8 thresholds go beside the main ones, which stay as they were
    rewrite_bundle(bundle, {"threshold": 0.38, "word_threshold": 0.25, "top_k": 3, "top_share": 0.2}, "int8")
    m = read_manifest(bundle)
    assert m.detector["threshold"] == 0.42 and m.detector["word_threshold"] == 0.3
    assert m.detector_settings("int8")["threshold"] == 0.38 and m.scores["calibration_int8"]["threshold"] == 0.38
    rewrite_bundle(bundle, {"threshold": 0.44, "word_threshold": 0.3, "top_k": 3, "top_share": 0.2})
    assert read_manifest(bundle).detector_settings("int8")["word_threshold"] == 0.25  # a main re-calibration keeps them


def test_train_detector_continues_a_detector_and_keeps_the_bundles_restorer(tmp_path, tiny_full_bundle):
    """A detector phase that starts from a trained detector (init_from) and exports into a bundle
    that already has a restorer replaces the detector and leaves the restorer in place."""
    import shutil

    from degarble.bundle import read_manifest

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_full_bundle, bundle)
    before = read_manifest(bundle)
    cmd = [
        sys.executable, str(REPO / "training" / "train_detector.py"),
        "--config", str(REPO / "training" / "configs" / "tiny.json"),
        "--init_from", str(before.part_dir("detector")), "--train_file", str(SAMPLE), "--validation_file", str(SAMPLE),
        "--out_dir", str(tmp_path / "run"), "--bundle_out", str(bundle), "--max_length", "48",
        "--threads", "1", "--no-bf16",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "continuing from" in out.stdout
    after = read_manifest(bundle)
    assert after.parts() == ["detector", "restorer"]
    assert after.restorer == before.restorer
    assert after.files_sha256["detector/model.safetensors"] != before.files_sha256["detector/model.safetensors"]
    assert {k: v for k, v in after.files_sha256.items() if k.startswith("restorer/")} == {
        k: v for k, v in before.files_sha256.items() if k.startswith("restorer/")}
    assert degarble.load(bundle).restore(["The Common Meeting will vote on Monday."])[0].text


def test_train_detector_resumes_from_its_last_checkpoint(tmp_path, sample_paragraphs):
    cmd = _tiny_detector_cmd(tmp_path, make_tiny_detector_dir(tmp_path / "base", sample_paragraphs))
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    again = subprocess.run(cmd + ["--resume", "--max_steps", "5"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed at step 3" in again.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 5


def test_train_detector_stop_step_cuts_the_run_but_keeps_its_schedule(tmp_path, sample_paragraphs):
    """``stop_step`` replays a run that a time budget cut short: it stops there, with the learning-rate
    schedule still planned for ``max_steps`` (detector phase 5 stopped at step 1,474 of 1,500)."""
    base = make_tiny_detector_dir(tmp_path / "base", sample_paragraphs)
    cmd = _tiny_detector_cmd(tmp_path, base) + ["--max_steps", "6", "--stop_step", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 2
    assert summary["config"]["max_steps"] == 6 and summary["config"]["stop_step"] == 2


def test_train_detector_draws_profiles_by_their_weights(tmp_path, sample_paragraphs):
    """``profile_weights`` (detector phase 9 spins twice as often with natural.v1); one number per profile."""
    base = make_tiny_detector_dir(tmp_path / "base", sample_paragraphs)
    profiles = ["--profiles", '["synonym-swap.v2", "natural.v1"]']
    bad = subprocess.run(_tiny_detector_cmd(tmp_path, base) + profiles + ["--profile_weights", "[1, 2, 3]"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "profile_weights has 3 numbers for 2 profiles" in bad.stderr
    out = subprocess.run(_tiny_detector_cmd(tmp_path, base) + profiles + ["--profile_weights", "[1, 2]"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "summary.json").read_text())["config"]
    assert config["profiles"] == ["synonym-swap.v2", "natural.v1"] and config["profile_weights"] == [1, 2]


def test_calibration_groups_set_the_threshold_on_every_clean_news_paragraph():
    """The shipped threshold is calibrated on every news paragraph outside the spun groups; the
    spun groups are the ones training validates on, and no text is both clean and spun."""
    sys.path.insert(0, str(TRAINING))
    try:
        from calibrate_detector import calibration_groups, validation_groups
    finally:
        sys.path.remove(str(TRAINING))

    records = [json.loads(line) for line in SAMPLE.open(encoding="utf-8")]
    texts = [r["text"] for r in records]
    source = {r["text"]: r["source"] for r in records}
    plain = validation_groups(texts, 8, ["synonym-swap.v2"])
    news = calibration_groups(SAMPLE, 8, ["synonym-swap.v2"])
    for rate in ("light", "medium", "heavy"):
        assert [s.text for s in news[rate]] == [s.text for s in plain[rate]]
    originals = {degarble.apply_edits(s.text, s.edits) for rate in ("light", "medium", "heavy") for s in news[rate]}
    assert not originals & set(news["clean"])
    assert news["clean"] and all(source[t] == "wikinews_en" for t in news["clean"])
    n_news = sum(r["source"] == "wikinews_en" for r in records)
    n_spun_news = sum(source[t] == "wikinews_en" for t in originals)
    assert len(news["clean"]) == n_news - n_spun_news  # every other news paragraph
    # a split without the news corpus still calibrates, on all its clean paragraphs
    assert len(calibration_groups(SAMPLE, 8, ["synonym-swap.v2"], ("no-such-corpus",))["clean"]) == len(texts) - 24


def test_restore_gates_grid_covers_every_pair_of_thresholds(tmp_path, tiny_full_bundle):
    """restore_gates.py scores each paragraph threshold with each word threshold, the bundle's first."""
    cmd = [sys.executable, str(TRAINING / "restore_gates.py"), "--bundle", str(tiny_full_bundle),
           "--validation", str(SAMPLE), "-n", "3", "--paragraph", "0.2", "--word", "0.1",
           "--output", str(tmp_path / "g.json")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    m = degarble.load(tiny_full_bundle).manifest
    report = json.loads((tmp_path / "g.json").read_text())
    pairs = [(b["threshold"], b["word_threshold"]) for b in report["best"]]
    p0, w0 = round(m.detector["threshold"], 4), m.detector["word_threshold"]
    assert pairs == [(p0, w0), (p0, 0.1), (0.2, w0), (0.2, 0.1)]
    assert {(g["threshold"], g["word_threshold"]) for g in report["grid"]} == set(pairs)


def test_fit_context_writes_a_bundle_whose_detector_uses_the_counts(tmp_path, tiny_full_bundle):
    """fit_context.py counts the split minus its held-out paragraphs, fits the weights on those,
    and writes a calibrated bundle with the context in its detector folder and manifest."""
    out = tmp_path / "bundle"
    cmd = [sys.executable, str(TRAINING / "fit_context.py"), "--bundle", str(tiny_full_bundle), "--out", str(out),
           "--train_file", str(SAMPLE), "--validation_file", str(SAMPLE), "--fit_paragraphs", "30",
           "--val_paragraphs", "8", "--min_bigram_count", "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "counted 70 paragraphs" in run.stderr
    report = json.loads(run.stdout)
    assert set(report) == {"with_context", "input_bundle"}
    model = degarble.load(out, precision="fp32")
    ctx = model.manifest.detector["context"]
    assert len(ctx["weights"]) == 5 and ctx["fit"]["fit_paragraphs"] == 30
    assert model.detector.context is not None and model.restorer is not None
    assert model.threshold == report["with_context"]["threshold"]
    assert model.detector.score == "evidence" and model.detector.score_weights is None
    # the weights are a real fit: the same run again gives the same numbers (seeded, float64);
    # with --paragraph_score evidence_max it also fits the paragraph score's three weights
    again = subprocess.run(cmd[:5] + [str(tmp_path / "again")] + cmd[6:] + ["--paragraph_score", "evidence_max"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert read_ctx(tmp_path / "again") == ctx
    other = degarble.load(tmp_path / "again", precision="fp32")
    assert other.detector.score == "evidence_max" and len(other.detector.score_weights) == 3
    assert other.threshold == json.loads(again.stdout)["with_context"]["threshold"]


def read_ctx(bundle: Path) -> dict:
    return json.loads((bundle / "degarble.json").read_text())["detector"]["context"]


def tune_ranking():
    """training/tune_ranking.py as a module (training/ is not a package)."""
    sys.path.insert(0, str(TRAINING))
    try:
        import tune_ranking as module
    finally:
        sys.path.remove(str(TRAINING))
    return module


def test_tune_ranking_replays_rankings_from_recorded_options():
    """tune_ranking.py's table judges each recorded option by the edit it would make, replays a
    ranking setting as Restorer._rerank chooses, and scores it (the best min_score of the grid)."""
    tr = tune_ranking()
    Table, _likelihood, fit_logistic = tr.Table, tr._likelihood, tr.fit_logistic
    import math

    import numpy as np

    from degarble.models.restorer import CONFIDENCE_FEATURES, RankOption

    spun, original = "The Common Meeting will vote.", "The General Assembly will vote."
    a, b = spun.index("Common Meeting"), spun.index(" will")
    options = [RankOption("common meeting", keep=True, fit=-9.0),
               RankOption("general assembly", table_prior=0.5, fit=-2.0),
               RankOption("common session", generated=True, fit=-9.0)]
    span = {"options": options, "lp": [math.log(0.2), math.log(0.3), math.log(0.4)],
            "a": a, "b": b, "seg": 0}
    clean = "The vote is on Monday."
    c = clean.index("vote")
    keep_clean = {"options": [RankOption("vote", keep=True), RankOption("ballot", table_prior=0.9)],
                  "lp": [math.log(0.9), math.log(0.05)], "a": c, "b": c + 4, "seg": 0}
    items = [{"text": spun, "original": original, "spans": [span]},
             {"text": clean, "original": None, "spans": [keep_clean]}]
    table = Table(items)
    assert table.n_gold == 1 and table.n_clean == 1
    assert table.tp[0, :3].tolist() == [0, 1, 0] and table.fp[0, :3].tolist() == [0, 0, 1]
    assert table.chg[0, :3].tolist() == [0, 1, 1] and table.chg[1, :2].tolist() == [0, 1]
    plain = {"prior_weight": 0.0, "keep_prior": 0.1, "generated_prior": 0.05, "lm_weight": 0.0}
    best, conf = _likelihood(table, plain, None)
    assert best.tolist() == [2, 0]  # the model alone prefers its greedy output: a wrong edit
    assert table.score(best, conf)["edit_f05"] == 0.0
    best, conf = _likelihood(table, {**plain, "lm_weight": 1.0}, None)
    assert best.tolist() == [1, 0]  # the corpus fit turns it to the original
    s = table.score(best, conf)
    assert s["edit_p"] == s["edit_r"] == 1.0 and s["min_score"] <= 0.3 and s["changed_share"] == 0.0
    assert table.half(0).n_gold == 1 and table.half(1).n_gold == 0 and len(table.half(1).spans) == 1
    feats = table.features(best, {**plain, "lm_weight": 1.0})
    assert feats.shape == (2, len(CONFIDENCE_FEATURES))
    x = np.array([[0.0], [1.0], [2.0], [3.0]]).repeat(len(CONFIDENCE_FEATURES), 1) + np.random.default_rng(0).normal(size=(4, len(CONFIDENCE_FEATURES)))
    w = fit_logistic(x, np.array([0.0, 0.0, 1.0, 1.0]))
    assert set(w) == {"bias", *CONFIDENCE_FEATURES}


def test_tune_ranking_judges_the_parts_of_a_merged_gold_edit_jointly():
    """Two adjacent one-word swaps form one gold edit (the word alignment merges them); flagged as
    two spans, they are right together, and one wrong part makes the whole a wrong edit."""
    Table = tune_ranking().Table
    import numpy as np

    from degarble.models.restorer import RankOption

    spun, original = "A domestic, traumatized dog barked.", "A home, mauled dog barked."
    a1, a2 = spun.index("domestic"), spun.index("traumatized")

    def span(word, start, right, wrong):
        return {"options": [RankOption(word, keep=True), RankOption(right), RankOption(wrong)],
                "lp": [-1.0, -1.0, -1.0], "a": start, "b": start + len(word), "seg": 0}

    items = [{"text": spun, "original": original,
              "spans": [span("domestic", a1, "home", "local"), span("traumatized", a2, "mauled", "hurt")]}]
    table = Table(items)
    assert table.n_gold == 1 and table.group.tolist() == [0, 0]
    assert table.tp.sum() == 0  # alone, neither part matches the merged gold edit
    conf = np.ones(2)
    both = table.score(np.array([1, 1]), conf)
    assert both["edit_p"] == both["edit_r"] == 1.0
    one_wrong = table.score(np.array([1, 2]), conf)
    assert one_wrong["edit_p"] == one_wrong["edit_r"] == 0.0 and one_wrong["edit_f05"] == 0.0
    one_kept = table.score(np.array([1, 0]), conf)  # half restored: still not the gold edit
    assert one_kept["edit_r"] == 0.0
    assert table.right(np.array([1, 2])).tolist() == [True, False]


def test_tune_ranking_keeps_and_checks_its_recording(tmp_path):
    """A recording saved with --recording reads back equal (options included), and one made
    with other settings is refused with the difference named, not replayed."""
    load_recording, save_recording = tune_ranking().load_recording, tune_ranking().save_recording
    from degarble.models.restorer import RankOption

    items = [{"text": "The Common Meeting will vote.", "original": "The General Assembly will vote.",
              "spans": [{"options": [RankOption("common meeting", keep=True, fit=-9.0),
                                     RankOption("general assembly", table_prior=0.5, fit=-2.0)],
                         "lp": [-1.5, -0.25], "a": 4, "b": 18, "seg": 0}]},
             {"text": "The vote is on Monday.", "original": None, "spans": []}]
    meta = {"models": "abcd1234", "spun": 1, "clean": 1, "seed": 303, "candidates": 60}
    path = tmp_path / "rec.jsonl.gz"
    save_recording(items, path, meta)
    assert load_recording(path, meta) == items
    with pytest.raises(ValueError, match="seed.*303, 7"):
        load_recording(path, {**meta, "seed": 7})


def test_restorer_recalibration_keeps_the_bundles_ranking(tmp_path, tiny_ranked_bundle):
    """calibrate_restorer.py without --rank keeps the bundle's candidate ranking (and calibrates
    greedy decoding beside it); --rank null turns ranking off."""
    import shutil

    from degarble.bundle import read_manifest  # not degarble.load, which caches the first load

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_ranked_bundle, bundle)
    cmd = [sys.executable, str(TRAINING / "calibrate_restorer.py"), "--bundle", str(bundle),
           "--validation", str(SAMPLE), "-n", "6"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    m = read_manifest(bundle)
    assert m.restorer["rank"] == {"candidates": 4} and 0.0 <= m.restorer["greedy_min_score"] <= 1.0
    assert "restorer_calibration_greedy" in m.scores
    out = subprocess.run(cmd + ["--rank", "null"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    m = read_manifest(bundle)
    assert m.restorer["rank"] is None and "greedy_min_score" not in m.restorer
    assert "restorer_calibration_greedy" not in m.scores


def test_tune_ranking_spins_the_profiles_it_is_given(tmp_path):
    """--profiles is checked (one argparse type, training/common.py, for fit_context.py too), and
    tune_ranking's paragraphs are spun by those profiles in turn; the default stays the base five."""
    import argparse

    tr = tune_ranking()
    from common import profile_list

    from degarble.spin import BASE_PROFILES, RATES, Spinner

    assert profile_list("natural.v1,natural.v1,synonym-swap.v2") == ["natural.v1", "natural.v1", "synonym-swap.v2"]
    for bad in ("natural.v1,nope", ","):
        with pytest.raises(argparse.ArgumentTypeError, match="available: content-farm.v1"):
            profile_list(bad)
    texts = [f"The General Assembly will vote on the new budget plan number {k} on Monday morning." for k in range(6)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    items = tr.paragraphs(4, 2, seed=5, path=str(path), profiles=["natural.v1"])
    spun, clean = items[:4], items[4:]
    assert all(it["original"] is None for it in clean) and all(it["original"] in texts for it in spun)
    for k, it in enumerate(spun):
        rate = RATES[("light", "medium", "heavy")[k % 3]]
        assert it["text"] == Spinner("natural.v1", rate=rate, seed=5 + k).spin(it["original"]).text
    default = tr.paragraphs(4, 2, seed=5, path=str(path))
    assert default[1]["text"] == Spinner(BASE_PROFILES[1], rate=RATES["medium"], seed=6).spin(default[1]["original"]).text


def test_candidate_coverage_ranks_the_true_original_by_prior_and_frequency():
    """candidate_coverage.py: a swap's original is found within top-k by log prior + w x its
    unigram log probability; one missing from the tables counts as absent."""
    sys.path.insert(0, str(TRAINING))
    try:
        from candidate_coverage import coverage, swaps
    finally:
        sys.path.remove(str(TRAINING))
    from degarble.spin.inverse import Inverse

    table = {"assembly": [("states general", 1.0), ("coven", 0.3), ("meeting", 0.05)]}
    logp = {"meeting": -3.0, "states general": -20.0, "coven": -15.0}
    pairs = [("assembly", "meeting"), ("assembly", "meeting"), ("zzz", "word")]
    r = coverage(Inverse(table.get), logp.get, pairs, weights=[0.0, 1.0], tops=[1, 3])
    assert r["swaps"] == 3 and r["absent"] == pytest.approx(1 / 3)
    assert r["w0.0_top1"] == 0.0 and r["w0.0_top3"] == pytest.approx(2 / 3)  # third by prior alone
    assert r["w1.0_top1"] == pytest.approx(2 / 3)  # first once frequency counts
    # the swaps are the spinner's single-word replacements, as (spun word, original) keys
    pairs = swaps(["The foreign minister told reporters on Monday that talks would go on."] * 3, "synonym-swap.v2", 1)
    assert pairs and all(" " not in s and s == s.lower() for s, _ in pairs)


def test_gate_calibration_filters_edits_and_keeps_no_gate_unless_beaten():
    """calibrate_gate.py: a gate keeps, under the detector's threshold, only the sure changes of
    paragraphs over its own threshold; the best pair within the clean budget wins only if it beats
    no gate."""
    sys.path.insert(0, str(TRAINING))
    try:
        from calibrate_gate import best_gate, restored
    finally:
        sys.path.remove(str(TRAINING))
    from degarble.types import Edit

    text = "aa bb cc"
    edits = [(Edit(0, 2, "aa", "AA", 0.9), 0.8), (Edit(3, 5, "bb", "BB", 0.5), 0.6), (Edit(6, 8, "cc", "CC", 0.9), 0.2)]
    outs = [(text, edits)]
    assert restored(outs, 0.7, None, 1.0) == ["AA bb cc"]  # no gate: only the paragraph over 0.7
    assert restored(outs, 0.7, 0.5, 0.6) == ["AA bb cc"]  # bb's 0.5 is under the gate's min_score
    assert restored(outs, 0.7, 0.5, 0.5) == ["AA BB cc"]  # cc's paragraph (0.2) stays closed
    assert restored(outs, 0.7, 0.1, 0.9) == ["AA bb CC"]
    row = lambda t, m, f, c: {"threshold": t, "min_score": m, "edit_f05": f, "changed_share": c}  # noqa: E731
    grid = [row(None, None, 0.50, 0.0), row(0.5, 0.7, 0.53, 0.02), row(0.5, 0.8, 0.52, 0.005), row(0.6, 0.9, 0.51, 0.0)]
    assert best_gate(grid, 0.01) == grid[2]  # the best within the budget
    assert best_gate(grid, 0.05) == grid[1]
    assert best_gate([grid[0], row(0.5, 0.9, 0.49, 0.0)], 0.01) == grid[0]  # no better gate: none
