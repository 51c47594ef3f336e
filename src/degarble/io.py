"""Reading and writing records: JSON Lines in, JSON Lines (or text) out, bad lines reported.

Shared by the command-line verbs and the batch job, so every front end treats input the same way:

- :func:`read_records` streams ``(line, record, error)`` triples from a JSON Lines file (plain or
  ``.gz``), from standard input (``-``) or from a plain-text file. A bad line never stops the run:
  it comes back as an :class:`RecordError` (with its line number, the record's id if one could be
  read, and a reason) and the next line is read.
- :func:`open_output` writes records to standard output or to a file. A file is written to a
  temporary name next to it and renamed into place only when the run finishes, so a crash never
  leaves a half-written output that looks complete.
- :class:`ErrorLog` prints one line per failed record to standard error and, if asked, writes
  them as JSON Lines ``{"line", "id", "error"}`` to a file; it also counts them, which decides the
  exit status (0 all records succeeded, 1 some failed).

Input formats (``input_format``):

``jsonl``
    One JSON object per line; the text is in ``text_field`` (``"text"``); every other field passes
    through to the output. Blank lines are skipped (they are not records). Lines are read as bytes
    and decoded one at a time as UTF-8 (a byte-order mark on the first line is dropped), so one
    undecodable line is reported and the others still run. Files ending in ``.gz`` are gunzipped.
``text``
    The whole input is one record, ``{"id": <file name>, "text": <file content>}``, with the content
    exactly as in the file (trailing newline included). For standard input the id is ``"<stdin>"``.
``auto`` (default)
    ``text`` for a path ending in ``.txt`` (or ``.txt.gz``), ``jsonl`` for anything else, stdin included.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: Longest text (in characters) a record may carry before it is rejected as an error.
MAX_TEXT_CHARS = 1_000_000

INPUT_FORMATS = ("auto", "jsonl", "text")


@dataclass(frozen=True)
class RecordError:
    """Why one input record could not be used (or could not be processed).

    ``line`` is the 1-based line number in the input (1 for a whole ``.txt`` file); ``id`` is the
    record's ``"id"`` field when it could be read, else ``None``.
    """

    line: int
    id: str | None
    error: str

    def to_dict(self) -> dict:
        return {"line": self.line, "id": self.id, "error": self.error}

    def format(self, prog: str = "degarble") -> str:
        """One line for standard error: ``degarble: line 7 (id=abc): missing "text" field``."""
        where = f"line {self.line}" + (f" (id={self.id})" if self.id is not None else "")
        return f"{prog}: {where}: {self.error}"


def detect_format(path: str | os.PathLike | None, input_format: str = "auto") -> str:
    """Resolve ``"auto"`` to ``"jsonl"`` or ``"text"`` from the file name (stdin is ``jsonl``)."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {input_format!r}; choose one of {', '.join(INPUT_FORMATS)}")
    if input_format != "auto":
        return input_format
    name = str(path or "-").lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return "text" if name.endswith(".txt") else "jsonl"


def read_records(
    path_or_dash: str | os.PathLike | None,
    text_field: str = "text",
    *,
    input_format: str = "auto",
    max_chars: int = MAX_TEXT_CHARS,
) -> Iterator[tuple[int, dict | None, RecordError | None]]:
    """Stream records from ``path_or_dash`` (``"-"`` or ``None`` = standard input).

    Yields ``(line, record, None)`` for a usable record and ``(line, None, error)`` for a bad one;
    ``line`` is the 1-based line number. A record is usable when it is a JSON object whose
    ``text_field`` is a string of at most ``max_chars`` characters (the empty string is valid).
    See the module docstring for the formats. A missing or unreadable *file* is not a per-line
    error: opening it raises :class:`OSError` before the first record is yielded.
    """
    fmt = detect_format(path_or_dash, input_format)
    with _open_binary(path_or_dash) as fh:
        if fmt == "text":
            yield _read_whole_text(fh, _display_name(path_or_dash), text_field, max_chars)
            return
        yield from _read_jsonl(fh, text_field, max_chars)


def _display_name(path: str | os.PathLike | None) -> str:
    if path is None or str(path) == "-":
        return "<stdin>"
    return Path(path).name


class _NoClose:
    """Wraps standard input so leaving ``with`` does not close it."""

    def __init__(self, fh: IO[bytes]):
        self.fh = fh

    def __enter__(self) -> IO[bytes]:
        return self.fh

    def __exit__(self, *exc: object) -> None:
        return None


def _open_binary(path: str | os.PathLike | None):
    if path is None or str(path) == "-":
        buf = getattr(sys.stdin, "buffer", None)
        if buf is None:  # a text-only stand-in (io.StringIO in tests): re-encode it
            return _NoClose(_EncodedLines(sys.stdin))
        return _NoClose(buf)
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory, expected a JSON Lines or .txt file")
    if p.name.lower().endswith(".gz"):
        return gzip.open(p, "rb")
    return open(p, "rb")


class _EncodedLines:
    """Byte lines from a text stream (only used when stdin has no binary buffer)."""

    def __init__(self, text_stream: IO[str]):
        self.text_stream = text_stream

    def __iter__(self) -> Iterator[bytes]:
        for line in self.text_stream:
            yield line.encode("utf-8", "surrogateescape")

    def read(self) -> bytes:
        return self.text_stream.read().encode("utf-8", "surrogateescape")


def _decode(raw: bytes, first: bool) -> tuple[str | None, str | None]:
    """Decode one line as UTF-8; return ``(text, None)`` or ``(None, reason)``."""
    if first and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        bad = raw[e.start : e.start + 1].hex()
        return None, f"not valid UTF-8 (byte 0x{bad} at byte offset {e.start}: {e.reason})"


def _has_lone_surrogate(s: str) -> bool:
    # JSON "\ud800" escapes decode to lone surrogates, which no UTF-8 writer or tokenizer accepts.
    # (Encoding is a C loop; scanning the characters in Python would cost ~50 ms per megabyte.)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _id_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and "id" in obj and obj["id"] is not None:
        return str(obj["id"])
    return None


def _check_text(
    record: dict, text_field: str, max_chars: int
) -> str | None:  # returns the reason the record is unusable, or None
    if text_field not in record:
        return f'missing "{text_field}" field'
    text = record[text_field]
    if not isinstance(text, str):
        return f'"{text_field}" must be a string, got {_json_type(text)}'
    if len(text) > max_chars:
        return (
            f'"{text_field}" is {len(text):,} characters, over the limit of {max_chars:,} (see --max-chars)'
        )
    if _has_lone_surrogate(text):
        return f'"{text_field}" contains an unpaired UTF-16 surrogate escape (e.g. "\\ud800")'
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _read_jsonl(
    fh: IO[bytes], text_field: str, max_chars: int
) -> Iterator[tuple[int, dict | None, RecordError | None]]:
    lineno = 0
    try:
        for raw in fh:
            lineno += 1
            if not raw.strip():
                continue  # blank lines are not records
            line, reason = _decode(raw, first=lineno == 1)
            if line is None:
                yield lineno, None, RecordError(lineno, None, reason or "not valid UTF-8")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield lineno, None, RecordError(lineno, None, f"invalid JSON ({e.msg} at column {e.colno})")
                continue
            except (ValueError, RecursionError) as e:  # e.g. a 5,000-digit integer, or deep nesting
                yield lineno, None, RecordError(lineno, None, f"invalid JSON ({e or 'nested too deeply'})")
                continue
            if not isinstance(obj, dict):
                yield (
                    lineno,
                    None,
                    RecordError(lineno, None, f"expected a JSON object, got {_json_type(obj)}"),
                )
                continue
            reason = _check_text(obj, text_field, max_chars)
            if reason is not None:
                yield lineno, None, RecordError(lineno, _id_of(obj), reason)
                continue
            yield lineno, obj, None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        # A corrupt or truncated gzip stream (or a failing disk): nothing after this point can
        # be read, so report it against the next line and stop.
        yield lineno + 1, None, RecordError(lineno + 1, None, f"input could not be read past here ({e})")


def _read_whole_text(
    fh: IO[bytes], name: str, text_field: str, max_chars: int
) -> tuple[int, dict | None, RecordError | None]:
    try:
        raw = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        return 1, None, RecordError(1, name, f"input could not be read ({e})")
    text, reason = _decode(raw, first=True)
    if text is None:
        return 1, None, RecordError(1, name, reason or "not valid UTF-8")
    record = {"id": name, text_field: text}
    reason = _check_text(record, text_field, max_chars)
    if reason is not None:
        return 1, None, RecordError(1, name, reason)
    return 1, record, None


# --------------------------------------------------------------------------------------------
# output


def dumps_record(record: dict) -> str:
    """One JSON Lines line (without the newline), UTF-8 friendly (``ensure_ascii=False``).

    A string holding a lone surrogate cannot be written as UTF-8; such a record falls back to
    ASCII escapes so it still round-trips as JSON instead of failing the run.
    """
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record, ensure_ascii=True)
    return line


class Output:
    """Where results go: standard output, or a file written atomically.

    Use through :func:`open_output` as a context manager. On a clean exit a file output is renamed
    into place; if the block raises, the temporary file is removed and any earlier file at that
    path is left untouched. ``.gz`` paths are gzipped.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None or str(path) == "-" else Path(path)
        self._tmp: Path | None = None
        self._fh: IO[str]
        self.records = 0
        if self.path is None:
            _utf8_stdout()
            self._fh = sys.stdout
            return
        directory = self.path.parent
        if not directory.is_dir():
            raise FileNotFoundError(f"output folder {directory} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        self._tmp = Path(tmp)
        # mkstemp makes the file 0600; give the result the usual permissions (0666 minus umask).
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        if self.path.name.lower().endswith(".gz"):
            os.close(fd)
            self._fh = gzip.open(self._tmp, "wt", encoding="utf-8", newline="\n")
        else:
            self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="\n")

    def isatty(self) -> bool:
        """True when writing to a terminal (decides whether ``--color auto`` uses colour)."""
        if self.path is not None:
            return False
        try:
            return bool(self._fh.isatty())
        except (AttributeError, ValueError):
            return False

    def write_record(self, record: dict) -> None:
        """Write one record as a JSON Lines line."""
        self._fh.write(dumps_record(record) + "\n")
        self.records += 1

    def write(self, text: str) -> None:
        """Write raw text (the human-readable formats)."""
        self._fh.write(text)

    def flush(self) -> None:
        self._fh.flush()

    def close(self, ok: bool = True) -> None:
        if self.path is None:
            if ok:
                self._fh.flush()
            return
        self._fh.close()
        assert self._tmp is not None
        if ok:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Output:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


def open_output(path_or_none: str | os.PathLike | None) -> Output:
    """Open standard output (``None`` or ``"-"``) or ``path`` for writing records; see :class:`Output`."""
    return Output(path_or_none)


def _utf8_stdout() -> None:
    # Output is UTF-8 JSON whatever the locale says (LANG=C would otherwise give ASCII errors).
    enc = (getattr(sys.stdout, "encoding", None) or "utf-8").lower().replace("-", "").replace("_", "")
    if enc != "utf8" and hasattr(sys.stdout, "reconfigure"):
        try:
            sys.stdout.reconfigure(encoding="utf-8")
        except (ValueError, OSError):  # pragma: no cover - a stream that cannot change
            pass


class ErrorLog:
    """Collects failed records: one line each on standard error, and JSON Lines to ``path`` if given.

    ``count`` is the number of failures so far; :meth:`exit_code` turns it into the command's
    exit status (0 if nothing failed, 1 otherwise).
    """

    def __init__(
        self, path: str | os.PathLike | None = None, prog: str = "degarble", stream: IO[str] | None = None
    ):
        self.prog = prog
        self.count = 0
        self._stream = stream
        self._out = Output(path) if path is not None else None

    def report(self, error: RecordError) -> None:
        self.count += 1
        stream = self._stream if self._stream is not None else sys.stderr
        print(error.format(self.prog), file=stream)
        if self._out is not None:
            self._out.write_record(error.to_dict())

    def add(self, line: int, id: str | None, error: str) -> None:
        """Report a failure found while processing a record (the model or spinner raised)."""
        self.report(RecordError(line, id, error))

    def exit_code(self) -> int:
        return 1 if self.count else 0

    def close(self, ok: bool = True) -> None:
        if self._out is not None:
            self._out.close(ok=ok)

    def __enter__(self) -> ErrorLog:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # The error log is worth keeping even when the run stops early.
        self.close(ok=True)


def record_id(record: dict | None) -> str | None:
    """The record's ``"id"`` as a string, or ``None``."""
    return _id_of(record)
