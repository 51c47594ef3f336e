"""Shared fixtures: a seed, sample texts, and a tiny random-weight model bundle built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from degarble.seed import set_seed

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "paragraphs.jsonl"


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed():
    set_seed(1234)
    return 1234


@pytest.fixture(scope="session")
def sample_paragraphs() -> list[str]:
    return [json.loads(line)["text"] for line in SAMPLE.open(encoding="utf-8")]


def _tiny_tokenizer(out: Path, texts: list[str]):
    """A word-level BERT tokenizer saved in ``out``: the words of ``texts``, characters, MiniLM's markers."""
    from transformers import BertTokenizerFast

    from degarble.text import words

    # MiniLM's vocabulary starts [PAD], [unused0..98], [UNK], [CLS], [SEP], [MASK]; the restorer's
    # close marker and sentinels are [unused1..65]
    vocab = ["[PAD]", *(f"[unused{k}]" for k in range(66)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    seen = set(vocab)
    for t in texts:
        for w in words(t.lower()):
            if w.text not in seen:
                seen.add(w.text)
                vocab.append(w.text)
    vocab += [c for c in "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-&%’" if c not in seen]
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # from_pretrained reads vocab.txt; transformers 5's BertTokenizerFast(vocab_file=...) ignores it
    return BertTokenizerFast.from_pretrained(str(out), do_lower_case=True)


def make_tiny_detector_dir(out: Path, texts: list[str]) -> Path:
    """A 2-layer, 32-wide BERT token classifier with a word-level vocabulary from ``texts``.

    The vocabulary has MiniLM's marker entries ([unused0..65]), so it also serves as the base
    model of a tiny restorer training run.
    """
    import torch
    from transformers import BertConfig, BertForTokenClassification

    tok = _tiny_tokenizer(out, texts)
    vocab = tok.get_vocab()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=2)
    model = BertForTokenClassification(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, sample_paragraphs) -> Path:
    """A complete bundle (manifest + detector part) with random weights, saved through save_bundle."""
    from degarble.bundle import save_bundle

    root = tmp_path_factory.mktemp("tiny")
    det = make_tiny_detector_dir(root / "detector-src", sample_paragraphs)
    return save_bundle(
        root / "bundle",
        {"name": "tiny-test", "detector": {"threshold": 0.5, "max_length": 32, "stride": 8, "top_k": 3},
         "spin_signature": "spin:synonym-swap.v1|test"},
        {"detector": det},
    ).root


def make_tiny_restorer_dir(out: Path, texts: list[str]) -> Path:
    """A tiny random-weight span infiller (2-layer encoder, 1-layer decoder, 32 wide) saved to ``out``.

    Its word-level vocabulary starts with the restorer's marker entries ([unused0..65]), as
    MiniLM's does.
    """
    import torch
    from transformers import BertConfig, BertLMHeadModel, BertModel

    from degarble.models.restorer import assemble_span_infiller

    tok = _tiny_tokenizer(out, texts)
    vocab = tok.get_vocab()
    torch.manual_seed(0)
    common = dict(vocab_size=len(vocab), hidden_size=32, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=512)
    enc = BertModel(BertConfig(num_hidden_layers=2, **common))
    dec = BertLMHeadModel(BertConfig(num_hidden_layers=1, is_decoder=True, add_cross_attention=True, **common))
    model = assemble_span_infiller(enc, dec, tok)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_full_bundle(tmp_path_factory, sample_paragraphs) -> Path:
    """A bundle with a detector and a restorer, both tiny and random (mechanics, not quality)."""
    from degarble.bundle import save_bundle

    root = tmp_path_factory.mktemp("tiny-full")
    det = make_tiny_detector_dir(root / "detector-src", sample_paragraphs)
    res = make_tiny_restorer_dir(root / "restorer-src", sample_paragraphs)
    return save_bundle(
        root / "bundle",
        # threshold 0 and word_threshold 0: every word flagged, so the restorer runs everywhere
        {"name": "tiny-full", "detector": {"threshold": 0.0, "word_threshold": 0.0, "max_length": 32, "stride": 8},
         "restorer": {"min_score": 0.0, "max_words": 12, "max_length": 48, "kind": "span-infilling EncoderDecoderModel"},
         "spin_signature": "spin:synonym-swap.v1|test"},
        {"detector": det, "restorer": res},
    ).root


@pytest.fixture(scope="session")
def tiny_ranked_bundle(tmp_path_factory, tiny_full_bundle) -> Path:
    """``tiny_full_bundle``'s weights with candidate ranking (``rank``) at ``min_score`` 0.9, and
    ``greedy_min_score`` 0.3 for ``restore(greedy=True)``."""
    from degarble.bundle import read_manifest, save_bundle

    m = read_manifest(tiny_full_bundle)
    detector = {k: v for k, v in m.detector.items() if k != "dir"}
    restorer = {k: v for k, v in m.restorer.items() if k != "dir"}
    restorer.update(min_score=0.9, rank={"candidates": 4}, greedy_min_score=0.3)
    return save_bundle(
        tmp_path_factory.mktemp("tiny-ranked") / "bundle",
        {"name": "tiny-ranked", "detector": detector, "restorer": restorer},
        {"detector": m.part_dir("detector"), "restorer": m.part_dir("restorer")},
    ).root


@pytest.fixture
def tagged_infill(monkeypatch) -> list:
    """Replace the restorer's model step: every span gets "greedy" (a restorer without ``rank``) or
    "ranked", with probability 0.5; returns the ``(rank, min_score)`` of each restorer called."""
    from degarble.models.restorer import Restorer

    calls: list = []

    def infill(self, items, batch_size=32):
        calls.append((self.rank, self.min_score))
        return [[("ranked" if self.rank else "greedy", 0.5, [])] * len(spans) for _, spans in items]

    monkeypatch.setattr(Restorer, "infill", infill)
    return calls
