"""The Ray engine of the batch job: a local Ray cluster on 127.0.0.1 with 2 CPUs runs a small archive,
and its output must equal the local engine's. Skipped when Ray Data is not installed
(``pip install 'degarble[ray]'``)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray", reason="the Ray engine needs Ray Data: pip install 'degarble[ray]'")
pytest.importorskip("ray.data", reason="the Ray engine needs Ray Data: pip install 'degarble[ray]'")

from degarble.batch import run_batch  # noqa: E402

TEXTS = [
    "The deputy overseas minister instructed state media on Saturday.",
    "The Common Meeting will vote on the resolution next week.",
    "CBS Information has reached out to the White Home for comment.",
    "Rain is expected across the north of the country by the evening.",
    "Shares in the company rose sharply after the results were published.",
]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def records_with_bad_ones(path, n: int) -> int:
    """Write ``n`` JSON Lines records (gzipped for .gz), every 9th one bad; return how many are bad."""
    lines, bad = [], 0
    for i in range(n):
        if i % 9 == 4:
            lines.append(json.dumps({"id": f"r{i}", "text": ""}) if i % 2 else "{broken")
            bad += 1
        else:
            lines.append(json.dumps({"id": f"r{i}", "text": TEXTS[i % len(TEXTS)], "n": i}))
    data = ("\n".join(lines) + "\n").encode()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    with open(path, "wb") as fh:
        fh.write(data)
    return bad


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster on 127.0.0.1 with 2 CPUs, shut down after the module."""
    ctx = ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
                   log_to_driver=False, configure_logging=False)
    try:
        yield ctx
    finally:
        ray.shutdown()


def test_ray_engine_equals_local_engine(tmp_path, tiny_bundle, ray_cluster):
    inp = tmp_path / "archive.jsonl.gz"
    n_bad = records_with_bad_ones(inp, n=120)
    common = dict(model=tiny_bundle, workers=2, chunk_size=16, progress=False, log=lambda m: None)
    local = run_batch(inp, tmp_path / "local.jsonl", **common)
    on_ray = run_batch(inp, tmp_path / "ray.jsonl", engine="ray", **common)
    assert (on_ray.records, on_ray.written, on_ray.errors) == (local.records, local.written, local.errors)
    assert on_ray.errors == n_bad and on_ray.records == 120
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert read_jsonl(tmp_path / "ray.jsonl.errors.jsonl") == read_jsonl(tmp_path / "local.jsonl.errors.jsonl")


def test_ray_engine_from_the_command_line_joins_a_running_cluster(tmp_path, tiny_bundle, ray_cluster):
    """``--engine ray --ray-address ADDR`` from a separate process, against the cluster above."""
    inp = tmp_path / "archive.jsonl"
    records_with_bad_ones(inp, n=40)
    address = ray_cluster.address_info["gcs_address"]
    out = tmp_path / "out.parquet"
    cmd = [sys.executable, "-m", "degarble", "batch", str(inp), "-o", str(out), "--model", str(tiny_bundle),
           "--engine", "ray", "--ray-address", address, "--workers", "2", "--chunk-size", "8", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert done.returncode == 1, done.stderr  # the bad records
    assert "40 records read" in done.stderr
    local = run_batch(inp, tmp_path / "local.parquet", model=tiny_bundle, workers=2, chunk_size=8,
                      progress=False, log=lambda m: None)
    import pyarrow.parquet as pq

    assert pq.read_table(out).to_pylist() == pq.read_table(tmp_path / "local.parquet").to_pylist()
    assert local.records == 40
    assert json.loads((tmp_path / "out.parquet.errors.jsonl").read_text().splitlines()[0])["error"]
