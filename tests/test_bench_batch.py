"""Tests for degarble.bench_batch on the tiny random bundle: the report's shape and arithmetic, no timings."""

from __future__ import annotations

import json

import pytest

import degarble
from degarble import bench_batch

PARAS = [{"id": "p1", "text": "The council approved the budget.", "source": "x"},
         {"id": "p2", "text": "Rain is expected in the north.", "source": "y"}]


def test_archives_repeat_the_paragraphs(tmp_path):
    info = bench_batch.make_archive(tmp_path / "a.jsonl", PARAS, 5)
    recs = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["text"] for r in recs] == [PARAS[i % 2]["text"] for i in range(5)]
    assert len({r["id"] for r in recs}) == 5 and recs[1]["source"] == "y"
    assert info["records"] == 5 and info["bytes"] == (tmp_path / "a.jsonl").stat().st_size

    big = bench_batch.write_big_archive(tmp_path / "b.jsonl", 50_000, PARAS)
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    assert big["bytes"] >= 50_000 and big["records"] == len(lines)
    recs = [json.loads(line) for line in lines]  # every line is a valid record
    assert len({r["id"] for r in recs}) == len(recs) and recs[3] == {"id": "b000000003", **{
        k: v for k, v in PARAS[1].items() if k != "id"}}


def test_median_run_keeps_every_rate():
    runs = [{"records_per_s": 3.0, "n": "a"}, {"records_per_s": 1.0, "n": "b"},
            {"records_per_s": 2.0, "n": "c"}]
    best = bench_batch._median_run(runs)
    assert best["n"] == "c" and best["records_per_s_runs"] == [3.0, 1.0, 2.0]
    assert "records_per_s_runs" not in bench_batch._median_run(runs[:1])


def test_report_in_process(tiny_bundle, tmp_path, monkeypatch):
    # Ray is never started by the test suite: the engine is reported as skipped, with the reason
    monkeypatch.setattr(bench_batch, "_ray_missing", lambda: "ray is not installed (test)")
    r = bench_batch.run_bench_batch(
        tiny_bundle, records=40, workers_list=[1], engines=["local", "ray"], tasks=["detect", "restore"],
        chunk_size=8, in_process=True, tmp_dir=tmp_path)
    json.dumps(r)  # JSON-ready
    assert r["format"] == "degarble-bench-batch.v1" and r["failures"] == 0
    assert r["model"]["bundle_hash"] == degarble.load(tiny_bundle).bundle_hash
    assert r["machine"]["cpu_count"] >= 1 and r["machine"]["torch_default_threads"] >= 1
    assert r["settings"]["records"] == 40 and r["settings"]["isolated_processes"] is False
    assert r["input"]["records"] == 40
    skipped = {s["what"]: s["reason"] for s in r["skipped"]}
    assert "no restorer" in skipped["task restore"] and "not installed" in skipped["engine ray"]

    direct = r["direct"]["detect"]
    assert set(r["direct"]) == {"detect"} and direct["records"] == 40 and direct["records_per_s"] > 0
    assert set(r["job"]) == {"detect", "validate"}
    for task in ("detect", "validate"):
        assert set(r["job"][task]) == {"local/w1"}
        job = r["job"][task]["local/w1"]
        assert (job["records"], job["written"], job["errors"], job["chunks"]) == (40, 40, 0, 5)
        # seconds are rounded to 1 ms in the report, so compare times, not rates
        assert 40 / job["records_per_s"] == pytest.approx(job["seconds"], abs=1e-3)
        mem = job["memory"]
        assert mem["driver_peak_rss_mb"] > 0 and "children_max_rss_mb" in mem
        assert "available" in mem["sampled"]
    job = r["job"]["detect"]["local/w1"]
    # the ratios come from the reported rates
    assert r["ratio_to_direct"]["detect"]["local/w1"] == job["ratio_to_direct"]
    assert job["ratio_to_direct"] == pytest.approx(job["records_per_s"] / direct["records_per_s"], abs=1e-4)
    assert r["ratio_to_direct_incl_load"]["detect"]["local/w1"] == pytest.approx(
        job["records_per_s"] / direct["records_per_s_incl_load"], abs=1e-4)
    assert "ratio_to_direct" not in r["job"]["validate"]["local/w1"]
    assert r["signature"].startswith("degarble-bench-batch|model:tiny-test@")
    assert list(tmp_path.iterdir()) == []  # archives and outputs are gone


def test_cli_big_input_in_fresh_processes(tmp_path, capsys, monkeypatch):
    """Model-free: the validate runs and the --big-gb mode, each in a fresh process, JSON to a file."""
    monkeypatch.setenv("DEGARBLE_MODEL", str(tmp_path / "no-bundle"))  # no bundle is needed without tasks
    out = tmp_path / "reports" / "bench_batch.json"
    rc = bench_batch.main(["--tasks", "", "--records", "20", "--chunk-size", "8", "--engines", "local",
                           "--workers-list", "1", "--big-workers", "1", "--big-gb", "0.0002",
                           "--tmp-dir", str(tmp_path), "--output", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r == json.loads(capsys.readouterr().out)
    assert r["model"] is None and r["direct"] == {} and r["settings"]["isolated_processes"] is True
    assert r["job"]["validate"]["local/w1"]["written"] == 20
    big = r["big"]
    assert big["bytes"] >= 200_000 and big["run"]["written"] == big["records"]
    assert big["records_per_s"] == big["run"]["records_per_s"] and big["reference"]["records"] == 20
    assert big["driver_rss_growth_mb"] == pytest.approx(
        big["driver_peak_rss_mb"] - big["reference"]["driver_peak_rss_mb"], abs=0.15)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


def test_usage_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEGARBLE_MODEL", str(tmp_path / "no-bundle"))
    assert bench_batch.main(["--tasks", "detect"]) == 2  # a model task and no bundle
    assert "no bundle" in capsys.readouterr().err
    assert bench_batch.main(["--tasks", "", "--records", "0"]) == 2
    with pytest.raises(SystemExit):
        bench_batch.main(["--engines", "spark"])
