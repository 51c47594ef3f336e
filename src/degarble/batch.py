"""The batch job over archives: ``degarble batch IN --output OUT``, streamed, resumable, on all cores.

    from degarble.batch import run_batch
    summary = run_batch("archive.jsonl.gz", "scores.parquet", task="detect", workers=2)

What it does
------------
1. **Reads** the input as a stream of records, each with a *position* (1-based: the line number in
   JSON Lines, the row number in CSV and Parquet, the file number in a directory listed in sorted
   order). Formats: JSON Lines (``.jsonl``, ``.ndjson``, ``.json``; gzipped with ``.gz``), CSV
   (header row; ``.csv``, ``.csv.gz``), Parquet, or a directory of ``.txt`` and ``.html`` files
   (the main text of a page is extracted with trafilatura). The text is in ``text_field``; every
   other field passes through. ``id`` is kept, or the position becomes the id.
2. **Cuts** the stream into *chunks* of ``chunk_size`` consecutive positions (chunk ``k`` holds
   positions ``k*N+1 .. (k+1)*N``). Chunk ids depend on the input alone, which is what makes the
   job resumable with an exactly-once result.
3. **Runs** the model on each chunk in a worker process (``workers``, default one per core; the
   model loads once per worker) or, with ``engine="ray"``, on Ray actors (:mod:`degarble.batch_ray`).
   At most ``2 * workers`` chunks are in flight, so memory stays bounded whatever the input size.
4. **Writes** each finished chunk as one *part* file in the state folder ``OUT.parts/``: written to
   a temporary name, flushed to disk (fsync) and renamed into place, so a part either exists
   complete or does not exist. A part holds the chunk's output records and its errors.
5. **Finishes** by concatenating the parts in chunk order into ``OUT`` (JSON Lines, gzipped JSON
   Lines or Parquet, by extension) and ``ERRORS`` (JSON Lines ``{"id", "line", "error"}``; default
   ``OUT.errors.jsonl``), each written to a temporary file and renamed, then removes the state folder.

Killed at any moment (Ctrl-C, ``kill -9``, power loss), the same command run again skips the chunks
whose part exists and redoes the rest; every input record ends up exactly once in ``OUT`` or in
``ERRORS``. The state folder keeps a manifest of the input (size and a hash of its first and last
MiB, or of a directory's listing), the task, the model bundle hash and the settings that change
results (``greedy`` among them, so a resumed job never mixes restore modes); a rerun with anything
different is refused unless ``restart=True``.

Bad records never stop the job: missing or non-string text, empty text, undecodable bytes, invalid
JSON or CSV, text over ``max_chars`` characters, HTML with no main text, and a model failure on one
record all go to ``ERRORS`` with the record's id (or position) and a reason.

For Hugging Face ``datasets`` users, :func:`hf_map` gives a function for ``Dataset.map(batched=True)``.
"""

from __future__ import annotations

import csv
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .io import MAX_TEXT_CHARS, _check_text, _decode, _has_lone_surrogate, _id_of
from .model import check_probability, given
from .models.precision import requested_precision

TASKS = ("detect", "restore", "validate")
INPUT_FORMATS = ("auto", "jsonl", "csv", "parquet", "dir")
DEFAULT_CHUNK_SIZE = 256
PART_VERSION = 1
STATE_VERSION = 1
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_DIR_SUFFIXES = (".txt", ".html", ".htm")
_FINGERPRINT_BYTES = 1 << 20


class BatchError(Exception):
    """The job cannot start or go on (bad input path, state of a different job, no restorer...)."""


# --------------------------------------------------------------------------------------------
# settings and results


@dataclass(frozen=True)
class ReaderSpec:
    """Everything needed to read an input into chunks; picklable, so a Ray read task can use it."""

    path: str
    fmt: str
    text_field: str = "text"
    max_chars: int = MAX_TEXT_CHARS
    chunk_size: int = DEFAULT_CHUNK_SIZE


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to turn chunks into parts: the task and the model to load (once)."""

    task: str = "detect"
    model: str | None = None  # resolved bundle folder (None for task "validate")
    batch_size: int = 32
    threshold: float | None = None
    threads: int = 1
    text_field: str = "text"
    precision: str = "auto"  # as asked (degarble.models.precision); each worker resolves "auto"
    greedy: bool = False  # restore: skip candidate ranking (degarble.Model.restore)
    min_score: float | None = None  # restore: instead of the bundle's calibrated min_score


@dataclass
class Chunk:
    """``chunk_size`` consecutive positions of the input: ``items`` are ``(position, record, error)``."""

    index: int
    items: list[tuple[int, dict | None, str | None]] = field(default_factory=list)


@dataclass
class Summary:
    """What a finished (or interrupted) job did. Counts cover the whole job, earlier runs included."""

    records: int = 0  # input records (written + errors)
    written: int = 0
    spun: int = 0  # flagged as spun (detect) or changed (restore)
    errors: int = 0
    resumed_records: int = 0  # of ``records``, done by an earlier, interrupted run
    chunks: int = 0
    resumed_chunks: int = 0
    seconds: float = 0.0
    output: str = ""
    errors_path: str = ""
    finished: bool = False

    @property
    def records_per_s(self) -> float:
        """Records processed by this run per second of this run."""
        done_now = self.records - self.resumed_records
        return done_now / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["records_per_s"] = round(self.records_per_s, 2)
        d["seconds"] = round(self.seconds, 3)
        return d

    def format(self) -> str:
        resumed = f" ({self.resumed_records:,} from an earlier run)" if self.resumed_records else ""
        status = "done" if self.finished else "stopped before the end (run the same command again to go on)"
        return (
            f"degarble batch {status}: {self.records:,} records read{resumed}, {self.written:,} written, "
            f"{self.spun:,} flagged as spun, {self.errors:,} errors, {self.seconds:.1f} s "
            f"({self.records_per_s:,.1f} records/s)\n"
            f"  output: {self.output}\n  errors: {self.errors_path}"
        )


# --------------------------------------------------------------------------------------------
# reading


def detect_input_format(path: str | os.PathLike, input_format: str = "auto") -> str:
    """Resolve ``"auto"`` from the path: a directory, ``.csv``, ``.parquet``/``.pq``, else JSON Lines."""
    if input_format not in INPUT_FORMATS:
        raise BatchError(f"unknown input format {input_format!r}; choose one of {', '.join(INPUT_FORMATS)}")
    if input_format != "auto":
        return input_format
    p = Path(path)
    if p.is_dir():
        return "dir"
    name = p.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "jsonl"


class _Reader:
    """Streams ``(position, record, error)`` from one input; ``fraction()`` says how far it got.

    ``skip(position)`` true means the position belongs to a chunk already done: a reader may then
    avoid parsing it (JSON Lines does), and never yields it.
    """

    def __init__(self, spec: ReaderSpec, skip: Callable[[int], bool] = lambda pos: False):
        self.spec = spec
        self.skip = skip
        self.total: int | None = None  # known record count (Parquet, directory), else None
        self._raw: IO[bytes] | None = None
        self._size = 0
        self._done_rows = 0

    def fraction(self) -> float | None:
        """Share of the input read so far (bytes for files, rows/files where the count is known)."""
        if self.total:
            return min(1.0, self._done_rows / self.total)
        if self._raw is not None and self._size:
            try:
                return min(1.0, self._raw.tell() / self._size)
            except (OSError, ValueError):
                return None
        return None

    def __iter__(self) -> Iterator[tuple[int, dict | None, str | None]]:
        fmt = self.spec.fmt
        if fmt == "jsonl":
            return self._jsonl()
        if fmt == "csv":
            return self._csv()
        if fmt == "parquet":
            return self._parquet()
        if fmt == "dir":
            return self._dir()
        raise BatchError(f"unknown input format {fmt!r}")

    # -- one record's checks, shared by every format
    def _check(self, pos: int, rec: dict) -> tuple[int, dict | None, str | None]:
        reason = _check_text(rec, self.spec.text_field, self.spec.max_chars)
        if reason is None and not rec[self.spec.text_field].strip():
            reason = f'"{self.spec.text_field}" is empty'
        if reason is not None:
            return pos, _id_only(rec), reason
        return pos, rec, None

    def _open_bytes(self) -> IO[bytes]:
        path = Path(self.spec.path)
        self._size = path.stat().st_size
        self._raw = open(path, "rb")  # noqa: SIM115 - closed by the generator that uses it
        if path.name.lower().endswith(".gz"):
            return gzip.GzipFile(fileobj=self._raw, mode="rb")
        return self._raw

    def _jsonl(self) -> Iterator[tuple[int, dict | None, str | None]]:
        fh = self._open_bytes()
        lineno = 0
        try:
            for raw in fh:
                lineno += 1
                if self.skip(lineno) or not raw.strip():
                    continue  # a done chunk, or a blank line (not a record)
                line, reason = _decode(raw, first=lineno == 1)
                if line is None:
                    # still name the record in ERRORS if its id can be read around the bad bytes
                    yield lineno, _id_only(_loads_or_none(raw.decode("utf-8", "replace"))), reason
                    continue
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError) as e:
                    msg = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
                    yield lineno, None, f"invalid JSON ({msg or 'nested too deeply'})"
                    continue
                if not isinstance(obj, dict):
                    yield lineno, None, f"expected a JSON object, got {type(obj).__name__}"
                    continue
                yield self._check(lineno, obj)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            # A truncated or corrupt gzip stream: nothing past this point can be read. The next
            # position takes the error, so the loss is visible in ERRORS.
            yield lineno + 1, None, f"input could not be read past here ({e})"
        finally:
            fh.close()
            if self._raw is not None:
                self._raw.close()

    def _csv(self) -> Iterator[tuple[int, dict | None, str | None]]:
        fh = self._open_bytes()
        # surrogateescape keeps undecodable bytes as lone surrogates, so a bad row is reported
        # (below) instead of stopping the whole file.
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts are checked by max_chars
        reader = csv.reader(text)
        pos = 0
        try:
            header = next(reader, None)
            if header is None:
                return
            if self.spec.text_field not in header:
                raise BatchError(
                    f'CSV input {self.spec.path} has no "{self.spec.text_field}" column '
                    f"(columns: {', '.join(header)}); see --text-field"
                )
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    pos += 1
                    yield pos, None, f"invalid CSV ({e})"
                    continue
                pos += 1
                self._done_rows = pos
                if self.skip(pos):
                    continue
                if len(row) != len(header):
                    yield pos, None, f"CSV row has {len(row)} fields, the header has {len(header)}"
                    continue
                rec = dict(zip(header, row))
                if any(_has_lone_surrogate(v) for v in row):
                    yield pos, _id_only(rec), "not valid UTF-8"
                    continue
                yield self._check(pos, rec)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            yield pos + 1, None, f"input could not be read past here ({e})"
        finally:
            text.close()
            if self._raw is not None:
                self._raw.close()

    def _parquet(self) -> Iterator[tuple[int, dict | None, str | None]]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.spec.path)
        self.total = pf.metadata.num_rows
        if self.spec.text_field not in pf.schema_arrow.names:
            raise BatchError(
                f'Parquet input {self.spec.path} has no "{self.spec.text_field}" column '
                f"(columns: {', '.join(pf.schema_arrow.names)}); see --text-field"
            )
        pos = 0
        n = self.spec.chunk_size
        try:
            for batch in pf.iter_batches(batch_size=max(n, 1024)):
                first = pos + 1
                pos += batch.num_rows
                self._done_rows = pos
                if all(self.skip(p) for p in range(first, pos + 1, n)) and self.skip(pos):
                    continue  # every chunk this batch touches is done: do not convert it
                for i, rec in enumerate(batch.to_pylist()):
                    p = first + i
                    if not self.skip(p):
                        yield self._check(p, rec)
        finally:
            pf.close()

    def _dir(self) -> Iterator[tuple[int, dict | None, str | None]]:
        files = _dir_files(Path(self.spec.path))
        self.total = len(files)
        limit = self.spec.max_chars
        for pos, (rel, path) in enumerate(files, start=1):
            self._done_rows = pos
            if self.skip(pos):
                continue
            rec_id = {"id": rel}
            try:
                size = path.stat().st_size
                # bytes >= characters for UTF-8; 4x leaves room for multi-byte text and for markup
                if size > 4 * limit + 1_000_000:
                    yield pos, rec_id, f"file is {size:,} bytes, over the limit for {limit:,} characters"
                    continue
                raw = path.read_bytes()
            except OSError as e:
                yield pos, rec_id, f"file could not be read ({e})"
                continue
            if path.suffix.lower() in (".html", ".htm"):
                text, reason = _html_main_text(raw)
            else:
                text, reason = _decode(raw, first=True)
            if text is None:
                yield pos, rec_id, reason or "not valid UTF-8"
                continue
            yield self._check(pos, {"id": rel, self.spec.text_field: text})


def _loads_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _id_only(rec: Any) -> dict | None:
    """What an error keeps of a bad record: its id, if it has one."""
    rid = _id_of(rec)
    return {"id": rid} if rid is not None else None


def _dir_files(root: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, path)`` of every .txt/.html file under ``root``, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(_DIR_SUFFIXES):
                continue
            p = Path(dirpath) / name
            out.append((p.relative_to(root).as_posix(), p))
    out.sort(key=lambda t: t[0])
    return out


def _html_main_text(raw: bytes) -> tuple[str | None, str | None]:
    """The main text of an HTML page (trafilatura), or ``(None, reason)``."""
    try:
        import trafilatura
    except ImportError as e:
        raise BatchError(
            "reading .html files needs trafilatura: pip install 'degarble[batch]'"
        ) from e
    try:
        text = trafilatura.extract(raw, include_comments=False, include_tables=False)
    except Exception as e:  # a page that breaks the extractor fails alone
        return None, f"HTML could not be parsed ({type(e).__name__}: {e})"
    if not text or not text.strip():
        return None, "no main text found in the HTML page"
    return text, None


def iter_chunks(
    spec: ReaderSpec, done: set[int] | frozenset[int] = frozenset(), reader_out: list | None = None
) -> Iterator[Chunk]:
    """The input's chunks in order, leaving out those in ``done`` (already written).

    ``reader_out``, if given, receives the reader (for progress: ``fraction()``, ``total``).
    """
    n = spec.chunk_size
    reader = _Reader(spec, skip=lambda pos: (pos - 1) // n in done)
    if reader_out is not None:
        reader_out.append(reader)
    cur: Chunk | None = None
    for pos, rec, err in reader:
        k = (pos - 1) // n
        if cur is not None and cur.index != k:
            yield cur
            cur = None
        if cur is None:
            cur = Chunk(k)
        cur.items.append((pos, rec, err))
    if cur is not None:
        yield cur


# --------------------------------------------------------------------------------------------
# processing one chunk (runs in a worker process or a Ray actor)


def _json_default(value: Any) -> Any:
    # Parquet and CSV pass through values JSON has no type for (dates, decimals, bytes).
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _dumps(obj: dict) -> str:
    line = json.dumps(obj, ensure_ascii=False, default=_json_default)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a pass-through field: escape it
        line = json.dumps(obj, ensure_ascii=True, default=_json_default)
    return line


class ChunkRunner:
    """Turns chunks into part files; holds the model, which it loads once."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.model = None
        if spec.task != "validate":
            import degarble

            self.model = degarble.load(spec.model, spec.precision)

    def _model_fn(self, texts: list[str]) -> list[Any]:
        s = self.spec
        if s.task == "detect":
            return self.model.detect(texts, batch_size=s.batch_size, threshold=s.threshold)
        # the paragraphs restored are those judged spun: at --threshold where one was given
        return self.model.restore(texts, batch_size=s.batch_size,
                                  **given(threshold=s.threshold, greedy=s.greedy, min_score=s.min_score))

    def _results(self, texts: list[str]) -> list[Any]:
        """One result per text: the model's, or the exception it raised for that text alone."""
        try:
            out = list(self._model_fn(texts))
            if len(out) != len(texts):
                raise RuntimeError(f"model returned {len(out)} results for {len(texts)} texts")
            return out
        except NotImplementedError:
            raise  # the model cannot do this task at all: not a per-record failure
        except Exception as e:
            if len(texts) == 1:
                return [e]
        results: list[Any] = []
        for t in texts:  # the batch failed: find the record(s) to blame, one at a time
            try:
                results.append(self._model_fn([t])[0])
            except NotImplementedError:
                raise
            except Exception as e:
                results.append(e)
        return results

    def run(self, chunk: Chunk) -> bytes:
        """The part file for ``chunk``: a header line, the output lines, then the error lines."""
        out_lines: list[str] = []
        err_lines: list[str] = []
        good: list[tuple[int, dict]] = []
        for pos, rec, err in chunk.items:
            if err is not None:
                rid = _id_of(rec) if rec is not None else None
                err_lines.append(_dumps({"id": rid if rid is not None else pos, "line": pos, "error": err}))
            else:
                good.append((pos, rec))
        spun = 0
        if good:
            if self.model is None:
                results: list[Any] = [None] * len(good)
            else:
                results = self._results([rec[self.spec.text_field] for _, rec in good])
            for (pos, rec), res in zip(good, results, strict=True):
                rid = _id_of(rec)
                if isinstance(res, Exception):
                    err_lines.append(_dumps({"id": rid if rid is not None else pos, "line": pos,
                                             "error": f"model failed: {type(res).__name__}: {res}"}))
                    continue
                outrec = rec if "id" in rec and rec["id"] is not None else {"id": pos, **rec}
                if res is not None:
                    d = res.to_dict()
                    outrec = {**outrec, **d}
                    spun += bool(d.get("is_spun")) or bool(d.get("edits"))
                out_lines.append(_dumps(outrec))
        first = chunk.items[0][0] if chunk.items else 0
        header = {"degarble_part": PART_VERSION, "chunk": chunk.index, "first": first,
                  "out": len(out_lines), "err": len(err_lines), "spun": spun}
        body = "".join(s + "\n" for s in [json.dumps(header), *out_lines, *err_lines])
        return body.encode("utf-8")


# Per-process worker state: one ChunkRunner (one model) per worker process.
_RUNNER: ChunkRunner | None = None


def _set_threads(n: int, task: str = "detect") -> None:
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["MKL_NUM_THREADS"] = str(n)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # a pool already uses every core
    if task == "validate":
        return  # no model: importing torch would cost ~200 MB and seconds per worker for nothing
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def _die_with_parent() -> None:
    # Linux: if the job is killed (kill -9), its workers go too instead of finishing their chunk.
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _init_worker(spec: WorkerSpec) -> None:
    global _RUNNER
    # Ctrl-C goes to the whole process group; only the parent handles it (it stops the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    _set_threads(spec.threads, spec.task)
    _RUNNER = ChunkRunner(spec)


def _noop() -> None:
    return None


def _start_pool(workers: int, ctx, wspec: WorkerSpec) -> ProcessPoolExecutor:
    """A process pool whose workers all exist on return and ignore Ctrl-C from their first moment.

    Ctrl-C reaches the whole process group. A worker still starting up (importing, before its
    initializer runs) would die of it and break the pool, so the job would fail instead of
    stopping cleanly; a child inherits an ignored SIGINT, so the workers are started while this
    process ignores it. The pool starts workers lazily, one per submit, hence the no-op tasks.
    """
    in_main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(wspec,))
        for _ in range(workers):
            ex.submit(_noop)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, old)
    return ex


def _work(chunk: Chunk) -> tuple[int, bytes]:
    assert _RUNNER is not None, "worker not initialised"
    return chunk.index, _RUNNER.run(chunk)


# --------------------------------------------------------------------------------------------
# state folder: manifest, lock, parts


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees all of it or nothing (temp + fsync + rename)."""
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def input_fingerprint(path: str | os.PathLike, fmt: str) -> dict:
    """Identifies an input cheaply: size and a hash of its first and last MiB (a directory: its listing)."""
    p = Path(path).resolve()
    h = hashlib.sha256()
    if fmt == "dir":
        files = _dir_files(p)
        for rel, f in files:
            st = f.stat()
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        return {"path": str(p), "files": len(files), "sha256": h.hexdigest()}
    size = p.stat().st_size
    with open(p, "rb") as fh:
        h.update(fh.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            fh.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            h.update(fh.read())
    return {"path": str(p), "size": size, "sha256": h.hexdigest()}


class JobState:
    """The state folder ``OUT.parts/``: ``manifest.json``, a lock, and one part file per chunk."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock_fh: IO | None = None

    def part_path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:09d}.part"

    def open(self, manifest: dict, restart: bool) -> None:
        """Create or reopen the folder; refuse a folder left by a different job unless ``restart``."""
        if restart and self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(self.folder / ".lock", "w")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            raise BatchError(f"another degarble batch job is using {self.folder}") from e
        mpath = self.folder / "manifest.json"
        if mpath.exists():
            try:
                old = json.loads(mpath.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
            if old != manifest:
                diff = _manifest_diff(old, manifest)
                raise BatchError(
                    f"{self.folder} holds the state of a different job ({diff}); "
                    "rerun with --restart to throw it away and start over"
                )
        else:
            _atomic_write_bytes(mpath, (json.dumps(manifest, indent=2) + "\n").encode())
        # Half-written parts of a killed run: never read, safe to drop.
        for tmp in self.folder.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)

    def done(self) -> dict[int, dict]:
        """Headers of the complete parts, by chunk index (a part with a bad header is removed)."""
        out = {}
        for p in sorted(self.folder.glob("chunk-*.part")):
            header = _read_header(p)
            if header is None:
                p.unlink(missing_ok=True)  # cannot come from a rename of a complete file; redo it
                continue
            out[header["chunk"]] = header
        return out

    def write_part(self, index: int, data: bytes) -> None:
        _atomic_write_bytes(self.part_path(index), data)

    def close(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _manifest_diff(old: dict | None, new: dict) -> str:
    if not isinstance(old, dict):
        return "its manifest is unreadable"
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "differs in " + ", ".join(keys)


def _read_header(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            header = json.loads(fh.readline())
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict) or header.get("degarble_part") != PART_VERSION:
        return None
    return header


def _iter_part(path: Path) -> tuple[dict, list[bytes], list[bytes]]:
    """A part's header, output lines and error lines (checked against the header's counts)."""
    with open(path, "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    header = json.loads(lines[0])
    n_out, n_err = header["out"], header["err"]
    body = lines[1:]
    if len(body) != n_out + n_err:
        raise BatchError(f"{path} is damaged ({len(body)} lines, header says {n_out + n_err}); delete it and rerun")
    return header, body[:n_out], body[n_out:]


# --------------------------------------------------------------------------------------------
# final output


def _open_final(path: Path) -> tuple[Path, IO[bytes]]:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    fh: IO[bytes] = os.fdopen(fd, "wb")
    return Path(tmp), fh


def _commit(tmp: Path, fh: IO[bytes], path: Path, raw: IO[bytes] | None = None) -> None:
    fh.flush()
    if raw is not None:  # the gzip wrapper: close it (writes the trailer), then sync the file
        fh.close()
        fh = raw
        fh.flush()
    os.fsync(fh.fileno())
    fh.close()
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write_jsonl_from_parts(parts: list[Path], path: Path, which: int) -> None:
    """Concatenate the output (``which=1``) or error (``which=2``) lines of ``parts`` into ``path``."""
    tmp, raw = _open_final(path)
    fh: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="wb") if path.name.lower().endswith(".gz") else raw
    try:
        for p in parts:
            for line in _iter_part(p)[which]:
                fh.write(line)
        _commit(tmp, fh, path, raw if fh is not raw else None)
    except BaseException:
        raw.close()
        tmp.unlink(missing_ok=True)
        raise


def _contract_schema(task: str):
    import pyarrow as pa

    if task == "detect":
        span = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("score", pa.float64())])
        return {"spun_score": pa.float64(), "is_spun": pa.bool_(), "spans": pa.list_(span)}
    if task == "restore":
        edit = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("before", pa.string()),
                          ("after", pa.string()), ("score", pa.float64())])
        return {"restored": pa.string(), "edits": pa.list_(edit)}
    return {}


def _write_parquet_from_parts(parts: list[Path], path: Path, task: str) -> None:
    """Write the output records as Parquet, one row group per few chunks, streaming.

    Pass-through fields get one Arrow type for the whole file. A first pass infers it from every
    chunk; where records disagree (an ``id`` that is a number here and a string there), the field
    is stored as text: strings as they are, anything else as JSON.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    fixed = _contract_schema(task)

    def records(p: Path) -> list[dict]:
        return [json.loads(line) for line in _iter_part(p)[1]]

    # pass 1: the type of each field, and the fields whose records disagree
    types: dict[str, pa.DataType] = {}
    order: list[str] = []
    as_text: set[str] = set()
    for p in parts:
        recs = records(p)
        for rec in recs:
            for k in rec:
                if k not in types and k not in fixed:
                    types[k] = pa.null()
                    order.append(k)
        for k in order:
            if k in as_text or k in fixed:
                continue
            try:
                t = pa.array([r.get(k) for r in recs]).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                as_text.add(k)
                continue
            if pa.types.is_null(types[k]):
                types[k] = t
            elif not pa.types.is_null(t) and t != types[k]:
                try:
                    types[k] = pa.unify_schemas([pa.schema([(k, types[k])]), pa.schema([(k, t)])],
                                                promote_options="permissive").field(k).type
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    as_text.add(k)
    names = [k for k in order if k not in fixed] + [k for k in fixed]
    schema = pa.schema([
        (k, fixed[k] if k in fixed else pa.string() if k in as_text
         else (types[k] if not pa.types.is_null(types[k]) else pa.string()))
        for k in names
    ])

    def fix(v: Any) -> Any:
        return v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)

    tmp, raw = _open_final(path)
    try:
        with pq.ParquetWriter(raw, schema, compression="zstd") as writer:
            buf: list[dict] = []
            for p in parts:
                for rec in records(p):
                    for k in as_text:
                        if k in rec:
                            rec[k] = fix(rec[k])
                    buf.append(rec)
                if len(buf) >= 8192:
                    writer.write_table(pa.Table.from_pylist(buf, schema=schema))
                    buf = []
            if buf or not parts:
                writer.write_table(pa.Table.from_pylist(buf, schema=schema))
        _commit(tmp, raw, path)
    except BaseException:
        raw.close()
        tmp.unlink(missing_ok=True)
        raise


def output_format(path: str | os.PathLike) -> str:
    """``parquet`` for ``.parquet``/``.pq``, else ``jsonl`` (gzipped when the name ends in ``.gz``)."""
    return "parquet" if str(path).lower().endswith((".parquet", ".pq")) else "jsonl"


# --------------------------------------------------------------------------------------------
# the job


class _Progress:
    """A tqdm bar (records, records/s, ETA) on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool, initial: int, total: int | None):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="rec", unit_scale=True, dynamic_ncols=True,
                            desc="degarble batch", smoothing=0.1, file=sys.stderr)

    def update(self, n: int, reader: _Reader | None, seen: int) -> None:
        if self.bar is None:
            return
        if reader is not None and reader.total is None:
            frac = reader.fraction()
            if frac and frac > 0.001:  # estimate the total from how far into the file we are
                self.bar.total = max(int(seen / frac), self.bar.n + n)
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _resolve_model(task: str, model: str | os.PathLike | None) -> tuple[str | None, str | None]:
    """The bundle folder and hash to use, checked without loading torch."""
    if task == "validate":
        return None, None
    from .bundle import BundleError, read_manifest, resolve_bundle_path

    try:
        path = resolve_bundle_path(model).resolve()
        manifest = read_manifest(path)
    except BundleError as e:
        raise BatchError(str(e)) from e
    if task == "restore" and not manifest.has_restorer:
        raise BatchError(f"bundle {manifest.name!r} has no restorer yet; it can only detect (--task detect)")
    return str(path), manifest.hash()


def run_batch(
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    task: str = "detect",
    errors: str | os.PathLike | None = None,
    workers: int | None = None,
    text_field: str = "text",
    input_format: str = "auto",
    model: str | os.PathLike | None = None,
    precision: str | None = None,
    batch_size: int = 32,
    threshold: float | None = None,
    greedy: bool = False,
    min_score: float | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_chars: int = MAX_TEXT_CHARS,
    restart: bool = False,
    keep_parts: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> Summary:
    """Run the batch job (see the module docstring); return its :class:`Summary`.

    ``workers`` defaults to the number of cores. ``precision`` is as for :func:`degarble.load`
    (each worker resolves ``auto`` on its own CPU). ``greedy`` (``task="restore"`` only) skips the
    bundle's candidate ranking, as :meth:`degarble.Model.restore` does, and ``min_score`` (restore
    only) replaces the bundle's calibrated one (higher: fewer, surer changes). ``progress`` defaults to
    "standard error is a terminal". Raises :class:`BatchError` when the job cannot start;
    ``KeyboardInterrupt`` stops it after the parts already written are safe (rerun to go on).
    """
    t0 = time.perf_counter()
    if task not in TASKS:
        raise BatchError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if engine not in ("local", "ray"):
        raise BatchError(f"unknown engine {engine!r}; choose local or ray")
    if greedy and task != "restore":
        raise BatchError(f"--greedy applies to --task restore only, not {task}")
    if min_score is not None and task != "restore":
        raise BatchError(f"--min-score applies to --task restore only, not {task}")
    # refused here: Model would reject every record of the job one by one
    for flag, value in (("--threshold", threshold), ("--min-score", min_score)):
        try:
            check_probability(flag, value)
        except ValueError:  # in the CLI's words: the job's options are its flags
            raise BatchError(f"{flag} must be between 0 and 1, got {value}") from None
    in_path = Path(input)
    if not in_path.exists():
        raise BatchError(f"input {in_path} not found")
    out_path = Path(output)
    if not out_path.parent.is_dir():
        raise BatchError(f"output folder {out_path.parent} does not exist")
    err_path = Path(errors) if errors is not None else out_path.with_name(out_path.name + ".errors.jsonl")
    if err_path.resolve() == out_path.resolve():
        raise BatchError("--errors must differ from --output")
    fmt = detect_input_format(in_path, input_format)
    if fmt == "dir" and not in_path.is_dir():
        raise BatchError(f"input {in_path} is not a directory")
    if fmt != "dir" and in_path.is_dir():
        raise BatchError(f"input {in_path} is a directory; use --input-format dir")
    cores = os.cpu_count() or 1
    workers = max(1, int(workers or cores))
    model_path, model_hash = _resolve_model(task, model)
    try:
        precision = requested_precision(precision)
    except ValueError as e:
        raise BatchError(str(e)) from e
    say = log or (lambda msg: print(msg, file=sys.stderr))

    rspec = ReaderSpec(str(in_path.resolve()), fmt, text_field, max_chars, chunk_size)
    wspec = WorkerSpec(task, model_path, batch_size, threshold, max(1, cores // workers), text_field, precision,
                       greedy, min_score)
    manifest = {
        "state_version": STATE_VERSION,
        "input": input_fingerprint(in_path, fmt),
        "input_format": fmt,
        "text_field": text_field,
        "task": task,
        "model": model_hash,
        "precision": precision if model_path else None,
        "threshold": threshold,
        "chunk_size": chunk_size,
        "max_chars": max_chars,
        # only when set, so that the state of a job started before these settings existed still resumes
        **given(greedy=greedy, min_score=min_score),
    }
    state = JobState(out_path.with_name(out_path.name + ".parts"))
    state.open(manifest, restart)
    summary = Summary(output=str(out_path), errors_path=str(err_path))
    try:
        headers = state.done()
        summary.resumed_chunks = len(headers)
        for h in headers.values():
            _count(summary, h)
        summary.resumed_records = summary.records
        if headers:
            say(f"degarble batch: resuming; {len(headers):,} chunks ({summary.records:,} records) already done")
        done = set(headers)
        show = sys.stderr.isatty() if progress is None else progress
        bar = _Progress(show, summary.records, None)
        readers: list[_Reader] = []
        shown_errors = [0]

        def on_part(index: int, data: bytes) -> None:
            state.write_part(index, data)
            header = json.loads(data[: data.index(b"\n")])
            _count(summary, header)
            done.add(index)
            if header["err"] and shown_errors[0] < 5:  # a few examples; all of them are in ERRORS
                for line in data.splitlines()[1 + header["out"]:][: 5 - shown_errors[0]]:
                    e = json.loads(line)
                    say(f"degarble: record {e['id']} (position {e['line']}): {e['error']}")
                    shown_errors[0] += 1
            bar.update(header["out"] + header["err"], readers[0] if readers else None, summary.records)

        try:
            if engine == "ray":
                from .batch_ray import run_chunks_ray

                run_chunks_ray(rspec, wspec, frozenset(done), workers, ray_address, on_part)
            else:
                _run_local(rspec, wspec, done, workers, on_part, readers)
        except NotImplementedError as e:
            raise BatchError(str(e)) from e
        finally:
            bar.close()

        # Every chunk of the input is now done: build OUT and ERRORS from the parts.
        parts = [state.part_path(k) for k in sorted(state.done())]
        if output_format(out_path) == "parquet":
            _write_parquet_from_parts(parts, out_path, task)
        else:
            _write_jsonl_from_parts(parts, out_path, 1)
        _write_jsonl_from_parts(parts, err_path, 2)
        summary.finished = True
        if keep_parts:
            state.close()
        else:
            state.remove()
    finally:
        state.close()
        summary.seconds = time.perf_counter() - t0
    return summary


def _count(summary: Summary, header: dict) -> None:
    summary.chunks += 1
    summary.written += header["out"]
    summary.errors += header["err"]
    summary.spun += header["spun"]
    summary.records += header["out"] + header["err"]


def _run_local(
    rspec: ReaderSpec,
    wspec: WorkerSpec,
    done: set[int],
    workers: int,
    on_part: Callable[[int, bytes], None],
    readers: list,
) -> None:
    """Run every chunk not in ``done``: in this process for one worker, else in a process pool."""
    chunks = iter_chunks(rspec, frozenset(done), reader_out=readers)
    if workers == 1:
        _set_threads(wspec.threads, wspec.task)
        runner = ChunkRunner(wspec)
        for chunk in chunks:
            on_part(chunk.index, runner.run(chunk))
        return

    import multiprocessing

    # spawn: workers start clean (no copy of this process's threads or locks), load torch themselves
    ctx = multiprocessing.get_context("spawn")
    max_inflight = 2 * workers  # keeps every worker busy while bounding memory
    ex = _start_pool(workers, ctx, wspec)
    inflight: set[Future] = set()

    def drain(block_until: int) -> None:
        while len(inflight) > block_until:
            finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for f in finished:
                inflight.discard(f)
                index, data = f.result()
                on_part(index, data)

    try:
        for chunk in chunks:
            drain(max_inflight - 1)
            inflight.add(ex.submit(_work, chunk))
        drain(0)
    except BaseException:
        # Ctrl-C or a failure: stop now; finished parts are safe on disk and a rerun goes on.
        for f in inflight:
            f.cancel()
        for proc in list(getattr(ex, "_processes", {}).values()):
            proc.terminate()
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


# --------------------------------------------------------------------------------------------
# Hugging Face datasets


def hf_map(task: str = "detect", model: str | os.PathLike | None = None, text_field: str = "text",
           batch_size: int = 32, precision: str | None = None, greedy: bool = False,
           min_score: float | None = None, threshold: float | None = None) -> Callable[[dict], dict]:
    """A function for ``Dataset.map(..., batched=True)`` that adds the contract fields.

        ds = ds.map(degarble.batch.hf_map("detect"), batched=True, batch_size=256)

    adds ``spun_score``, ``is_spun`` and ``spans`` (``restore``: ``restored`` and ``edits``).
    The model loads on first use in each process, so ``num_proc=N`` loads it once per process.
    A missing (``None``) text is treated as the empty string. ``precision`` as for
    :func:`degarble.load`; ``greedy`` and ``min_score`` (restore only) as for
    :meth:`degarble.Model.restore`; ``threshold`` replaces the bundle's calibrated threshold
    (``is_spun``; for restore, the paragraphs changed), as ``--threshold`` does.
    """
    if task not in ("detect", "restore"):
        raise ValueError(f"task must be detect or restore, got {task!r}")
    if (greedy or min_score is not None) and task != "restore":
        raise ValueError(f"greedy and min_score apply to restore only, not {task}")
    # checked here, before any worker loads the model, and again by Model on each call
    check_probability("threshold", threshold)
    check_probability("min_score", min_score)
    precision = requested_precision(precision)
    at = given(threshold=threshold)

    def fn(batch: dict) -> dict:
        import degarble

        m = degarble.load(model, precision)
        texts = [t if isinstance(t, str) else "" for t in batch[text_field]]
        if task == "detect":
            results = m.detect(texts, batch_size=batch_size, **at)
        else:
            results = m.restore(texts, batch_size=batch_size, **at, **given(greedy=greedy, min_score=min_score))
        dicts = [r.to_dict() for r in results]
        keys = ("spun_score", "is_spun", "spans") if task == "detect" else ("restored", "edits")
        return {k: [d[k] for d in dicts] for k in keys}

    return fn


__all__ = [
    "BatchError",
    "Chunk",
    "ChunkRunner",
    "ReaderSpec",
    "Summary",
    "WorkerSpec",
    "detect_input_format",
    "hf_map",
    "iter_chunks",
    "run_batch",
]
