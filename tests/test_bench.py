"""Tests for degarble.bench: article building and the report's shape. No timing is asserted."""

import argparse
import json
import sys
import types
from pathlib import Path

import pytest

import degarble
from degarble import bench
from degarble.models.precision import int8_available
from degarble.text import words
from degarble.types import Detection, Restoration


class FakeModel:
    name = "fake"
    bundle_hash = "deadbeef0123"
    threshold = 0.5

    def detect(self, texts):
        return [Detection(0.0, False, []) for _ in texts]

    def restore(self, texts):
        return [Restoration(t, []) for t in texts]


test_article_cases = [
    # paragraphs, n, n_words
    (["one two three.", "four five six seven.", "eight nine."], 3, 5),
    (["a b c d e f g h i j"], 2, 4),
]


@pytest.mark.parametrize("paragraphs, n, n_words", test_article_cases)
def test_make_articles(paragraphs, n, n_words):
    arts = bench.make_articles(paragraphs, n, n_words)
    assert len(arts) == n
    assert all(len(words(a)) == n_words for a in arts)
    assert bench.make_articles(paragraphs, n, n_words) == arts


def test_make_articles_needs_text():
    with pytest.raises(ValueError):
        bench.make_articles([], 1)


def test_bench_system_shape():
    res = bench.bench_system(FakeModel(), {"clean": ["a b c"] * 3}, batch_size=2, repeats=2)
    d = res["detect"]["clean"]
    assert len(d["seconds"]) == 2 and d["articles_per_s"] > 0
    assert res["restore"]["clean"]["articles_per_s"] > 0
    assert res["peak_rss_mb"] > 0


def test_detector_only_restore_is_null():
    class DetOnly(FakeModel):
        def restore(self, texts):
            raise NotImplementedError

    res = bench.bench_system(DetOnly(), {"spun": ["a"], "clean": ["b"]}, repeats=1)
    assert res["restore"] == {"spun": None, "clean": None}


@pytest.fixture
def tiny_bundle(tmp_path):
    """A 1-layer, width-32 BERT tagger (detector) and T5 (restorer) with random weights."""
    transformers = pytest.importorskip("transformers")
    from degarble.bundle import save_bundle

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz.,"]
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizerFast(str(tmp_path / "vocab.txt"))
    det = transformers.BertForTokenClassification(transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=2))
    det.save_pretrained(tmp_path / "det")
    tok.save_pretrained(tmp_path / "det")
    res = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=3))
    res.save_pretrained(tmp_path / "res")
    tok.save_pretrained(tmp_path / "res")
    save_bundle(tmp_path / "bundle", {"name": "tiny", "detector": {"threshold": 0.5, "max_length": 64, "stride": 16},
                                      "restorer": {"max_length": 16, "num_beams": 1}},
                {"detector": tmp_path / "det", "restorer": tmp_path / "res"})
    return tmp_path / "bundle"


def test_bench_end_to_end_in_process(tiny_bundle, tmp_path, monkeypatch):
    corpus = tmp_path / "paras.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"the cat sat on mat number {i} today."}) + "\n" for i in range(30)))
    spin_mod = types.ModuleType("degarble.spin")
    spin_mod.RATES = {"medium": 0.2}
    spin_mod.spin = lambda text, rate, seed: types.SimpleNamespace(text=text.replace("cat", "feline"),
                                                                   signature="spin:fake.v1|rate:0.20|seed:13")
    monkeypatch.setitem(sys.modules, "degarble.spin", spin_mod)
    asked = []

    def fake_load(path=None, precision=None):
        asked.append(precision)
        m = FakeModel()
        m.precision = precision
        return m

    monkeypatch.setattr(degarble, "load", fake_load, raising=False)
    p = argparse.ArgumentParser()
    bench.add_bench_arguments(p)
    out = tmp_path / "bench.json"
    args = p.parse_args(["--model", str(tiny_bundle), "--corpus", str(corpus), "--articles", "2", "--words", "40",
                         "--repeats", "1", "--in-process", "--output", str(out), "--precision", "int8"])
    assert bench.run_bench_from_args(args) == 0
    r = json.loads(out.read_text())
    assert r["articles"]["n"] == 2 and r["articles"]["spin_signature"].startswith("spin:fake.v1")
    for path in ("degarble", "pipeline"):
        for op in ("detect", "restore"):
            assert set(r[path][op]) == {"spun", "clean"}
        assert r[path]["cold_start"]["cold_start_s"] >= 0
    assert r["pipeline"]["restorer"]["task"] == "generate() on every sentence"
    assert set(r["ratio_vs_pipeline"]["detect"]) == {"spun", "clean"}
    assert r["signature"].startswith("degarble-bench|model:fake@deadbeef|words:40|articles:2|")
    assert asked == ["int8"] and r["degarble"]["precision"] == "int8" and "|precision:int8|" in r["signature"]


def test_bench_greedy_reaches_restore_and_is_recorded(tmp_path, monkeypatch):
    corpus = tmp_path / "paras.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"the cat sat on mat number {i} today."}) + "\n" for i in range(30)))
    monkeypatch.setitem(sys.modules, "degarble.spin", None)  # no spinner: clean articles only
    calls = []

    class GreedyFake(FakeModel):
        def restore(self, texts, greedy=False):
            calls.append(greedy)
            return super().restore(texts)

    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: GreedyFake(), raising=False)
    p = argparse.ArgumentParser()
    bench.add_bench_arguments(p)
    out = tmp_path / "bench.json"
    args = p.parse_args(["--corpus", str(tmp_path / "paras.jsonl"), "--articles", "2", "--words", "20", "--repeats",
                         "1", "--in-process", "--no-pipeline", "--greedy", "--output", str(out)])
    assert bench.run_bench_from_args(args) == 0
    r = json.loads(out.read_text())
    assert calls and all(calls)
    assert r["settings"]["greedy"] is True and r["degarble"]["greedy"] is True
    assert "|restore:greedy|" in r["signature"]

    # in a fresh process, the flag goes to the degarble worker only
    argvs = []

    def fake_run(cmd, **kw):
        argvs.append(cmd)
        return types.SimpleNamespace(returncode=0, stdout=json.dumps({"name": "x"}), stderr="")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    args = p.parse_args(["--greedy"])
    bench._spawn("degarble", args, tmp_path / "a.json", print)
    bench._spawn("pipeline", args, tmp_path / "a.json", print)
    assert "--greedy" in argvs[0] and "--greedy" not in argvs[1]


def test_bench_usage_errors(tmp_path, capsys):
    p = argparse.ArgumentParser()
    bench.add_bench_arguments(p)
    assert bench.run_bench_from_args(p.parse_args(["--corpus", str(tmp_path / "none.jsonl")])) == 2
    assert bench.run_bench_from_args(p.parse_args(["--articles", "0"])) == 2


def test_plain_pipeline_runs_a_span_infilling_restorer(tiny_full_bundle):
    system = bench.plain_pipeline_system(tiny_full_bundle, batch_size=4)
    assert system.info["restorer"]["task"].startswith("generate() on every sentence with a detector-pipeline span")
    out = system.restore(["The Common Meeting will vote. The White Home said so.", "Short."])
    assert len(out) == 2 and all(isinstance(x, str) for x in out)


@pytest.mark.skipif(not int8_available(), reason="this torch build has no int8 CPU kernels")
def test_bench_precision_interleaves_precisions_and_gives_ratios(tiny_full_bundle, tmp_path):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_precision.py"
    spec = importlib.util.spec_from_file_location("bench_precision", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    corpus = tmp_path / "paras.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"The minister said on day {i} that the meeting was possible."}) + "\n"
                              for i in range(40)))
    out = tmp_path / "p.json"
    assert mod.main(["--model", str(tiny_full_bundle), "--corpus", str(corpus), "--articles", "2", "--rounds", "1",
                     "--precisions", "fp32", "int8", "--output", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["articles_per_s"]) == {"detect", "restore"}
    assert r["ratio_vs_fp32"]["detect"]["fp32"] == 1.0 and r["articles_per_s"]["restore"]["int8"] > 0
    assert mod.main(["--corpus", str(tmp_path / "none.jsonl")]) == 2
