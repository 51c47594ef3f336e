"""Tests of the corpus builder (data/build_corpus.py) and the committed sample in data/sample/.

The unit tests need nothing outside the repository. One test builds from a tiny subset of the
shared data and is skipped when that data is absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

from degarble.text import sentences

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_corpus", ROOT / "data" / "build_corpus.py")
bc = importlib.util.module_from_spec(_spec)
sys.modules["build_corpus"] = bc  # dataclasses look their module up there
_spec.loader.exec_module(bc)


# Holes from shared/data/wikinews_en/SOURCE.md and enwiki_2015_sample/SOURCE.md, and others seen
# in the data, each with the pattern that must catch it.
HOLES = [
    ("Australia's , in a unanimous decision today, found to be legal.", "space_before_punct"),
    ("He was sworn in as Prime Minister , New Democracy party leader.", "space_before_punct"),
    ("The orchestra praised the performance of German composer 's new work.", "space_apostrophe_s"),
    ("He was arrested in the city of when he tried to leave the country.", "prep_gap"),
    ("Lunch was served in the .", "space_before_punct"),
    (", the of the People's Republic of China had lunch today.", "det_gap"),
    (", the head of state, had lunch today with the president.", "start_punct"),
    ("The leader of the , was sworn in hours after the death.", "space_before_punct"),
    ('The "" had initially reported that the former minister was selected.', "empty_quotes_brackets"),
    ("Ministers were present: (Economy), (), (Agriculture).", "empty_quotes_brackets"),
    ("Also present was Eduardo Dutra ( company president) at the event.", "bracket_or_comma_gap"),
    ("Halteres (; singular halter or balancer) are small knobbed structures.", "bracket_or_comma_gap"),
    ("The visit was met with the of the new government in the capital.", "det_gap"),
    ("Residents of and who remained in the region were told to stay home.", "prep_gap"),
    ("The chief economist with told media sources this week that jobs grew.", "prep_gap"),
    ("Analysis is currently occurring. would now like to discuss it with witnesses.", "stop_then_lowercase"),
    ("geophysicist Professor John Valley said the crystal formed at low temperature.", "lowercase_start"),
]

CLEAN = [
    "Quarterly profits at US media giant TimeWarner jumped 76% to $1.13bn (£600m) for the three months.",
    "Singer Bruce Springsteen has inducted Irish rock band U2 into the Rock and Roll Hall of Fame, in New York.",
    "Mr. Sharon's administration has not yet survived the upcoming vote on the 2005 budget.",
    '"I am fine and I will meet my patients tomorrow," Phyu Phyu Thin was quoted as saying.',
    "She had been working on it for a while, and the will of the people was clear.",
    "The U.S. Senate voted 72-39 on Tuesday, with three abstentions.",
    "Instead of in the late fall, payments will be made at once, officials said.",
    "It was the biggest thing he had ever been part of, he said.",
    "Prices rose 2% to $11.1bn, according to figures released by the company at 9 a.m. on Friday.",
    "Former Stone Roses singer Ian Brown was arrested after a fight, his spokesman has said.",
    "A total of at least 80 people died, and the rest were taken to hospital in the capital.",
    "The site, which she claimed to be unaware of, was closed by the council in March.",
]


@pytest.mark.parametrize("sentence,pattern", HOLES)
def test_hole_regex_catches_known_holes(sentence, pattern):
    assert bc.hole_reason(sentence) == pattern


@pytest.mark.parametrize("sentence", CLEAN)
def test_hole_regex_leaves_normal_sentences(sentence):
    assert bc.hole_reason(sentence) is None
    assert bc.sentence_reason(sentence) is None


@pytest.mark.parametrize(
    "sentence,reason",
    [
        ("He said so.", "too_short"),
        (" ".join(["word"] * 81) + ".", "too_long"),
        ("The company reported a profit of five million dollars in the year", "no_final_punct"),
        ("Net 807,000 vs 2,858,000 and 1.19 vs 3.45 in 1986 or 1987.", "mostly_non_letters"),
        ("THIS MESSAGE IS FOR INFORMATION PURPOSES ONLY AND NOTHING ELSE.", "all_caps"),
        ('"We will fight tooth and nail to stop him whatever he says.', "unbalanced_quotes_brackets"),
        ("The results were published (see the annex for details.", "unbalanced_quotes_brackets"),
        ("Details are available at http://example.org/report on the site.", "url"),
        ("Lawyers from the EFF (www.eff.org) are serving as defense counsel.", "url"),
        ("Shares of Standard Oil <SRD> rose sharply in trading on Monday.", "markup"),
        ("The rule is applied when formula_34 and formula_35 are competing.", "markup"),
        ("He went to the internet caf&#233; in the town on Friday morning.", "markup"),
        ("Photo: The president arrives at the summit in Brussels on Monday.", "byline_caption_label"),
        ("Wikinews: What do you think about the outcome of the election?", "byline_caption_label"),
    ],
)
def test_sentence_filters(sentence, reason):
    assert bc.sentence_reason(sentence) == reason


def _process(source_name, text):
    source = next(s for s in bc.SOURCES if s.name == source_name)
    out = bc.SplitData()
    bc.process_document(source, "42", text, out)
    return out


GOOD_PARA = (
    "The delegation representing Brazil at the funeral returned today. The chief minister was a member "
    "of the delegation. They arrived too late for the funeral and watched only part of it."
)


def test_paragraph_with_hole_is_dropped_with_its_sentences():
    holey = "The meeting was held in the city of when he arrived. The talks lasted for two full days in the capital."
    out = _process("bbc_news", GOOD_PARA + "\n" + holey)
    assert [p["id"] for p in out.paragraphs] == ["bbc_news-42-p0"]
    assert [s["id"] for s in out.sentences] == ["bbc_news-42-p0-s0", "bbc_news-42-p0-s1", "bbc_news-42-p0-s2"]
    assert out.para_filters["hole:prep_gap"] == 1
    assert out.sent_filters["paragraph_has_hole"] == 1  # the clean neighbour of the hole


def test_wikinews_hole_drops_whole_document():
    out = _process(
        "wikinews_en", GOOD_PARA + "\nAustralia's , in a unanimous decision today, found it to be legal."
    )
    assert out.paragraphs == [] and out.sentences == []
    assert out.para_filters["doc_has_hole"] == 2


def test_enwiki_heading_lines_are_dropped():
    out = _process("enwiki_2015_sample", "Early life and career.\n" + GOOD_PARA)
    assert [p["id"] for p in out.paragraphs] == ["enwiki_2015_sample-42-p1"]
    assert out.para_filters["heading"] == 1
    assert all("Early life" not in s["text"] for s in out.sentences)


def test_record_format():
    out = _process("bbc_news", GOOD_PARA)
    assert out.sentences[1] == {
        "id": "bbc_news-42-p0-s1",
        "source": "bbc_news",
        "doc_id": "42",
        "text": "The chief minister was a member of the delegation.",
    }


def _rec(split, k, text):
    return {"id": f"{split}-{k}", "source": "x", "doc_id": str(k), "text": text}


def test_dedup_test_wins_and_within_split():
    splits = {name: bc.SplitData() for name in ("train", "validation", "test")}
    splits["test"].sentences = [
        _rec("test", 0, "The Cat sat on the mat."),
        _rec("test", 1, "Other text here."),
    ]
    splits["validation"].sentences = [_rec("validation", 0, "the cat  sat on the mat.")]
    splits["train"].sentences = [
        _rec("train", 0, "Fresh text “quoted”."),
        _rec("train", 1, 'fresh text "quoted".'),
        _rec("train", 2, "The cat sat on the mat."),
        _rec("train", 3, "A banned dev sentence."),
    ]
    stats = bc.dedup(splits, "sentences", banned={bc.norm_key("A banned dev sentence.")})
    assert [r["id"] for r in splits["test"].sentences] == ["test-0", "test-1"]
    assert splits["validation"].sentences == []
    assert [r["id"] for r in splits["train"].sentences] == ["train-0"]
    assert stats["validation"] == {"in_test": 1}
    assert stats["train"] == {"dev_set_overlap": 1, "in_test": 1, "within_split": 1}


def test_doc_split_is_deterministic_and_about_two_and_a_half_percent():
    wn = bc.SOURCES[0]
    splits = [bc.doc_split(wn, str(i)) for i in range(20_000)]
    assert splits == [bc.doc_split(wn, str(i)) for i in range(20_000)]
    share = Counter(splits)["validation"] / len(splits)
    assert 0.02 < share < 0.03
    # Fixed values: changing the hash or the threshold would silently reshuffle the splits.
    assert [i for i in range(200) if splits[i] == "validation"] == _EXPECTED_VALIDATION_IDS
    bbc = next(s for s in bc.SOURCES if s.name == "bbc_news")
    assert bc.doc_split(bbc, "business/001") == "test"


_EXPECTED_VALIDATION_IDS = [46, 85, 154, 156, 160, 175, 181]


def test_only_open_sources_feed_train_and_validation():
    for s in bc.SOURCES:
        if s.split == "open":
            assert s.name in {"wikinews_en", "enwiki_2015_sample"}
        else:
            assert s.split.startswith("test")


@pytest.mark.parametrize("kind,expected", [("sentences", 300), ("paragraphs", 100)])
def test_committed_sample_parses_and_is_open_licence_train(kind, expected):
    path = ROOT / "data" / "sample" / f"{kind}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == expected
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"id", "source", "doc_id", "text"}
        assert r["source"] in {"wikinews_en", "enwiki_2015_sample"}  # never BBC/Reuters/ABC
        assert r["id"].startswith(f"{r['source']}-{r['doc_id']}-p")
        assert bc.doc_split(next(s for s in bc.SOURCES if s.name == r["source"]), r["doc_id"]) == "train"
        if kind == "sentences":
            assert bc.sentence_reason(r["text"]) is None
            assert len(sentences(r["text"])) == 1
        else:
            assert bc.paragraph_reason(r["text"]) is None


def test_committed_manifests_are_consistent():
    for split in bc.SPLIT_ORDER:
        m = json.loads((ROOT / "data" / "manifests" / f"{split}.json").read_text(encoding="utf-8"))
        assert m["builder"] == bc.BUILDER_VERSION
        assert m["evaluation_only"] == split.startswith("test")
        assert m["limit_docs_per_source"] is None
        assert m["files"]["sentences"]["lines"] == m["counts"]["sentences"]
        sources = {s["name"] for s in m["sources"]}
        if split in ("train", "validation"):
            assert sources == {"wikinews_en", "enwiki_2015_sample"}


_SHARED = Path(os.environ.get("DEGARBLE_SHARED_DATA") or bc.DEFAULT_SHARED_DATA)


@pytest.mark.skipif(not (_SHARED / "INDEX.md").exists(), reason="shared data not available")
def test_build_tiny_subset_is_deterministic(tmp_path):
    def run(name):
        d = tmp_path / name
        return bc.build(_SHARED, d / "out", d / "manifests", d / "sample", limit=60, progress=False), d

    manifests, d1 = run("a")
    _, d2 = run("b")
    for f in sorted((d1 / "out").iterdir()):
        assert f.read_bytes() == (d2 / "out" / f.name).read_bytes()
    for f in sorted((d1 / "manifests").iterdir()):
        assert f.read_bytes() == (d2 / "manifests" / f.name).read_bytes()
    assert set(manifests) == set(bc.SPLIT_ORDER)

    # No text and no article in two splits; no held-out source in train/validation.
    seen_text, seen_doc = {}, {}
    for split in bc.SPLIT_ORDER:
        for line in (d1 / "out" / f"{split}.sentences.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            key = bc.norm_key(r["text"])
            assert seen_text.setdefault(key, split) == split
            assert seen_doc.setdefault((r["source"], r["doc_id"]), split) == split
            if split in ("train", "validation"):
                assert r["source"] in {"wikinews_en", "enwiki_2015_sample"}


def test_realism_fit_loss_measures_how_much_worse_a_swap_fits_than_its_original():
    """data/realism.py's fit loss: one value per one-word swap between unchanged neighbours, positive
    where the original fits better (by the bigram counts natural.v1 uses)."""
    spec = importlib.util.spec_from_file_location("realism", ROOT / "data" / "realism.py")
    realism = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(realism)
    losses = realism.fit_losses(realism.substitutions("The foreign minister told state media on Monday.",
                                                      "The overseas minister told state media on Monday."))
    assert len(losses) == 1 and losses[0] > 1.0  # "foreign minister" is far likelier than "overseas minister"
    assert realism.fit_losses(realism.substitutions("The minister told state media.",
                                                    "The minister told state media.")) == []
