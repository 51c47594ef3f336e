"""The benchmark of the batch job (:func:`degarble.batch.run_batch`): records/s, overhead and memory.

    python benchmarks/bench_batch.py --model DIR --output eval/reports/bench_batch.json
    python benchmarks/bench_batch.py --model DIR --big-gb 1        # also: memory on a 1 GB input

What it measures, on a JSON Lines archive of ``--records`` news paragraphs (the texts of
``data/sample/paragraphs.jsonl`` repeated, each record with a fresh id):

* **the job**: records/s of ``run_batch`` for ``--task detect`` (and ``restore`` when the bundle has
  a restorer) with the local engine at each ``--workers-list`` count and with the Ray engine
  (``--ray-workers``, default the largest count) when Ray Data is importable. A job's time is the
  whole call, as a user waits for it: workers start, models load, parts are written and joined;
* **the baseline**, in the same run: the same texts through ``degarble.load(bundle).detect(texts,
  batch_size=...)`` (or ``restore``) in one process with torch on every core. The report gives
  ``ratio_to_direct`` = job records/s / direct records/s (the direct time is the call alone) and
  ``ratio_to_direct_incl_load`` (the direct time includes loading the bundle), so the cost of the
  job machinery shows;
* **the machinery alone**: ``task="validate"`` (read, check and write the records; no model);
* **peak memory**: the peak RSS of the process that ran the job (``ru_maxrss``), of the largest
  worker process (``RUSAGE_CHILDREN``, the local pool), and, on Linux, of every worker process
  (``VmHWM`` sampled from ``/proc``; this is what covers Ray's actors, which are not this process's
  children), with the engine's other processes (Ray's services and helpers) counted apart;
* ``--big-gb X``: an X GB (10^9 bytes) JSON Lines file is generated in a temporary folder (deleted
  after) and run with ``task="validate"`` at the job's default chunk size; its peak RSS next to the
  same job's on the small archive (``driver_rss_growth_mb``, ``worker_rss_growth_mb``) shows that
  memory stays bounded whatever the input size.

``--tasks ''`` runs only the model-free parts (no bundle needed).

Each measurement runs in a fresh Python process, so that its peak memory and its model load belong
to it alone (``--in-process`` runs them all here, faster, with memory figures that mix). The output
is JSON. The test suite never checks these timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._version import __version__

__all__ = [
    "add_bench_batch_arguments",
    "make_archive",
    "measure_direct",
    "measure_job",
    "read_paragraph_records",
    "run_bench_batch",
    "run_bench_batch_from_args",
    "write_big_archive",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PARAGRAPHS = REPO_ROOT / "data" / "sample" / "paragraphs.jsonl"
FORMAT = "degarble-bench-batch.v1"
MODEL_TASKS = ("detect", "restore")
ENGINES = ("local", "ray")
# a job with --big-gb keeps the input, the part files and the final output on disk at once
_BIG_DISK_FACTOR = 3.2


# ------------------------------------------------------------------------------------------
# input archives


def read_paragraph_records(path: str | os.PathLike = DEFAULT_PARAGRAPHS) -> list[dict]:
    """The records of a JSON Lines file that have a non-empty string ``text``, in file order."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            if isinstance(rec, dict) and isinstance(rec.get("text"), str) and rec["text"].strip():
                out.append(rec)
    if not out:
        raise ValueError(f"no records with a text in {path}")
    return out


def _numbered(rec: dict, i: int, prefix: str) -> dict:
    # a fresh id per record (the paragraph's own id would repeat); the other fields pass through
    return {"id": f"{prefix}{i:07d}", **{k: v for k, v in rec.items() if k != "id"}}


def make_archive(path: str | os.PathLike, paragraphs: Sequence[dict], n: int) -> dict:
    """Write ``n`` records (``paragraphs`` repeated in order) to the JSON Lines file ``path``.

    Returns ``{"records", "bytes", "distinct_texts", "chars_mean"}``.
    """
    if n < 1 or not paragraphs:
        raise ValueError("need at least one record and one paragraph")
    chars = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            rec = paragraphs[i % len(paragraphs)]
            chars += len(rec["text"])
            fh.write(json.dumps(_numbered(rec, i, "r"), ensure_ascii=False) + "\n")
    return {"records": n, "bytes": Path(path).stat().st_size, "distinct_texts": min(n, len(paragraphs)),
            "chars_mean": round(chars / n, 1)}


def write_big_archive(path: str | os.PathLike, n_bytes: int, paragraphs: Sequence[dict]) -> dict:
    """Write at least ``n_bytes`` of JSON Lines records (``paragraphs`` repeated) to ``path``, streaming.

    Returns ``{"records", "bytes"}``. Memory use does not depend on ``n_bytes``.
    """
    # Each paragraph is serialised once; a record is then its id spliced in front (fast enough for GBs).
    tails = []
    for rec in paragraphs:
        body = json.dumps({k: v for k, v in rec.items() if k != "id"}, ensure_ascii=False)
        tails.append(", " + body[1:] if body != "{}" else "}")
    written = n = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < n_bytes:
            block = []
            for _ in range(4096):
                block.append(f'{{"id": "b{n:09d}"{tails[n % len(tails)]}\n')
                n += 1
            data = "".join(block)
            fh.write(data)
            written += len(data.encode("utf-8"))
    return {"records": n, "bytes": Path(path).stat().st_size}


def _read_texts(path: str | os.PathLike) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


# ------------------------------------------------------------------------------------------
# memory


def _maxrss_mb(who: int) -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    r = resource.getrusage(who).ru_maxrss
    return round(r / (1024 * 1024) if sys.platform == "darwin" else r / 1024, 1)


def _proc_read(pid: int, name: str) -> bytes | None:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as fh:
            return fh.read()
    except OSError:  # the process is gone, or not ours to read
        return None


class _PeakSampler:
    """Peak RSS (``VmHWM``) of every descendant of this process, read from ``/proc`` by a thread.

    ``VmHWM`` is a process's own high-water mark, so sampling only has to see a process once before
    it exits, not at its peak. Linux only; elsewhere :meth:`report` says it is not available.
    """

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.available = os.path.isfile("/proc/self/status")
        self.peaks: dict[int, list] = {}  # pid -> [cmdline, peak KiB]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _scan(self) -> None:
        kids: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            stat = _proc_read(int(name), "stat")
            if not stat:
                continue
            # the command name may hold spaces and parentheses: the parent pid is the 2nd field after ")"
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(name))
        stack = list(kids.get(os.getpid(), ()))
        while stack:
            pid = stack.pop()
            stack += kids.get(pid, ())
            status = _proc_read(pid, "status")
            hwm = next((int(line.split()[1]) for line in (status or b"").splitlines()
                        if line.startswith(b"VmHWM:")), None)
            if hwm is None:
                continue
            # Ray renames its workers (ray::IDLE, then ray::<actor>): keep the latest command line
            cmd = (_proc_read(pid, "cmdline") or b"").replace(b"\0", b" ").decode("utf-8", "replace").strip()
            old = self.peaks.get(pid)
            self.peaks[pid] = [cmd or (old[0] if old else ""), max(hwm, old[1] if old else 0)]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._scan()

    def start(self) -> _PeakSampler:
        if self.available:
            self._scan()
            self._thread = threading.Thread(target=self._loop, name="bench-batch-rss", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._scan()  # the processes still alive (a Ray cluster stays up until exit)

    def report(self) -> dict:
        """Peak RSS of the job's workers and, apart, of every other descendant process.

        Workers are the local pool's processes and the Ray actors that run chunks (their process
        title names ``_ChunkActor``). The others are the pool's resource tracker, or Ray's own
        services, helper actors and idle workers.
        """
        if not self.available:
            return {"available": False, "reason": "no /proc (not Linux)"}

        def is_worker(cmd: str) -> bool:
            return "multiprocessing.spawn" in cmd or "--multiprocessing-fork" in cmd or "_ChunkActor" in cmd

        workers = [kb for cmd, kb in self.peaks.values() if is_worker(cmd)]
        others = [kb for cmd, kb in self.peaks.values() if not is_worker(cmd)]
        mb = 1024.0
        return {
            "available": True,
            "workers": len(workers),
            "worker_max_peak_rss_mb": round(max(workers) / mb, 1) if workers else None,
            "workers_sum_peak_rss_mb": round(sum(workers) / mb, 1),
            "other_processes": len(others),
            "others_sum_peak_rss_mb": round(sum(others) / mb, 1),
        }


def _memory(sampler: _PeakSampler) -> dict:
    return {
        "driver_peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF),
        # the largest peak of any one finished child (the local pool's workers, once joined)
        "children_max_rss_mb": _maxrss_mb(resource.RUSAGE_CHILDREN),
        "sampled": sampler.report(),
    }


# ------------------------------------------------------------------------------------------
# one measurement (run in a fresh process, or in this one with --in-process)


def measure_direct(archive: str | os.PathLike, model: str | None, task: str = "detect", batch_size: int = 32,
                   threads: int | None = None) -> dict:
    """Time ``degarble.load(model).detect(texts, batch_size=...)`` (or ``restore``) on the archive's texts.

    ``threads`` (default: every core) is torch's thread count for the call; the previous count is
    put back afterwards. ``seconds`` is the call alone; ``load_s`` is the bundle load before it.
    """
    import torch

    texts = _read_texts(archive)
    default_threads = torch.get_num_threads()
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    try:
        import degarble

        t0 = time.perf_counter()
        m = degarble.load(model)
        t1 = time.perf_counter()
        if task == "detect":
            res = m.detect(texts, batch_size=batch_size)
            flagged = sum(r.is_spun for r in res)
        else:
            res = m.restore(texts, batch_size=batch_size)
            flagged = sum(bool(r.edits) for r in res)
        t2 = time.perf_counter()
    finally:
        torch.set_num_threads(default_threads)
    n = len(texts)
    return {
        "records": n,
        "flagged": flagged,
        "load_s": round(t1 - t0, 3),
        "seconds": round(t2 - t1, 3),
        "records_per_s": _rate(n, t2 - t1),
        "records_per_s_incl_load": _rate(n, t2 - t0),
        "threads": threads,
        "torch_default_threads": default_threads,
        "bundle_hash": m.bundle_hash,
    }


def measure_job(archive: str | os.PathLike, workdir: str | os.PathLike, model: str | None,
                task: str = "detect", engine: str = "local", workers: int = 1, batch_size: int = 32,
                chunk_size: int = 256, log: Callable[[str], None] | None = None) -> dict:
    """Run :func:`degarble.batch.run_batch` once on ``archive`` (output in ``workdir``, deleted after).

    Returns the job's summary, ``records_per_s`` (records of the run / seconds of the whole call)
    and its memory: this process's peak RSS, the largest finished child's, and the sampled peaks
    of every worker process.
    """
    from .batch import run_batch

    ray_was_up = None
    if engine == "ray":
        import ray

        ray_was_up = ray.is_initialized()
    out = Path(workdir) / f"out-{task}-{engine}-w{workers}-{os.getpid()}.jsonl"
    errors = out.with_name(out.name + ".errors.jsonl")
    sampler = _PeakSampler().start()
    t0 = time.perf_counter()
    try:
        # restart: a leftover state folder (an interrupted benchmark) must not turn this into a resume
        s = run_batch(archive, out, task=task, errors=errors, workers=workers, engine=engine,
                      model=None if task == "validate" else model, batch_size=batch_size,
                      chunk_size=chunk_size, restart=True, progress=False, log=log or (lambda m: None))
        wall = time.perf_counter() - t0
    finally:
        sampler.stop()
        for p in (out, errors):
            p.unlink(missing_ok=True)
        shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
    mem = _memory(sampler)
    if engine == "ray" and not ray_was_up:
        import ray

        ray.shutdown()  # run_batch started it; in a fresh process exit would do it, in-process we must
    try:
        import torch

        driver_threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        driver_threads = None
    cores = os.cpu_count() or 1
    return {
        "task": task,
        "engine": engine,
        "workers": workers,
        "records": s.records,
        "written": s.written,
        "errors": s.errors,
        "flagged": s.spun,
        "chunks": s.chunks,
        "seconds": round(wall, 3),
        "records_per_s": _rate(s.records, wall),
        # run_batch gives each local worker cores // workers threads; a Ray actor gets one
        "worker_threads": 1 if engine == "ray" else max(1, cores // workers),
        "driver_torch_threads": driver_threads,
        "memory": mem,
    }


def _rate(n: int, seconds: float) -> float | None:
    return round(n / seconds, 3) if seconds > 0 else None


def _measure(spec: dict, log: Callable[[str], None] | None = None) -> dict:
    kind = spec["kind"]
    if kind == "direct":
        return measure_direct(spec["archive"], spec["model"], spec["task"], spec["batch_size"],
                              spec.get("threads"))
    if kind == "job":
        return measure_job(spec["archive"], spec["workdir"], spec["model"], spec["task"], spec["engine"],
                           spec["workers"], spec["batch_size"], spec["chunk_size"], log=log)
    raise ValueError(f"unknown measurement {kind!r}")


def _worker_main(spec_file: str) -> int:
    """A fresh process's side: run the measurement in ``spec_file`` and write its result file."""
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))

    def log(m: str) -> None:
        print(f"degarble bench-batch [{spec['kind']}]: {m}", file=sys.stderr, flush=True)

    try:
        res = _measure(spec, log)
        status = 0
    except Exception as e:  # one line back to the parent instead of a traceback
        res, status = {"error": f"{type(e).__name__}: {e}"}, 1
    # a file, not standard output: Ray and friends may print there
    Path(spec["result"]).write_text(json.dumps(res), encoding="utf-8")
    return status


def _spawn(spec: dict, tmp: Path, verbose: bool) -> dict:
    """Run one measurement in a fresh Python process; return its result (raise on failure)."""
    fd, name = tempfile.mkstemp(prefix="spec-", suffix=".json", dir=tmp)
    os.close(fd)
    spec_file, result = Path(name), Path(name).with_suffix(".result.json")
    spec_file.write_text(json.dumps({**spec, "result": str(result)}), encoding="utf-8")
    # the package as imported here, even when running from a checkout that is not installed
    src = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "degarble.bench_batch", "--worker", str(spec_file)],
                          stdout=None if verbose else subprocess.DEVNULL,
                          stderr=None if verbose else subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - t
    try:
        res = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(f"worker exited with status {proc.returncode}: " + " | ".join(tail)) from None
    finally:
        spec_file.unlink(missing_ok=True)
        result.unlink(missing_ok=True)
    if "error" in res:
        raise RuntimeError(res["error"])
    res["process_wall_s"] = round(wall, 2)
    return res


# ------------------------------------------------------------------------------------------
# the benchmark


def _median_run(runs: list[dict]) -> dict:
    """The run with the median records/s (the lower middle for an even count), with every run's rate."""
    ordered = sorted(runs, key=lambda r: r.get("records_per_s") or 0.0)
    best = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        best["records_per_s_runs"] = [r.get("records_per_s") for r in runs]
    return best


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def _ray_missing() -> str | None:
    """Why the Ray engine cannot run here, or None. Looks for the package without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("ray")
    except (ImportError, ValueError) as e:
        return f"ray cannot be found ({e})"
    if spec is None or not spec.origin:
        return "ray is not installed (pip install 'degarble[ray]')"
    if not (Path(spec.origin).parent / "data" / "__init__.py").is_file():
        return "ray is installed without Ray Data (pip install 'degarble[ray]')"
    return None


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _machine() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "cpus_usable": usable, "python": platform.python_version(),
            "torch": _dist_version("torch"), "transformers": _dist_version("transformers"),
            "ray": _dist_version("ray"),
            # other work on the machine skews every number: say how busy it was
            "load_avg_start": [round(x, 2) for x in os.getloadavg()]}


def _fmt_rate(r: float | None) -> str:
    return f"{r:,.1f}/s" if r else "n/a"


def run_bench_batch(
    model: str | os.PathLike | None = None,
    *,
    records: int = 400,
    workers_list: Sequence[int] = (1, 2),
    engines: Sequence[str] = ENGINES,
    tasks: Sequence[str] = MODEL_TASKS,
    ray_workers: int | None = None,
    batch_size: int = 32,
    chunk_size: int = 64,
    repeats: int = 1,
    validate: bool = True,
    big_gb: float | None = None,
    big_workers: int = 2,
    paragraphs: str | os.PathLike | None = None,
    tmp_dir: str | os.PathLike | None = None,
    in_process: bool = False,
    verbose: bool = False,
    log: Callable[[str], None] = lambda m: None,
) -> dict:
    """Run the batch-job benchmark and return its report (a JSON-ready dict; see the module docstring).

    ``tasks`` are the model tasks (``detect``, ``restore``); ``validate`` adds the model-free run of
    the machinery at every engine setting. A model task needs a bundle (``model``, else
    ``$DEGARBLE_MODEL``, else the shipped one); ``restore`` is skipped, with the reason, when the
    bundle has no restorer, and the Ray engine when Ray Data is not importable. A measurement that
    fails is reported as ``{"error": ...}`` and counted in ``report["failures"]``; the others go on.
    Raises :class:`degarble.bundle.BundleError` when a model task has no bundle, ``ValueError`` on
    bad settings.
    """
    from .bundle import BundleError, read_manifest, resolve_bundle_path

    bad_tasks = [t for t in tasks if t not in MODEL_TASKS]
    bad_engines = [e for e in engines if e not in ENGINES]
    if bad_tasks or bad_engines:
        raise ValueError(f"unknown tasks {bad_tasks} or engines {bad_engines}; "
                         f"tasks: {', '.join(MODEL_TASKS)}, engines: {', '.join(ENGINES)}")
    if records < 1 or batch_size < 1 or chunk_size < 1 or repeats < 1 or big_workers < 1:
        raise ValueError("records, batch_size, chunk_size, repeats and big_workers must be at least 1")
    if not workers_list or min(workers_list) < 1 or (ray_workers is not None and ray_workers < 1):
        raise ValueError("worker counts must be at least 1")
    if big_gb is not None and big_gb <= 0:
        raise ValueError("big_gb must be above 0")

    notes: list[str] = []
    skipped: list[dict] = []
    failures = 0
    model_info: dict[str, Any] | None = None
    model_path: str | None = None
    try:
        path = resolve_bundle_path(model).resolve()
        manifest = read_manifest(path)
        model_path = str(path)
        model_info = {"path": model_path, "name": manifest.name, "bundle_hash": manifest.hash(),
                      "has_restorer": manifest.has_restorer}
    except BundleError:
        if tasks:
            raise
        notes.append("no model bundle: only the model-free runs (validate)")
    run_tasks = list(dict.fromkeys(tasks))
    if "restore" in run_tasks and model_info and not model_info["has_restorer"]:
        run_tasks.remove("restore")
        skipped.append({"what": "task restore", "reason": f"bundle {model_info['name']!r} has no restorer "
                                                          "(Model.has_restorer is false)"})
    configs = [("local", w) for w in dict.fromkeys(workers_list)] if "local" in engines else []
    if "ray" in engines:
        missing = _ray_missing()
        if missing:
            skipped.append({"what": "engine ray", "reason": missing})
        else:
            configs.append(("ray", ray_workers or max(workers_list)))
    n_chunks = -(-records // chunk_size)
    busiest = max((w for _, w in configs), default=1)
    if n_chunks < 2 * busiest:
        notes.append(f"{records} records in chunks of {chunk_size} make {n_chunks} chunks, fewer than 2 per "
                     f"worker at {busiest} workers: some workers wait (raise --records or lower "
                     "--chunk-size)")

    src = Path(paragraphs) if paragraphs is not None else DEFAULT_PARAGRAPHS
    paras = read_paragraph_records(src)
    report: dict[str, Any] = {
        "format": FORMAT,
        "degarble_version": __version__,
        "machine": _machine(),
        "model": model_info,
        "settings": {"records": records, "workers_list": list(dict.fromkeys(workers_list)),
                     "engines": list(engines),
                     "ray_workers": next((w for e, w in configs if e == "ray"), None),
                     "tasks": list(tasks), "batch_size": batch_size, "chunk_size": chunk_size,
                     "repeats": repeats, "validate": validate, "big_gb": big_gb, "big_workers": big_workers,
                     "isolated_processes": not in_process},
    }

    with tempfile.TemporaryDirectory(prefix="degarble-bench-batch-", dir=tmp_dir) as tmp_s:
        tmp = Path(tmp_s)
        archive = tmp / "archive.jsonl"
        report["input"] = {"source": str(src), **make_archive(archive, paras, records)}

        def measure(spec: dict, label: str, times: int = repeats) -> dict:
            nonlocal failures
            base = {"archive": str(archive), "workdir": str(tmp), "model": model_path,
                    "batch_size": batch_size, "chunk_size": chunk_size, **spec}
            runs = []
            for i in range(times):
                log(f"{label}" + (f" (run {i + 1}/{times})" if times > 1 else "")
                    + ("" if in_process else " in a fresh process"))
                try:
                    runs.append(_measure(base, log if verbose else None) if in_process
                                else _spawn(base, tmp, verbose))
                except Exception as e:  # report it and go on with the other measurements
                    failures += 1
                    msg = str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
                    notes.append(f"{label} failed: {msg}")
                    return {"error": msg}
            return _median_run(runs)

        direct: dict[str, Any] = {}
        for task in run_tasks:
            direct[task] = measure({"kind": "direct", "task": task}, f"direct {task}")
        report["direct"] = direct
        job: dict[str, dict] = {}
        for task in run_tasks + (["validate"] if validate else []):
            job[task] = {}
            for engine, workers in configs:
                key = f"{engine}/w{workers}"
                res = measure({"kind": "job", "task": task, "engine": engine, "workers": workers},
                              f"job {task} {key}")
                if "error" not in res and res["written"] + res["errors"] != records:
                    got = res["written"] + res["errors"]
                    notes.append(f"job {task} {key} accounted for {got} of {records} records")
                if "error" not in res and res["errors"]:
                    notes.append(f"job {task} {key}: {res['errors']} records failed")
                job[task][key] = res
        report["job"] = job

        ratios: dict[str, dict] = {}
        ratios_load: dict[str, dict] = {}
        for task in run_tasks:
            d = direct.get(task, {})
            ratios[task], ratios_load[task] = {}, {}
            for key, res in job.get(task, {}).items():
                ratios[task][key] = _ratio(res.get("records_per_s"), d.get("records_per_s"))
                ratios_load[task][key] = _ratio(res.get("records_per_s"), d.get("records_per_s_incl_load"))
                if "error" not in res:
                    res["ratio_to_direct"] = ratios[task][key]
        report["ratio_to_direct"] = ratios
        report["ratio_to_direct_incl_load"] = ratios_load

        if big_gb is not None:
            report["big"], big_failed = _run_big(big_gb, big_workers, paras, measure, tmp, notes, log)
            failures += big_failed

    report["skipped"] = skipped
    report["failures"] = failures
    report["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    first = next((r for r in direct.values() if "error" not in r), None)
    report["machine"]["torch_default_threads"] = first["torch_default_threads"] if first else None
    mi = model_info or {}
    report["signature"] = (f"degarble-bench-batch|model:{mi.get('name')}@{(mi.get('bundle_hash') or '')[:8]}"
                           f"|records:{records}|batch:{batch_size}|chunk:{chunk_size}|cpus:{os.cpu_count()}"
                           f"|v:{__version__}")
    report["notes"] = notes
    return report


def _run_big(big_gb: float, workers: int, paras: Sequence[dict], measure: Callable[..., dict], tmp: Path,
             notes: list[str], log: Callable[[str], None]) -> tuple[dict, int]:
    """The ``--big-gb`` run: validate over a generated file of ``big_gb`` GB; returns (section, failures)."""
    from .batch import DEFAULT_CHUNK_SIZE

    n_bytes = int(big_gb * 1e9)
    key = f"local/w{workers}"
    # the job's own chunk size: the claim is about the job as users run it
    out: dict[str, Any] = {"gb": big_gb, "engine": "local", "workers": workers,
                           "chunk_size": DEFAULT_CHUNK_SIZE}
    free = shutil.disk_usage(tmp).free
    if free < _BIG_DISK_FACTOR * n_bytes:
        msg = (f"not enough disk in {tmp} for --big-gb {big_gb}: {free / 1e9:.1f} GB free, "
               f"{_BIG_DISK_FACTOR * n_bytes / 1e9:.1f} GB needed (input, parts and output); see --tmp-dir")
        notes.append(msg)
        return {**out, "error": msg}, 1
    # the same job on the small archive is the reference: its memory is what "bounded" compares to
    # (the model-free job still imports torch, so the workers' floor is torch's size)
    ref = measure({"kind": "job", "task": "validate", "engine": "local", "workers": workers,
                   "chunk_size": DEFAULT_CHUNK_SIZE}, f"job validate {key} (reference for --big-gb)", 1)
    big_dir = tmp / "big"
    big_dir.mkdir()
    try:
        log(f"writing a {big_gb:g} GB JSON Lines file in {big_dir}")
        t = time.perf_counter()
        try:
            info = write_big_archive(big_dir / "big.jsonl", n_bytes, paras)
        except OSError as e:  # a full disk, most likely
            msg = f"could not write the --big-gb input: {e}"
            notes.append(msg)
            return {**out, "error": msg}, 1
        out.update(info, generate_s=round(time.perf_counter() - t, 1))
        res = measure({"kind": "job", "task": "validate", "engine": "local", "workers": workers,
                       "chunk_size": DEFAULT_CHUNK_SIZE, "archive": str(big_dir / "big.jsonl"),
                       "workdir": str(big_dir)},
                      f"job validate {key} on {big_gb:g} GB", 1)  # once: a big run is long and steady
    finally:
        shutil.rmtree(big_dir, ignore_errors=True)
    out["run"] = res
    if "error" in res:
        return out, 1
    out["records_per_s"] = res["records_per_s"]
    out["mb_per_s"] = round(info["bytes"] / 1e6 / res["seconds"], 1) if res["seconds"] else None
    mem, ref_mem = res["memory"], (ref.get("memory") or {})
    out["driver_peak_rss_mb"] = mem["driver_peak_rss_mb"]
    out["worker_max_peak_rss_mb"] = (mem["sampled"].get("worker_max_peak_rss_mb")
                                     or mem["children_max_rss_mb"] or None)
    out["reference"] = {"records": ref.get("records"),
                        "driver_peak_rss_mb": ref_mem.get("driver_peak_rss_mb"),
                        "worker_max_peak_rss_mb": (ref_mem.get("sampled") or {}).get(
                            "worker_max_peak_rss_mb")}
    # growth from the small input to the big one: near zero when memory is bounded
    if ref_mem.get("driver_peak_rss_mb"):
        out["driver_rss_growth_mb"] = round(mem["driver_peak_rss_mb"] - ref_mem["driver_peak_rss_mb"], 1)
    ref_worker = out["reference"]["worker_max_peak_rss_mb"]
    if out["worker_max_peak_rss_mb"] and ref_worker:
        out["worker_rss_growth_mb"] = round(out["worker_max_peak_rss_mb"] - ref_worker, 1)
    out["input_mb"] = round(info["bytes"] / 2**20, 1)
    return out, 0


# ------------------------------------------------------------------------------------------
# command line


def _int_list(s: str) -> list[int]:
    try:
        out = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {s!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected worker counts of at least 1, got {s!r}")
    return out


def _name_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(s: str) -> list[str]:
        out = [x.strip() for x in s.split(",") if x.strip()]
        bad = [x for x in out if x not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; choose from {', '.join(choices)}")
        return out

    return parse


def add_bench_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``benchmarks/bench_batch.py``."""
    parser.description = (
        "Benchmark the batch job (degarble batch): records/s for each task, engine and worker count, against "
        "the same texts through the model called directly; the job machinery alone (task validate); peak "
        "memory; optionally memory on a big generated input. JSON out."
    )
    parser.add_argument("--model", metavar="DIR", help="model bundle (default: as degarble.load finds it)")
    parser.add_argument("--records", type=int, default=400, help="records in the generated archive")
    parser.add_argument("--workers-list", type=_int_list, default=[1, 2], metavar="1,2",
                        help="worker counts for the local engine")
    parser.add_argument("--engines", type=_name_list(ENGINES), default=list(ENGINES), metavar="local,ray",
                        help="engines (ray is skipped, with the reason, when Ray Data is not importable)")
    parser.add_argument("--ray-workers", type=int, metavar="N",
                        help="workers for the Ray engine (default: the largest of --workers-list)")
    parser.add_argument("--tasks", type=_name_list(MODEL_TASKS), default=list(MODEL_TASKS),
                        metavar="detect,restore",
                        help="model tasks (restore is skipped when the bundle has no restorer)")
    parser.add_argument("--no-validate", action="store_true", help="skip the model-free runs (task validate)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="texts per model call, job and direct alike")
    parser.add_argument("--chunk-size", type=int, default=64,
                        help="records per chunk (the job's default is 256; smaller so that --records 400 "
                             "gives every worker several chunks)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the median is reported")
    parser.add_argument("--big-gb", type=float, metavar="X",
                        help="also run task validate over a generated X GB (10^9 bytes) file, deleted after")
    parser.add_argument("--big-workers", type=int, default=2, help="local workers for --big-gb")
    parser.add_argument("--paragraphs", type=Path, metavar="JSONL",
                        help=f"texts to repeat (JSON Lines with \"text\"; default: {DEFAULT_PARAGRAPHS})")
    parser.add_argument("--tmp-dir", metavar="DIR",
                        help="where the archives and outputs go (default: the system's)")
    parser.add_argument("--in-process", action="store_true",
                        help="run every measurement in this process (faster; model loads and memory mix)")
    parser.add_argument("--output", metavar="BENCH.json", help="also write the JSON here")
    parser.add_argument("--verbose", action="store_true", help="show the measurements' own output")


def run_bench_batch_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; print the JSON (and write ``--output``).

    Returns the exit status: 0 done, 1 some measurement failed, 2 usage error.
    """
    from .bundle import BundleError

    def log(m: str) -> None:
        print(f"degarble bench-batch: {m}", file=sys.stderr, flush=True)

    try:
        report = run_bench_batch(
            args.model, records=args.records, workers_list=args.workers_list, engines=args.engines,
            tasks=args.tasks, ray_workers=args.ray_workers, batch_size=args.batch_size,
            chunk_size=args.chunk_size, repeats=args.repeats, validate=not args.no_validate,
            big_gb=args.big_gb, big_workers=args.big_workers, paragraphs=args.paragraphs,
            tmp_dir=args.tmp_dir, in_process=args.in_process, verbose=args.verbose, log=log)
    except BundleError as e:
        log(f"{e}\n(pass --model DIR)")
        return 2
    except (ValueError, OSError) as e:
        log(str(e))
        return 2
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        log(f"wrote {args.output}")
    for task, d in report.get("direct", {}).items():
        if "error" not in d:
            log(f"direct {task}: {_fmt_rate(d['records_per_s'])} (bundle load {d['load_s']:.1f} s)")
    for task, runs in report.get("job", {}).items():
        for key, r in runs.items():
            if "error" in r:
                continue
            ratio = f", {r['ratio_to_direct']:.2f} x direct" if r.get("ratio_to_direct") else ""
            log(f"job {task} {key}: {_fmt_rate(r['records_per_s'])}{ratio}; peak RSS driver "
                f"{r['memory']['driver_peak_rss_mb']:.0f} MB")
    big = report.get("big")
    if big and "error" not in big:
        log(f"--big-gb {big['gb']:g}: {big['records']:,} records, {_fmt_rate(big['records_per_s'])}, "
            f"{big['mb_per_s']} MB/s, peak RSS driver {big['driver_peak_rss_mb']:.0f} MB "
            f"(small input: {big['reference']['driver_peak_rss_mb']} MB)")
    for s in report.get("skipped", []):
        log(f"skipped {s['what']}: {s['reason']}")
    for n in report.get("notes", []):
        log(n)
    return 1 if report.get("failures") else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m degarble.bench_batch``: the benchmark (or, with ``--worker SPEC``, one measurement)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 2 and argv[0] == "--worker":
        return _worker_main(argv[1])
    parser = argparse.ArgumentParser(prog="python -m degarble.bench_batch")
    add_bench_batch_arguments(parser)
    return run_bench_batch_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
