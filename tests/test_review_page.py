"""The reviewer's views of a restoration: choice_segments and the HTML page (restore --format html)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from degarble.edits import EditError, apply_edits, choice_segments
from degarble.review_page import HEAD, record_block
from degarble.types import Edit

TEXT = "The big firm told the Common Meeting on Monday.\n\nNothing else."


def _edits():
    b, c = TEXT.index("big"), TEXT.index("Common")
    return [Edit(c, c + 6, "Common", "General", 0.8,
                 alternatives=(Edit(c, c + 14, "Common Meeting", "World Body", 0.3),)),
            Edit(b, b + 3, "big", "large", 0.9)]


def _join(segments, pick):
    """The text of ``segments``, ``pick`` choosing each change's wording (a flag stays as it is)."""
    return "".join(s if isinstance(s, str) else s["flag"] if "flag" in s else pick(s) for s in segments)


def test_choice_segments_rebuild_the_restoration_and_the_original():
    segs = choice_segments(TEXT, _edits())
    assert _join(segs, lambda s: s["options"][0]["text"]) == apply_edits(TEXT, _edits())
    assert _join(segs, lambda s: s["original"]) == TEXT
    # an alternative over more words than its edit: every option covers the same stretch
    (meeting,) = [s for s in segs if not isinstance(s, str) and s["original"].startswith("Common")]
    assert meeting["original"] == "Common Meeting"
    assert [o["text"] for o in meeting["options"]] == ["General Meeting", "World Body"]
    assert [o["score"] for o in meeting["options"]] == [0.8, 0.3]
    assert _join(segs, lambda s: s["options"][-1]["text"]).startswith("The large firm told the World Body on")
    assert choice_segments(TEXT, []) == [TEXT] and choice_segments("", []) == []


def test_choice_segments_mark_flagged_words_no_change_covers():
    from degarble.types import Span

    told, common = TEXT.index("told"), TEXT.index("Common")
    flagged = [Span(told, told + 4, 0.7), Span(common, common + 14, 0.9), Span(0, 3, 0.6)]
    segs = choice_segments(TEXT, _edits(), flagged)
    flags = [s for s in segs if isinstance(s, dict) and "flag" in s]
    # "Common Meeting" lies under a change: only the others are marked
    assert flags == [{"flag": "The", "score": 0.6}, {"flag": "told", "score": 0.7}]
    text_of = lambda s: s["flag"] if "flag" in s else s["original"]  # noqa: E731
    assert _join(segs, lambda s: text_of(s)) == TEXT


def test_choice_segments_reject_edits_that_do_not_fit():
    b = TEXT.index("big")
    with pytest.raises(EditError, match="expects"):
        choice_segments(TEXT, [Edit(b, b + 3, "bog", "large")])
    with pytest.raises(EditError, match="overlapping"):
        choice_segments(TEXT, [Edit(b, b + 3, "big", "large"), Edit(b, b + 8, "big firm", "company")])


def _records(page: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json" class="degarble-record">(.*?)</script>', page, re.S)
    return [json.loads(b) for b in blocks]


def test_record_block_cannot_end_its_script_early():
    hostile = 'He said "</script><script>alert(1)</script><!--" so.'
    s = hostile.index("said")
    block = record_block("line 1 </script>", hostile, [Edit(s, s + 4, "said", "</b>told", 0.5)])
    assert block.count("</script>") == 1 and "<!--" not in block and "<script>" not in block[1:]
    (data,) = _records(block)
    assert data["header"] == "line 1 </script>"
    assert _join(data["segments"], lambda x: x["original"]) == hostile


def test_restore_html_page(tmp_path, tiny_ranked_bundle, monkeypatch):
    """One page: the head once, a block per record (the empty one too), each rebuilding the
    record's restoration and its original; and the page's own script, run on a stand-in DOM
    under node, draws every record, and its buttons and menus give those texts."""
    from degarble.cli import main
    from degarble.models.restorer import Restorer

    def infill(self, items, batch_size=32):
        return [[("first", 0.95, [("second", 0.4)][: self.alternatives])] * len(spans) for _, spans in items]

    monkeypatch.setattr(Restorer, "infill", infill)
    from degarble.models.detector import Detector

    detect, passes = Detector.detect, []
    monkeypatch.setattr(Detector, "detect", lambda self, *a, **k: passes.append(1) or detect(self, *a, **k))
    texts = ["The deputy overseas minister said so. He mentioned <b>it</b>.", "", "Officials mentioned the firm."]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{k}", "text": t}) + "\n" for k, t in enumerate(texts)))
    jsonl, page = tmp_path / "out.jsonl", tmp_path / "review.html"
    args = ["restore", str(src), "--model", str(tiny_ranked_bundle), "--alternatives", "1"]
    assert main([*args, "-o", str(jsonl)]) == 0
    jsonl_passes = len(passes)
    assert main([*args, "--format", "html", "-o", str(page)]) == 0
    assert len(passes) == 2 * jsonl_passes  # the page restores from its own detections: no second pass
    html = page.read_text()
    assert html.startswith("<!doctype html>") and html.count(HEAD) == 1 and "<b>it</b>" not in html
    restored = [json.loads(line)["restored"] for line in jsonl.read_text().splitlines()]
    records = _records(html)
    assert [r["header"] for r in records] == [f"line {k + 1} (id=r{k})" for k in range(3)]
    for data, text, fixed in zip(records, texts, restored):
        assert _join(data["segments"], lambda s: s["options"][0]["text"]) == fixed
        assert _join(data["segments"], lambda s: s["original"]) == text
    assert any(len(s["options"]) == 2 for s in records[0]["segments"] if not isinstance(s, str) and "options" in s)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    blank = tmp_path / "blank.html"
    assert main(["restore", str(empty), "--model", str(tiny_ranked_bundle), "--format", "html", "-o", str(blank)]) == 0
    assert blank.read_text() == HEAD  # no records: still a page, with nothing to review

    drawn = _run_page(page)
    assert [d["header"] for d in drawn] == [r["header"] for r in records]
    for d, data, text, fixed in zip(drawn, records, texts, restored):
        assert d["first"] == fixed and d["rejected"] == text
        changes = [s for s in data["segments"] if not isinstance(s, str) and "flag" not in s]
        assert d["menus"] == len(changes) and d["options"] == [len(s["options"]) + 1 for s in changes]
        if changes:  # the first menu set to the original: only that change undone
            first = changes[0]
            assert d["picked"] == fixed[: first["start"]] + first["original"] + fixed[
                first["start"] + len(first["options"][0]["text"]):]


def test_edit_round_trips_through_its_dict():
    for e in _edits():
        back = Edit.from_dict(json.loads(json.dumps(e.to_dict())))
        assert back == e and back.alternatives == e.alternatives
    assert Edit.from_dict({"start": 0, "end": 3, "before": "big", "after": "large"}) == Edit(0, 3, "big", "large")


def _run_page(page: Path) -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page's script was not run (its data is checked in Python)")
    dom = Path(__file__).parent / "fixtures" / "review_page_dom.js"
    return json.loads(subprocess.run([node, str(dom), str(page)], capture_output=True, text=True, check=True).stdout)


def test_page_script_draws_flags_as_text_and_changes_as_menus(tmp_path):
    from degarble.types import Span

    told = TEXT.index("told")
    page = tmp_path / "p.html"
    page.write_text(HEAD + record_block("one", TEXT, _edits(), [Span(told, told + 4, 0.7)]))
    (drawn,) = _run_page(page)
    assert drawn["menus"] == 2 and drawn["options"] == [2, 3]  # big: 1 + original; Common: 2 + original
    assert drawn["first"] == apply_edits(TEXT, _edits()) and drawn["rejected"] == TEXT
