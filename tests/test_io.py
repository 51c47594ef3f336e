"""Reading records (every kind of bad line), gz/stdin/txt input, atomic output, the error log."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import sys

import pytest

from degarble.io import ErrorLog, RecordError, detect_format, dumps_record, open_output, read_records


def _write_lines(path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _read(path, **kw):
    return list(read_records(str(path), **kw))


def test_good_records_pass_through_with_line_numbers(tmp_path):
    p = tmp_path / "in.jsonl"
    _write_lines(p, [b'{"id": "a", "text": "One.", "extra": [1, 2]}', b"", b'{"text": "Two \xc3\xa9."}'])
    got = _read(p)
    assert [(line, rec, err) for line, rec, err in got] == [
        (1, {"id": "a", "text": "One.", "extra": [1, 2]}, None),
        (3, {"text": "Two é."}, None),  # the blank line 2 is not a record
    ]


def test_empty_text_is_a_valid_record(tmp_path):
    p = tmp_path / "in.jsonl"
    _write_lines(p, [b'{"id": 1, "text": ""}'])
    assert _read(p) == [(1, {"id": 1, "text": ""}, None)]


@pytest.mark.parametrize(
    "line, rid, reason",
    [
        (b'{"id": "a", "text": "unterminated', None, "invalid JSON"),
        (b"not json at all", None, "invalid JSON"),
        (b'["a", "list"]', None, "expected a JSON object, got an array"),
        (b'"just a string"', None, "expected a JSON object, got a string"),
        (b"42", None, "expected a JSON object, got a number"),
        (b'{"id": "m", "body": "no text here"}', "m", 'missing "text" field'),
        (b'{"id": "n", "text": null}', "n", '"text" must be a string, got null'),
        (b'{"id": 7, "text": ["a"]}', "7", '"text" must be a string, got an array'),
        (b'{"id": "s", "text": 3.5}', "s", '"text" must be a string, got a number'),
        (b'{"id": "u", "text": "bad \\ud800 surrogate"}', "u", "unpaired UTF-16 surrogate"),
        (b'{"id": "b", "text": "caf\xe9"}', None, "not valid UTF-8 (byte 0xe9"),
        (b'{"id": "big", "text": 1' + b"0" * 5000 + b"}", None, "invalid JSON"),
    ],
)
def test_each_bad_line_is_reported_and_the_next_line_still_runs(tmp_path, line, rid, reason):
    p = tmp_path / "in.jsonl"
    _write_lines(p, [b'{"text": "before"}', line, b'{"text": "after"}'])
    got = _read(p)
    assert len(got) == 3
    assert got[0][1] == {"text": "before"} and got[2][1] == {"text": "after"}
    lineno, rec, err = got[1]
    assert lineno == 2 and rec is None
    assert isinstance(err, RecordError)
    assert err.line == 2 and err.id == rid
    assert reason in err.error


def test_text_longer_than_the_limit_is_an_error(tmp_path):
    p = tmp_path / "in.jsonl"
    _write_lines(p, [json.dumps({"id": "long", "text": "x" * 101}).encode(), b'{"text": "ok"}'])
    (l1, r1, e1), (l2, r2, e2) = _read(p, max_chars=100)
    assert r1 is None and e1.id == "long" and "101 characters, over the limit of 100" in e1.error
    assert r2 == {"text": "ok"} and e2 is None
    # exactly at the limit is fine
    assert _read(p, max_chars=101)[0][2] is None


def test_custom_text_field(tmp_path):
    p = tmp_path / "in.jsonl"
    _write_lines(p, [b'{"body": "hello"}', b'{"text": "wrong field"}'])
    got = _read(p, text_field="body")
    assert got[0][1] == {"body": "hello"}
    assert got[1][2].error == 'missing "body" field'


def test_error_format_matches_the_documented_line():
    assert (
        RecordError(7, "abc", 'missing "text" field').format()
        == 'degarble: line 7 (id=abc): missing "text" field'
    )
    assert RecordError(3, None, "invalid JSON").format() == "degarble: line 3: invalid JSON"
    assert RecordError(3, None, "x").to_dict() == {"line": 3, "id": None, "error": "x"}


def test_bom_crlf_and_whitespace_lines(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"text": "a"}\r\n   \r\n{"text": "b"}\r\n')
    assert [(line, rec) for line, rec, _ in _read(p)] == [(1, {"text": "a"}), (3, {"text": "b"})]


def test_gzipped_jsonl(tmp_path):
    p = tmp_path / "in.jsonl.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(b'{"id": "z", "text": "zipped"}\nnope\n')
    got = _read(p)
    assert got[0] == (1, {"id": "z", "text": "zipped"}, None)
    assert got[1][2].line == 2 and "invalid JSON" in got[1][2].error


def test_truncated_gzip_is_reported_not_raised(tmp_path):
    good = gzip.compress(b"".join(b'{"text": "line %d"}\n' % i for i in range(2000)))
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(good[: len(good) // 2])
    got = _read(p)
    assert all(err is None for _, _, err in got[:-1])
    assert got[-1][1] is None and "could not be read" in got[-1][2].error


def test_stdin_binary(monkeypatch):
    data = b'{"text": "from stdin \xe2\x80\x94 ok"}\n\xff\xfe\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    got = list(read_records("-"))
    assert got[0] == (1, {"text": "from stdin — ok"}, None)
    assert got[1][2].line == 2 and "not valid UTF-8" in got[1][2].error


def test_stdin_text_only_stream(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": "plain"}\n'))
    assert list(read_records(None)) == [(1, {"text": "plain"}, None)]


def test_txt_file_is_one_record_with_the_file_name_as_id(tmp_path):
    p = tmp_path / "story.txt"
    content = "First paragraph.\n\nSecond one, with “quotes”.\n"
    p.write_text(content, encoding="utf-8")
    assert _read(p) == [(1, {"id": "story.txt", "text": content}, None)]


def test_txt_file_undecodable_or_too_long(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"caf\xe9\n")
    [(line, rec, err)] = _read(p)
    assert rec is None and err.line == 1 and err.id == "bad.txt" and "not valid UTF-8" in err.error
    p.write_text("abc", encoding="utf-8")
    [(_, rec, err)] = _read(p, max_chars=2)
    assert rec is None and "over the limit" in err.error


def test_input_format_override(tmp_path, monkeypatch):
    p = tmp_path / "notes.md"
    p.write_text("not json", encoding="utf-8")
    assert _read(p, input_format="text") == [(1, {"id": "notes.md", "text": "not json"}, None)]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"whole\nstdin\n")))
    assert list(read_records("-", input_format="text")) == [
        (1, {"id": "<stdin>", "text": "whole\nstdin\n"}, None)
    ]


def test_detect_format():
    assert detect_format("a.txt") == "text"
    assert detect_format("a.TXT.gz") == "text"
    assert detect_format("a.jsonl") == "jsonl"
    assert detect_format("a.jsonl.gz") == "jsonl"
    assert detect_format("-") == "jsonl"
    assert detect_format("a.txt", "jsonl") == "jsonl"
    with pytest.raises(ValueError, match="auto, jsonl, text"):
        detect_format("a", "csv")


def test_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        _read(tmp_path / "nope.jsonl")


def test_output_to_file_is_atomic_and_utf8(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old contents\n")
    with open_output(target) as out:
        out.write_record({"text": "Ryabkov’s é"})
        assert target.read_text() == "old contents\n"  # not replaced until the end
        temps = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
        assert len(temps) == 1
    assert target.read_text(encoding="utf-8") == '{"text": "Ryabkov’s é"}\n'
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not left 0600 like a temp file


def test_output_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), open_output(target) as out:
        out.write_record({"a": 1})
        raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_output_gz_and_stdout(tmp_path, capsys):
    target = tmp_path / "out.jsonl.gz"
    with open_output(target) as out:
        out.write_record({"x": "ü"})
    assert gzip.decompress(target.read_bytes()).decode() == '{"x": "ü"}\n'
    with open_output(None) as out:
        out.write_record({"y": "ß"})
        out.write("plain\n")
        assert not out.isatty()
    assert capsys.readouterr().out == '{"y": "ß"}\nplain\n'


def test_output_into_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_output(tmp_path / "no" / "out.jsonl")


def test_dumps_record_survives_lone_surrogates():
    line = dumps_record({"x": "a\ud800b", "y": "é"})
    assert json.loads(line) == {"x": "a\ud800b", "y": "é"}
    line.encode("utf-8")


def test_error_log_counts_and_writes(tmp_path, capsys):
    path = tmp_path / "errors.jsonl"
    with ErrorLog(path) as log:
        assert log.exit_code() == 0
        log.report(RecordError(2, None, "invalid JSON (x)"))
        log.add(5, "abc", "model failed: boom")
        assert log.count == 2 and log.exit_code() == 1
    assert capsys.readouterr().err.splitlines() == [
        "degarble: line 2: invalid JSON (x)",
        "degarble: line 5 (id=abc): model failed: boom",
    ]
    assert [json.loads(x) for x in path.read_text().splitlines()] == [
        {"line": 2, "id": None, "error": "invalid JSON (x)"},
        {"line": 5, "id": "abc", "error": "model failed: boom"},
    ]
