"""The batch job (``degarble batch`` / ``degarble.batch.run_batch``) on the tiny random-weight bundle.

Covers every input format, both output formats, bad records, resuming (parts on disk, a changed
input refused, half-written parts ignored), a real kill in the middle of a run followed by a rerun
(exactly-once), the worker pool, and the Hugging Face ``datasets`` route.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import degarble
import degarble.batch
from degarble.batch import BatchError, run_batch
from degarble.cli import main

REPO = Path(__file__).resolve().parents[1]
SENTENCES = REPO / "data" / "sample" / "sentences.jsonl"


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return [json.loads(line)["text"] for line in SENTENCES.open(encoding="utf-8")]


def write_jsonl(path: Path, records) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_output(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return read_jsonl(path)


def direct(bundle, texts: list[str]) -> list[dict]:
    """What the model says when called directly: the reference for every format."""
    return [d.to_dict() for d in degarble.load(bundle).detect(texts)]


def run(inp, out, bundle, **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("chunk_size", 4)
    kw.setdefault("progress", False)
    kw.setdefault("log", lambda msg: None)
    return run_batch(inp, out, model=bundle, **kw)


# --------------------------------------------------------------------------------------------
# input formats


@pytest.mark.parametrize("name", ["in.jsonl", "in.jsonl.gz"])
@pytest.mark.parametrize("out_name", ["out.jsonl", "out.jsonl.gz", "out.parquet"])
def test_jsonl_in_all_outputs(tmp_path, tiny_bundle, sentences, name, out_name):
    texts = sentences[:10]
    recs = [{"id": f"a{i}", "text": t, "source": "wiki", "n": i} for i, t in enumerate(texts)]
    inp = write_jsonl(tmp_path / name, recs)
    out = tmp_path / out_name
    s = run(inp, out, tiny_bundle)
    assert s.finished and (s.records, s.written, s.errors) == (10, 10, 0)
    got = read_output(out)
    ref = direct(tiny_bundle, texts)
    assert [r["id"] for r in got] == [r["id"] for r in recs]  # input order kept
    for g, r, d in zip(got, recs, ref):
        assert {k: g[k] for k in r} == r  # every input field passes through
        assert g["is_spun"] == d["is_spun"] and g["spun_score"] == pytest.approx(d["spun_score"], abs=1e-3)
        assert [(sp["start"], sp["end"]) for sp in g["spans"]] == [(sp["start"], sp["end"]) for sp in d["spans"]]
    assert read_jsonl(tmp_path / (out_name + ".errors.jsonl")) == []
    assert not (tmp_path / (out_name + ".parts")).exists()  # state removed once done


def test_csv_input_with_text_field(tmp_path, tiny_bundle, sentences):
    inp = tmp_path / "news.csv"
    with open(inp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "body", "site"])
        for i, t in enumerate(sentences[:6]):
            w.writerow([f"c{i}", t + '\nwith "a quoted" second line', "example.org"])
    out = tmp_path / "out.jsonl"
    s = run(inp, out, tiny_bundle, text_field="body")
    assert (s.written, s.errors) == (6, 0)
    got = read_jsonl(out)
    assert [g["id"] for g in got] == [f"c{i}" for i in range(6)]
    assert got[0]["body"].endswith('with "a quoted" second line') and got[0]["site"] == "example.org"
    assert {"spun_score", "is_spun", "spans"} <= set(got[0])
    with pytest.raises(BatchError, match='no "text" column'):
        run(inp, tmp_path / "o2.jsonl", tiny_bundle)


def test_parquet_input_position_ids(tmp_path, tiny_bundle, sentences):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = sentences[:9] + [None]
    inp = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": texts, "year": list(range(2000, 2010))}), inp, row_group_size=4)
    out = tmp_path / "out.parquet"
    s = run(inp, out, tiny_bundle, chunk_size=3)
    assert (s.records, s.written, s.errors) == (10, 9, 1)
    got = read_output(out)
    assert [g["id"] for g in got] == list(range(1, 10))  # no id field: the row number is the id
    assert [g["year"] for g in got] == list(range(2000, 2009))
    errs = read_jsonl(tmp_path / "out.parquet.errors.jsonl")
    assert errs == [{"id": 10, "line": 10, "error": '"text" must be a string, got null'}]


HTML = """<!doctype html><html><head><title>Site</title></head><body>
<nav><a href="/">Home</a> | <a href="/news">News</a> | <a href="/about">About us</a></nav>
<article><h1>Council approves the new budget</h1>
<p>The city council approved the new budget on Monday after a long debate about road repairs,
school funding and the future of the public library, which had faced closure last year.</p>
<p>The deputy mayor said the plan would keep taxes level while adding two hundred teachers
over the next three years, a promise that opposition members called unrealistic.</p>
</article><footer>Copyright 2024 Example News. All rights reserved.</footer></body></html>"""


def test_directory_of_txt_and_html(tmp_path, tiny_bundle, sentences):
    pytest.importorskip("trafilatura", reason="HTML extraction needs trafilatura (pip install 'degarble[batch]')")
    root = tmp_path / "pages"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text(sentences[0], encoding="utf-8")
    (root / "sub" / "b.html").write_text(HTML, encoding="utf-8")
    (root / "c.txt").write_bytes(b"caf\xe9 au lait")  # Latin-1, not UTF-8
    (root / "d.html").write_text("<html><body><script>var a = 1;</script></body></html>", encoding="utf-8")
    (root / "e.txt").write_text("   \n", encoding="utf-8")
    (root / "notes.md").write_text("ignored", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    s = run(root, out, tiny_bundle, chunk_size=2)
    assert (s.records, s.written, s.errors) == (5, 2, 3)
    got = {g["id"]: g for g in read_jsonl(out)}
    assert set(got) == {"a.txt", "sub/b.html"}
    assert got["a.txt"]["text"] == sentences[0]
    page = got["sub/b.html"]["text"]
    assert "deputy mayor" in page and "All rights reserved" not in page and "About us" not in page
    errs = {e["id"]: e["error"] for e in read_jsonl(tmp_path / "out.jsonl.errors.jsonl")}
    assert set(errs) == {"c.txt", "d.html", "e.txt"}
    assert "UTF-8" in errs["c.txt"] and "no main text" in errs["d.html"] and "empty" in errs["e.txt"]


# --------------------------------------------------------------------------------------------
# bad records


def test_bad_records_go_to_errors_and_the_job_goes_on(tmp_path, tiny_bundle, sentences, capsys):
    good = sentences[:3]
    lines = [
        json.dumps({"id": "g0", "text": good[0]}),
        json.dumps({"id": "no-text", "body": "x"}),
        json.dumps({"id": "num", "text": 42}),
        json.dumps({"id": "empty", "text": ""}),
        json.dumps({"id": "blank", "text": "  \n "}),
        "{not json",
        "[1, 2]",
        json.dumps({"id": "long", "text": "word " * 300}),
        "",  # a blank line is not a record
        json.dumps({"text": good[1]}),  # no id: its line number is its id
        json.dumps({"id": "g2", "text": good[2]}),
    ]
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "bytes", "text": "caf\xe9"}\n')
    out, errs = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    rc = main(["batch", str(inp), "-o", str(out), "--errors", str(errs), "--model", str(tiny_bundle),
               "--workers", "1", "--chunk-size", "3", "--max-chars", "1000", "--no-progress"])
    assert rc == 1  # some records failed
    assert [g["id"] for g in read_jsonl(out)] == ["g0", 10, "g2"]
    e = {r["id"]: r for r in read_jsonl(errs)}
    assert set(e) == {"no-text", "num", "empty", "blank", 6, 7, "long", "bytes"}
    assert e["no-text"]["error"] == 'missing "text" field' and e["no-text"]["line"] == 2
    assert "must be a string" in e["num"]["error"] and "empty" in e["empty"]["error"]
    assert "empty" in e["blank"]["error"] and "invalid JSON" in e[6]["error"]
    assert "expected a JSON object" in e[7]["error"] and "over the limit" in e["long"]["error"]
    assert "UTF-8" in e["bytes"]["error"] and e["bytes"]["line"] == 12
    err = capsys.readouterr().err
    assert "3 written" in err and "8 errors" in err and "11 records read" in err


def test_model_failure_on_one_record_fails_only_that_record(tmp_path, tiny_bundle, sentences, monkeypatch):
    from degarble.model import Model

    real = Model.detect

    def flaky(self, texts, batch_size=32, threshold=None):
        if any("BOOM" in t for t in texts):
            raise RuntimeError("cannot score this")
        return real(self, texts, batch_size=batch_size, threshold=threshold)

    monkeypatch.setattr(Model, "detect", flaky)
    recs = [{"id": "a", "text": sentences[0]}, {"id": "b", "text": "BOOM goes the model"},
            {"id": "c", "text": sentences[1]}]
    out = tmp_path / "out.jsonl"
    s = run(write_jsonl(tmp_path / "in.jsonl", recs), out, tiny_bundle)
    assert [g["id"] for g in read_jsonl(out)] == ["a", "c"] and s.errors == 1
    (e,) = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
    assert e["id"] == "b" and "model failed: RuntimeError: cannot score this" in e["error"]


def test_setup_errors_exit_2(tmp_path, tiny_bundle, capsys):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"text": "hello there"}])
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(tmp_path / "missing.jsonl"), "-o", str(out), "--model", str(tiny_bundle)]) == 2
    assert "not found" in capsys.readouterr().err
    # the tiny bundle has no restorer
    assert main(["batch", str(inp), "-o", str(out), "--model", str(tiny_bundle), "--task", "restore"]) == 2
    assert "no restorer" in capsys.readouterr().err
    assert main(["batch", str(inp), "-o", str(tmp_path / "nodir" / "o.jsonl"), "--model", str(tiny_bundle)]) == 2
    assert not out.exists()


def test_validate_task_needs_no_model(tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"text": "one"}, {"text": 1}, {"id": "x", "text": "two"}])
    out = tmp_path / "out.jsonl"
    s = run_batch(inp, out, task="validate", workers=1, progress=False, log=lambda m: None)
    assert read_jsonl(out) == [{"id": 1, "text": "one"}, {"id": "x", "text": "two"}] and s.errors == 1


# --------------------------------------------------------------------------------------------
# resuming


def _records(sentences, n):
    return [{"id": f"r{i}", "text": sentences[i % len(sentences)], "i": i} for i in range(n)]


def test_resume_skips_done_chunks_and_gives_the_same_output(tmp_path, tiny_bundle, sentences, monkeypatch):
    inp = write_jsonl(tmp_path / "in.jsonl", _records(sentences, 20) + ["{bad"])
    ref_out = tmp_path / "ref.jsonl"
    run(inp, ref_out, tiny_bundle)

    # A first run that dies after 2 chunks (the third chunk raises).
    import degarble.batch as batch

    real_run = batch.ChunkRunner.run
    calls = {"n": 0}

    def dying(self, chunk):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_run(self, chunk)

    monkeypatch.setattr(batch.ChunkRunner, "run", dying)
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run(inp, out, tiny_bundle)
    parts = tmp_path / "out.jsonl.parts"
    assert len(list(parts.glob("chunk-*.part"))) == 2 and not out.exists()
    # a half-written part left by a kill is ignored (and cleaned up)
    (parts / ".tmp-chunk-000000002.part-999").write_bytes(b'{"degarble_part": 1, "chunk": 2, "fi')

    monkeypatch.setattr(batch.ChunkRunner, "run", real_run)
    seen = []
    monkeypatch.setattr(batch.ChunkRunner, "run", lambda self, c: seen.append(c.index) or real_run(self, c))
    s = run(inp, out, tiny_bundle)
    assert seen == [2, 3, 4, 5]  # chunks 0 and 1 were not redone
    assert (s.resumed_chunks, s.resumed_records, s.records, s.errors) == (2, 8, 21, 1)
    assert out.read_bytes() == ref_out.read_bytes()
    assert read_jsonl(tmp_path / "out.jsonl.errors.jsonl") == read_jsonl(tmp_path / "ref.jsonl.errors.jsonl")
    assert not parts.exists()


def test_state_of_a_different_job_is_refused(tmp_path, tiny_bundle, sentences):
    inp = write_jsonl(tmp_path / "in.jsonl", _records(sentences, 8))
    out = tmp_path / "out.jsonl"
    run(inp, out, tiny_bundle, keep_parts=True)
    assert (tmp_path / "out.jsonl.parts" / "manifest.json").exists()
    write_jsonl(inp, _records(sentences, 9))  # the input changed
    with pytest.raises(BatchError, match="different job.*input.*--restart"):
        run(inp, out, tiny_bundle)
    with pytest.raises(BatchError, match="threshold"):
        write_jsonl(inp, _records(sentences, 8))
        run(inp, out, tiny_bundle, threshold=0.9)
    s = run(inp, out, tiny_bundle, threshold=0.9, restart=True)
    assert s.resumed_chunks == 0 and s.records == 8


def test_precision_reaches_the_workers_and_is_part_of_the_job(tmp_path, tiny_bundle, sentences):
    texts = sentences[:8]
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out.jsonl"
    run(inp, out, tiny_bundle, precision="fp32", chunk_size=8, batch_size=32, keep_parts=True)
    ref = [d.to_dict() for d in degarble.load(tiny_bundle, precision="fp32").detect(texts)]
    assert [g["spun_score"] for g in read_jsonl(out)] == pytest.approx([d["spun_score"] for d in ref], abs=1e-5)
    assert json.loads((tmp_path / "out.jsonl.parts" / "manifest.json").read_text())["precision"] == "fp32"
    with pytest.raises(BatchError, match="different job.*precision"):  # resuming in another precision
        run(inp, out, tiny_bundle, precision="bf16")


# the manifest keys of a job state written before --greedy existed
_PRE_GREEDY_KEYS = {"state_version", "input", "input_format", "text_field", "task", "model", "precision",
                    "threshold", "chunk_size", "max_chars"}


def test_greedy_reaches_the_workers_and_is_part_of_the_job(tmp_path, tiny_ranked_bundle, tagged_infill):
    texts = ["The deputy overseas minister said so.", "Officials mentioned the meeting."]
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out.jsonl"
    state = tmp_path / "out.jsonl.parts" / "manifest.json"
    run(inp, out, tiny_ranked_bundle, task="restore", greedy=True, keep_parts=True)
    assert json.loads(state.read_text())["greedy"] is True
    ref = degarble.load(tiny_ranked_bundle).restore(texts, greedy=True)
    assert [r["restored"] for r in read_jsonl(out)] == [r.text for r in ref]
    assert all(r["edits"] for r in read_jsonl(out)) and tagged_infill[0] == (None, 0.3)
    hf = degarble.batch.hf_map("restore", model=tiny_ranked_bundle, greedy=True)({"text": texts})
    assert hf["restored"] == [r.text for r in ref]
    with pytest.raises(BatchError, match="different job.*differs in greedy"):  # resuming without --greedy
        run(inp, out, tiny_ranked_bundle, task="restore")

    # greedy off: no "greedy" key, so a state written before the option existed still resumes
    s = run(inp, out, tiny_ranked_bundle, task="restore", restart=True, keep_parts=True)
    assert set(json.loads(state.read_text())) == _PRE_GREEDY_KEYS
    assert all(r["edits"] == [] for r in read_jsonl(out))  # ranked: 0.5 is under min_score 0.9
    resumed = run(inp, out, tiny_ranked_bundle, task="restore", keep_parts=True)
    assert resumed.resumed_chunks == resumed.chunks == s.chunks
    with pytest.raises(BatchError, match="different job.*differs in greedy"):
        run(inp, out, tiny_ranked_bundle, task="restore", greedy=True)


def test_min_score_reaches_the_workers_and_is_part_of_the_job(tmp_path, tiny_ranked_bundle, tagged_infill, capsys):
    """--min-score replaces the bundle's min_score (0.9) in the workers and in hf_map; it is part of
    the job, and a state written without it (before it existed) still resumes. The fake model
    step scores every replacement 0.5."""
    texts = ["The deputy overseas minister said so.", "Officials mentioned the meeting."]
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out.jsonl"
    state = tmp_path / "out.jsonl.parts" / "manifest.json"
    assert main(["batch", str(inp), "-o", str(out), "--model", str(tiny_ranked_bundle), "--task", "restore",
                 "--min-score", "0.4", "--keep-parts", "--workers", "1"]) == 0
    assert json.loads(state.read_text())["min_score"] == 0.4
    assert all(r["edits"] for r in read_jsonl(out)) and {x[1] for x in tagged_infill} == {0.4}
    ref = degarble.load(tiny_ranked_bundle).restore(texts, min_score=0.4)
    assert [r["restored"] for r in read_jsonl(out)] == [r.text for r in ref]
    hf = degarble.batch.hf_map("restore", model=tiny_ranked_bundle, min_score=0.4)({"text": texts})
    assert hf["restored"] == [r.text for r in ref]
    with pytest.raises(BatchError, match="different job.*differs in .*min_score"):
        run(inp, out, tiny_ranked_bundle, task="restore", chunk_size=256)
    s = run(inp, out, tiny_ranked_bundle, task="restore", restart=True, keep_parts=True)
    assert set(json.loads(state.read_text())) == _PRE_GREEDY_KEYS and s.records == 2
    with pytest.raises(BatchError, match="--min-score applies to --task restore only"):
        run(inp, out, tiny_ranked_bundle, min_score=0.4)
    with pytest.raises(BatchError, match="between 0 and 1"):
        run(inp, out, tiny_ranked_bundle, task="restore", min_score=1.5)
    with pytest.raises(ValueError, match="restore only"):
        degarble.batch.hf_map("detect", min_score=0.4)


def test_threshold_sets_the_paragraphs_a_restore_job_changes(tmp_path, tiny_ranked_bundle, tagged_infill):
    """--threshold reaches restore in the workers: at 1 no paragraph is judged spun, nothing changes."""
    texts = ["The deputy overseas minister said so.", "Officials mentioned the meeting."]
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(inp), "-o", str(out), "--model", str(tiny_ranked_bundle), "--task", "restore",
                 "--min-score", "0.4", "--threshold", "1", "--workers", "1"]) == 0
    assert [(r["restored"], r["edits"]) for r in read_jsonl(out)] == [(t, []) for t in texts]
    assert main(["batch", str(inp), "-o", str(out), "--model", str(tiny_ranked_bundle), "--task", "restore",
                 "--min-score", "0.4", "--threshold", "0", "--workers", "1", "--restart"]) == 0
    ref = degarble.load(tiny_ranked_bundle).restore(texts, min_score=0.4, threshold=0.0)
    assert [r["restored"] for r in read_jsonl(out)] == [r.text for r in ref] and any(r.edits for r in ref)
    # the same option in hf_map, and in the one-text functions of the package
    hf = degarble.batch.hf_map("restore", model=tiny_ranked_bundle, min_score=0.4, threshold=0.0)({"text": texts})
    assert hf["restored"] == [r.text for r in ref]
    assert degarble.restore(texts[0], model=tiny_ranked_bundle, min_score=0.4, threshold=0.0) == ref[0]
    assert degarble.restore(texts[0], model=tiny_ranked_bundle, min_score=0.4, threshold=1.0).edits == []
    assert degarble.batch.hf_map("detect", model=tiny_ranked_bundle, threshold=1.0)({"text": texts})["is_spun"] == [
        False, False]
    assert degarble.batch.hf_map("detect", model=tiny_ranked_bundle, threshold=0.0)({"text": texts})["is_spun"] == [
        True, True]
    assert degarble.detect(texts[0], model=tiny_ranked_bundle, threshold=0.0).is_spun
    assert not degarble.detect(texts[0], model=tiny_ranked_bundle, threshold=1.0).is_spun
    with pytest.raises(ValueError, match="threshold must be within 0 and 1"):
        degarble.batch.hf_map("detect", threshold=1.5)
    with pytest.raises(ValueError, match="min_score must be within 0 and 1"):
        degarble.batch.hf_map("restore", min_score=-0.1)
    # the job refuses to start (rather than failing every record in the workers)
    for kw, flag in (({"threshold": 1.5}, "--threshold"), ({"min_score": -0.1}, "--min-score")):
        with pytest.raises(BatchError, match=f"{flag} must be between 0 and 1"):
            run_batch(inp, out, model=tiny_ranked_bundle, task="restore", workers=1, restart=True, **kw)
    # the one-text functions and Model check too (NaN is out of range)
    model = degarble.load(tiny_ranked_bundle)
    with pytest.raises(ValueError, match="threshold must be within 0 and 1"):
        model.detect(texts, threshold=float("nan"))
    with pytest.raises(ValueError, match="threshold must be within 0 and 1"):
        degarble.detect(texts[0], model=tiny_ranked_bundle, threshold=-1)
    with pytest.raises(ValueError, match="min_score must be within 0 and 1"):
        degarble.restore(texts[0], model=tiny_ranked_bundle, min_score=2)


def test_greedy_goes_with_restore_only(tmp_path, tiny_bundle, capsys):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"text": "hello there"}])
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(inp), "-o", str(out), "--model", str(tiny_bundle), "--greedy"]) == 2
    assert "--greedy applies to --task restore only" in capsys.readouterr().err
    with pytest.raises(BatchError, match="--task restore only, not validate"):
        run_batch(inp, out, task="validate", greedy=True)
    with pytest.raises(ValueError, match="restore only"):
        degarble.batch.hf_map("detect", greedy=True)
    assert not out.exists() and not (tmp_path / "out.jsonl.parts").exists()


def test_rerun_after_completion_rewrites_the_same_output(tmp_path, tiny_bundle, sentences):
    inp = write_jsonl(tmp_path / "in.jsonl", _records(sentences, 6))
    out = tmp_path / "out.jsonl"
    run(inp, out, tiny_bundle)
    first = out.read_bytes()
    run(inp, out, tiny_bundle)
    assert out.read_bytes() == first


def test_worker_pool_matches_in_process(tmp_path, tiny_bundle, sentences):
    inp = write_jsonl(tmp_path / "in.jsonl", _records(sentences, 40))
    run(inp, tmp_path / "one.jsonl", tiny_bundle, workers=1, chunk_size=8)
    s = run(inp, tmp_path / "two.jsonl", tiny_bundle, workers=2, chunk_size=8)
    assert s.records == 40
    one, two = read_jsonl(tmp_path / "one.jsonl"), read_jsonl(tmp_path / "two.jsonl")
    assert [r["id"] for r in one] == [r["id"] for r in two]
    for a, b in zip(one, two):
        assert a["is_spun"] == b["is_spun"] and a["spun_score"] == pytest.approx(b["spun_score"], abs=1e-3)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kill_when_some_parts_exist(cmd, parts: Path, sig: int, env: dict, min_parts: int = 1) -> tuple[int, str]:
    """Start ``cmd`` in its own process group, signal the group once a part exists.

    Returns its exit status and the end of its stderr (for failure messages).
    """
    # A shell starts background jobs with SIGINT ignored, and children inherit that (CI may run
    # this suite so): give the job the default disposition, as in a terminal.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if parts.is_dir() and len(list(parts.glob("chunk-*.part"))) >= min_parts:
                os.killpg(proc.pid, sig)
                break
            time.sleep(0.01)
        rc = proc.wait(timeout=60)
        return rc, proc.stderr.read().decode("utf-8", "replace")[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_killed_runs_resume_to_exactly_once(tmp_path, tiny_bundle, sentences):
    """Ctrl-C, then kill -9 of the whole process group, then a rerun: every record exactly once."""
    n, chunk = 3000, 25
    recs = _records(sentences, n)
    bad_at = set(range(7, n, 97))
    lines = [json.dumps({"id": r["id"], "text": ""}) if i in bad_at else json.dumps(r) for i, r in enumerate(recs)]
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out, errs = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    parts = tmp_path / "out.jsonl.parts"
    cmd = [sys.executable, "-m", "degarble", "batch", str(inp), "-o", str(out), "--errors", str(errs),
           "--model", str(tiny_bundle), "--workers", "2", "--chunk-size", str(chunk), "--no-progress"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    total_chunks = n // chunk

    rc, err = _kill_when_some_parts_exist(cmd, parts, signal.SIGINT, env)
    assert rc == 130, f"Ctrl-C stops the job with status 130, got {rc}: {err}"
    after_int = len(list(parts.glob("chunk-*.part")))
    assert 1 <= after_int < total_chunks and not out.exists()

    rc, err = _kill_when_some_parts_exist(cmd, parts, signal.SIGKILL, env, min_parts=after_int + 1)
    assert rc == -signal.SIGKILL, err
    after_kill = len(list(parts.glob("chunk-*.part")))
    assert after_int < after_kill < total_chunks and not out.exists(), "killed in the middle of the run"

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr  # the empty texts are errors
    assert "resuming" in done.stderr
    got = [r["id"] for r in read_jsonl(out)]
    failed = [r["id"] for r in read_jsonl(errs)]
    assert len(got) == len(set(got)) and len(failed) == len(set(failed))
    assert sorted(got + failed) == sorted(r["id"] for r in recs)  # exactly once, nothing lost
    assert set(failed) == {recs[i]["id"] for i in bad_at}
    assert got == [recs[i]["id"] for i in range(n) if i not in bad_at]  # in input order
    assert not parts.exists()


# --------------------------------------------------------------------------------------------
# Hugging Face datasets


def test_hf_datasets_map_one_liner(tiny_bundle, sentences):
    datasets = pytest.importorskip("datasets")
    import degarble.batch

    ds = datasets.Dataset.from_dict({"text": sentences[:12], "n": list(range(12))})
    ds = ds.map(degarble.batch.hf_map("detect", model=tiny_bundle), batched=True, batch_size=5)
    ref = direct(tiny_bundle, sentences[:12])
    assert ds["n"] == list(range(12))
    assert ds["is_spun"] == [d["is_spun"] for d in ref]
    assert [[(s["start"], s["end"]) for s in spans] for spans in ds["spans"]] == [
        [(s["start"], s["end"]) for s in d["spans"]] for d in ref
    ]
