"""Precision (fp32 / bf16 / int8): choosing it, where it reaches, and int8 keeping the shipped scores."""

from __future__ import annotations

import json

import pytest

import degarble
from degarble.bundle import DEFAULT_BUNDLE_DIR, read_manifest
from degarble.models import precision as prec

SHIPPED = (DEFAULT_BUNDLE_DIR / "degarble.json").is_file() and read_manifest(DEFAULT_BUNDLE_DIR).has_restorer
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="no trained bundle shipped")
needs_int8 = pytest.mark.skipif(not prec.int8_available(), reason="this torch build has no int8 CPU kernels")


def test_requested_precision_reads_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv(prec.ENV_VAR, raising=False)
    assert prec.requested_precision(None) == "auto"
    monkeypatch.setenv(prec.ENV_VAR, " FP32 ")
    assert prec.requested_precision(None) == "fp32"
    assert prec.requested_precision("int8") == "int8"  # the argument wins
    monkeypatch.setenv(prec.ENV_VAR, "fp8")
    with pytest.raises(ValueError, match=r"unknown \$DEGARBLE_PRECISION 'fp8'; choose one of auto, fp32, bf16, int8"):
        prec.requested_precision(None)
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        prec.requested_precision("half")


def test_auto_is_bf16_where_the_cpu_has_it_else_fp32(monkeypatch):
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: True)
    assert prec.resolve_precision("auto") == "bf16"
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: False)
    assert prec.resolve_precision("auto") == "fp32"  # int8 is opt-in: it lowers scores a little
    assert prec.resolve_precision("bf16") == "bf16"  # asked for: given, even where it is emulated
    monkeypatch.setattr(prec, "int8_available", lambda: False)
    with pytest.raises(ValueError, match="needs PyTorch's dynamic quantization"):
        prec.resolve_precision("int8")


@needs_int8
def test_load_caches_per_bundle_and_precision(tiny_bundle):
    import torch

    fp32 = degarble.load(tiny_bundle, precision="fp32")
    int8 = degarble.load(tiny_bundle, precision="int8")
    assert fp32 is degarble.load(tiny_bundle, precision="fp32") and fp32 is not int8
    assert (fp32.precision, int8.precision) == ("fp32", "int8") and "precision='int8'" in repr(int8)
    # every linear layer but the down-projections (feed-forward output, classifier) is int8
    for name, m in int8.detector.model.named_modules():
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            assert m.in_features <= m.out_features, name
        elif isinstance(m, torch.nn.Linear):
            assert m.in_features > m.out_features, name
    n_int8 = sum(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in int8.detector.model.modules())
    assert n_int8 > 0 and not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear)
                                  for m in fp32.detector.model.modules())


@needs_int8
def test_cli_precision_flag_and_a_bad_environment_value(tiny_bundle, tmp_path, monkeypatch, capsys):
    from degarble.cli import main

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "a", "text": "The minister told reporters on Monday."}) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["detect", str(inp), "-o", str(out), "--model", str(tiny_bundle), "--precision", "int8"]) == 0
    assert json.loads(out.read_text())["id"] == "a"
    capsys.readouterr()
    assert main(["detect", str(inp), "--model", str(tiny_bundle), "--precision", "fp16"]) == 2
    assert "argument --precision: invalid choice: 'fp16'" in capsys.readouterr().err
    monkeypatch.setenv(prec.ENV_VAR, "fp16")
    assert main(["detect", str(inp), "-o", str(out), "--model", str(tiny_bundle)]) == 2
    assert "unknown $DEGARBLE_PRECISION 'fp16'" in capsys.readouterr().err


def test_batch_refuses_an_unknown_precision_before_it_starts(tiny_bundle, tmp_path):
    from degarble.batch import BatchError, run_batch

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "a", "text": "The minister told reporters."}) + "\n")
    with pytest.raises(BatchError, match="unknown precision 'fp16'"):
        run_batch(inp, tmp_path / "out.jsonl", model=tiny_bundle, precision="fp16", log=lambda m: None)
    assert not (tmp_path / "out.jsonl").exists()


@needs_shipped
@needs_int8
def test_int8_stays_close_to_the_shipped_models_fp32_results():
    """int8 trades a little quality for speed; it must stay close to fp32: word probabilities
    within a few points, the same confident flags, and restorations nearly as good.

    Restorations are compared on the example article (14 paragraphs, 548 words): on two sentences
    one edit moves the WER by 3 points, so a single int8 false alarm (int8 flags "General
    Assembly" at 0.41 >= its word threshold 0.30, and restorer phase 8 rewrites it) decided it."""
    from conftest import REPO

    from degarble.score import wer
    from degarble.text import paragraphs

    originals = [
        "The government said on Tuesday that it would increase spending on schools and hospitals next year.",
        "Russia's deputy foreign minister told state media that the General Assembly would vote this week.",
    ]
    spun = [degarble.spin(t, rate="heavy", seed=5).text for t in originals]
    fp32, int8 = degarble.load(precision="fp32"), degarble.load(precision="int8")
    for (_, p32), (_, p8) in zip(fp32.detector.word_probabilities(spun), int8.detector.word_probabilities(spun)):
        assert max(abs(a - b) for a, b in zip(p32, p8)) < 0.1
        flagged = [(a >= 0.5, b >= 0.5) for a, b in zip(p32, p8) if abs(a - 0.5) > 0.1]
        assert all(a == b for a, b in flagged)
    def example(name: str) -> list[str]:  # the example article's paragraphs
        text = (REPO / "examples" / name).read_text(encoding="utf-8")
        return [text[a:b] for a, b in paragraphs(text)]

    clean, spun_article = example("clean_article.txt"), example("spun_article.txt")
    restored = {name: [r.text for r in m.restore(spun_article)] for name, m in (("fp32", fp32), ("int8", int8))}
    assert wer(restored["int8"], clean) < wer(spun_article, clean)
    assert wer(restored["int8"], clean) <= wer(restored["fp32"], clean) + 0.01
    assert [r.text for r in int8.restore(clean)] == clean  # clean news stays as it is
    # int8 runs with the thresholds calibrated for it, where the bundle has them (by_precision)
    own = fp32.manifest.detector_settings("int8")
    assert (int8.threshold, int8.detector.word_threshold) == (own["threshold"], own["word_threshold"])
    assert fp32.threshold == fp32.manifest.threshold
    # the LM head stays fp32: min_score and the candidate ranking compare its probabilities
    import torch

    assert type(int8.restorer.model.decoder.cls.predictions.decoder) is torch.nn.Linear
