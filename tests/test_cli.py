"""The command line through ``main([...])``: verbs, formats, bad records, exit codes.

``detect`` and ``restore`` run against a stub model put in place of ``degarble.load`` (the real
model has its own tests). ``spin`` runs against a small fake spinner module so the CLI mechanics are
tested whatever state ``degarble.spin`` is in; the round trip through the real spinner is tested
too, and skipped until ``degarble.spin`` exists.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
import types

import pytest

import degarble
from degarble import Edit, apply_edits
from degarble.cli import main
from degarble.types import Detection, Restoration, Span

# --------------------------------------------------------------------------------------------
# helpers and stand-ins


def write_jsonl(path, records) -> str:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8"
    )
    return str(path)


def read_jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


_SWAPS = {"foreign": "overseas", "assembly": "meeting", "News": "Information"}


def _fake_spin(text, rate=None, seed=13, profile="fake.v1"):
    """Swap the words in _SWAPS; edits index the spun text and lead back to the original."""
    rate = 0.25 if rate is None else rate  # like the real spin(): None = the profile's default
    if "EXPLODE" in text:
        raise ValueError("the spinner choked")
    parts, edits, pos_out = [], [], 0
    for m in re.finditer(r"\w+|\W+", text):
        w = m.group()
        new = _SWAPS.get(w, w)
        if new != w:
            edits.append(Edit(pos_out, pos_out + len(new), new, w))
        parts.append(new)
        pos_out += len(new)
    return degarble.Spun("".join(parts), edits, f"spin:{profile}|rate:{rate:.2f}|seed:{seed}")


@pytest.fixture
def fake_spin(monkeypatch):
    mod = types.ModuleType("degarble.spin")
    mod.spin = _fake_spin
    mod.RATES = {"light": 0.08, "medium": 0.20, "heavy": 0.35}
    mod.PROFILES = {"fake.v1": object(), "fake.v2": object()}
    mod.DEFAULT_PROFILE = "fake.v1"
    monkeypatch.setitem(sys.modules, "degarble.spin", mod)
    return mod


class StubModel:
    """Flags the word "overseas" and restores it to "foreign"; fails on texts containing BOOM."""

    name = "stub"
    threshold = 0.5

    def __init__(self, restorer: bool = True):
        self.calls: list[list[str]] = []
        self.has_restorer = restorer

    def _check(self, texts):
        self.calls.append(list(texts))
        if any("BOOM" in t for t in texts):
            raise RuntimeError("cannot handle BOOM")

    def detect(self, texts, batch_size=32):
        self._check(texts)
        out = []
        for t in texts:
            spans = [Span(m.start(), m.end(), 0.8, m.group()) for m in re.finditer("overseas", t)]
            score = 0.9 if spans else 0.1
            out.append(Detection(score, score >= self.threshold, spans))
        return out

    def restore(self, texts, batch_size=32):
        self._check(texts)
        if not self.has_restorer:
            raise NotImplementedError("restorer not trained yet")
        out = []
        for t in texts:
            edits = [Edit(m.start(), m.end(), "overseas", "foreign", 0.9) for m in re.finditer("overseas", t)]
            out.append(Restoration(apply_edits(t, edits), edits))
        return out


@pytest.fixture
def stub(monkeypatch):
    model = StubModel()
    loaded = []

    def fake_load(path=None, precision=None):
        loaded.append(path)
        return model

    monkeypatch.setattr(degarble, "load", fake_load, raising=False)
    model.loaded = loaded
    return model


def set_stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# general


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"degarble {degarble.__version__}"


def test_no_verb_shows_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "spin" in capsys.readouterr().err


def test_help_has_examples(capsys):
    assert main(["detect", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--threshold" in out and "--batch-size" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["detect", "x.jsonl", "--no-such-flag"],
        ["detect", "--batch-size", "0"],
        ["detect", "--threshold", "1.5"],
        ["restore", "--format", "xml"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_missing_input_file_exits_2(tmp_path, capsys, stub):
    assert main(["detect", str(tmp_path / "nope.jsonl")]) == 2
    assert capsys.readouterr().err == f"degarble detect: input file {tmp_path / 'nope.jsonl'} not found\n"


def test_python_dash_m_works():
    r = subprocess.run(
        [sys.executable, "-m", "degarble", "--version"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout.strip() == f"degarble {degarble.__version__}"


# --------------------------------------------------------------------------------------------
# spin (fake spinner: CLI mechanics)


def test_spin_round_trip_and_pass_through(tmp_path, fake_spin, capsys):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "text": "The foreign minister met the assembly.", "source": "x"},
            {"id": "b", "text": "CBS News said nothing."},
            {"id": "c", "text": ""},
        ],
    )
    out = tmp_path / "out.jsonl"
    assert main(["spin", src, "--output", str(out), "--rate", "heavy", "--seed", "7"]) == 0
    assert capsys.readouterr().out == ""
    recs = read_jsonl(out.read_text(encoding="utf-8"))
    assert [r["id"] for r in recs] == ["a", "b", "c"]
    assert recs[0]["source"] == "x"
    assert recs[0]["spun"] == "The overseas minister met the meeting."
    assert recs[0]["spin_signature"] == "spin:fake.v1|rate:0.35|seed:7"
    assert recs[2] == {
        "id": "c",
        "text": "",
        "spun": "",
        "edits": [],
        "spin_signature": "spin:fake.v1|rate:0.35|seed:7",
    }
    assert recs[0]["edits"][0] == {"start": 4, "end": 12, "before": "overseas", "after": "foreign"}
    for r in recs:
        edits = [Edit(**e) for e in r["edits"]]
        assert apply_edits(r["spun"], edits) == r["text"]


def test_spin_bad_lines_are_reported_and_others_still_run(tmp_path, fake_spin, capsys):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "ok1", "text": "foreign"},
            "{broken json",
            {"id": "nt", "body": "no text"},
            {"id": "boom", "text": "EXPLODE"},
            {"id": "ok2", "text": "assembly"},
        ],
    )
    errors = tmp_path / "errors.jsonl"
    out = tmp_path / "out.jsonl"
    assert main(["spin", src, "-o", str(out), "--errors", str(errors)]) == 1
    assert [r["id"] for r in read_jsonl(out.read_text())] == ["ok1", "ok2"]
    err_lines = capsys.readouterr().err.splitlines()
    assert err_lines[0].startswith("degarble: line 2: invalid JSON")
    assert err_lines[1] == 'degarble: line 3 (id=nt): missing "text" field'
    assert err_lines[2] == "degarble: line 4 (id=boom): model failed: ValueError: the spinner choked"
    logged = read_jsonl(errors.read_text())
    assert [(e["line"], e["id"]) for e in logged] == [(2, None), (3, "nt"), (4, "boom")]
    assert set(logged[0]) == {"line", "id", "error"}


def test_spin_stdin_to_stdout(monkeypatch, fake_spin, capsys):
    set_stdin(monkeypatch, b'{"text": "foreign news"}\n')
    assert main(["spin", "-", "--rate", "0.5"]) == 0
    [rec] = read_jsonl(capsys.readouterr().out)
    assert rec["spun"] == "overseas news" and rec["spin_signature"].endswith("rate:0.50|seed:13")


def test_spin_txt_input_with_text_output(tmp_path, fake_spin, capsys):
    p = tmp_path / "story.txt"
    p.write_text("The foreign minister.\n\nThe assembly met.\n", encoding="utf-8")
    assert main(["spin", str(p), "--format", "text"]) == 0
    assert capsys.readouterr().out == "The overseas minister.\n\nThe meeting met.\n"
    assert main(["spin", str(p)]) == 0
    [rec] = read_jsonl(capsys.readouterr().out)
    assert (
        rec["id"] == "story.txt"
        and apply_edits(rec["spun"], [Edit(**e) for e in rec["edits"]]) == rec["text"]
    )


def test_spin_gz_input_and_output(tmp_path, fake_spin):
    src = tmp_path / "in.jsonl.gz"
    src.write_bytes(gzip.compress(b'{"text": "foreign"}\n'))
    out = tmp_path / "out.jsonl.gz"
    assert main(["spin", str(src), "-o", str(out)]) == 0
    assert read_jsonl(gzip.decompress(out.read_bytes()).decode())[0]["spun"] == "overseas"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--rate", "enormous"], "--rate must be a number in [0, 1] or one of light, medium, heavy"),
        (["--rate", "1.5"], "--rate must be between 0 and 1"),
        (["--profile", "nope.v9"], "unknown --profile 'nope.v9'; choose one of fake.v1, fake.v2"),
    ],
)
def test_spin_bad_options_exit_2(tmp_path, fake_spin, capsys, flags, message):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    out = tmp_path / "out.jsonl"
    assert main(["spin", src, "-o", str(out), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_spin_profile_is_passed(tmp_path, fake_spin, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    assert main(["spin", src, "--profile", "fake.v2", "--rate", "light"]) == 0
    assert read_jsonl(capsys.readouterr().out)[0]["spin_signature"] == "spin:fake.v2|rate:0.08|seed:13"


# --------------------------------------------------------------------------------------------
# spin (the real spinner; skipped until degarble.spin exists)


@pytest.fixture
def real_spin():
    mod = pytest.importorskip("degarble.spin")
    if not hasattr(mod, "spin"):
        pytest.skip("degarble.spin is not written yet")
    return mod


def test_real_spin_round_trip(tmp_path, real_spin, capsys):
    texts = [
        "The deputy foreign minister addressed the General Assembly on Tuesday.",
        "CBS News reported that the company would announce its results next week.",
        "",
    ]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    assert main(["spin", src, "--rate", "heavy", "--seed", "5"]) == 0
    recs = read_jsonl(capsys.readouterr().out)
    assert len(recs) == 3
    for r in recs:
        assert apply_edits(r["spun"], [Edit(**e) for e in r["edits"]]) == r["text"]
        assert r["spin_signature"]
    # deterministic
    assert main(["spin", src, "--rate", "heavy", "--seed", "5"]) == 0
    assert read_jsonl(capsys.readouterr().out) == recs


def test_real_spin_pipe_into_head(tmp_path, real_spin):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "The foreign minister met the assembly."}] * 3000)
    r = subprocess.run(
        f"{sys.executable} -m degarble spin {src} | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr
    assert len(r.stdout.splitlines()) == 1


# --------------------------------------------------------------------------------------------
# detect


def test_detect_jsonl(tmp_path, stub, capsys):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [{"id": "s", "text": "The overseas minister.", "keep": 1}, {"id": "c", "text": "The minister."}],
    )
    assert main(["detect", src, "--model", "/some/bundle"]) == 0
    assert stub.loaded == ["/some/bundle"]
    spun, clean = read_jsonl(capsys.readouterr().out)
    assert spun == {
        "id": "s",
        "text": "The overseas minister.",
        "keep": 1,
        "spun_score": 0.9,
        "is_spun": True,
        "spans": [{"start": 4, "end": 12, "score": 0.8}],
    }
    assert clean["is_spun"] is False and clean["spans"] == [] and clean["spun_score"] == 0.1


def test_detect_empty_text_scores_zero_without_calling_the_model(tmp_path, stub, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": ""}, {"text": "  \n"}])
    assert main(["detect", src]) == 0
    assert stub.calls == []
    assert [(r["spun_score"], r["is_spun"], r["spans"]) for r in read_jsonl(capsys.readouterr().out)] == [
        (0.0, False, []),
        (0.0, False, []),
    ]


def test_detect_batches_and_falls_back_per_record(tmp_path, stub, capsys):
    texts = ["overseas one", "two", "BOOM three", "four", "overseas five"]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    errors = tmp_path / "err.jsonl"
    assert main(["detect", src, "--batch-size", "2", "--errors", str(errors)]) == 1
    captured = capsys.readouterr()
    assert [r["id"] for r in read_jsonl(captured.out)] == [0, 1, 3, 4]  # order kept, bad one left out
    assert captured.err.strip() == "degarble: line 3 (id=2): model failed: RuntimeError: cannot handle BOOM"
    assert read_jsonl(errors.read_text()) == [
        {"line": 3, "id": "2", "error": "model failed: RuntimeError: cannot handle BOOM"}
    ]
    # batches of two; the failing batch is retried one text at a time
    assert stub.calls == [
        ["overseas one", "two"],
        ["BOOM three", "four"],
        ["BOOM three"],
        ["four"],
        ["overseas five"],
    ]


def test_detect_threshold_override(tmp_path, stub, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "overseas"}, {"text": "plain"}])
    assert main(["detect", src, "--threshold", "0.95"]) == 0
    assert [r["is_spun"] for r in read_jsonl(capsys.readouterr().out)] == [False, False]
    assert main(["detect", src, "--threshold", "0.05"]) == 0
    assert [r["is_spun"] for r in read_jsonl(capsys.readouterr().out)] == [True, True]


def test_detect_text_format_brackets_when_not_a_tty(tmp_path, stub, capsys):
    p = tmp_path / "story.txt"
    p.write_text("The overseas minister met overseas envoys.\n", encoding="utf-8")
    assert main(["detect", str(p), "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "## line 1 (id=story.txt): spun_score 0.900 (threshold 0.50) → SPUN, 2 flagged" in out
    assert "The [[overseas]] minister met [[overseas]] envoys.\n" in out
    assert "\x1b[" not in out


def test_detect_text_format_colour_when_forced(tmp_path, stub, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "an overseas visit"}])
    assert main(["detect", src, "--format", "text", "--color", "always"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[30;43moverseas\x1b[0m" in out and "[[" not in out


def test_detect_stdin(monkeypatch, stub, capsys):
    set_stdin(monkeypatch, b'{"text": "overseas"}\nnot json\n')
    assert main(["detect"]) == 1  # IN defaults to standard input
    captured = capsys.readouterr()
    assert read_jsonl(captured.out)[0]["is_spun"] is True
    assert "degarble: line 2: invalid JSON" in captured.err


def test_detect_model_load_failures_exit_2(tmp_path, monkeypatch, capsys):
    from degarble.bundle import BundleError

    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    out = tmp_path / "out.jsonl"

    def broken_load(path=None, precision=None):
        raise BundleError("no model bundle found. Give one in any of these ways: ...")

    monkeypatch.setattr(degarble, "load", broken_load, raising=False)
    assert main(["detect", src, "-o", str(out)]) == 2
    assert "degarble detect: no model bundle found" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.delattr(degarble, "load", raising=False)
    assert main(["detect", src]) == 2
    assert "degarble.load is missing" in capsys.readouterr().err


def test_detect_bad_model_output_is_a_record_error(tmp_path, monkeypatch, capsys):
    class Odd:
        threshold = 0.5

        def detect(self, texts):
            return [{"spun_score": 0.2} for _ in texts]  # no is_spun, no spans

    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: Odd(), raising=False)
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "q", "text": "x"}])
    assert main(["detect", src]) == 1
    assert "line 1 (id=q): bad model output: KeyError" in capsys.readouterr().err


def test_detect_model_returning_wrong_count_falls_back(tmp_path, monkeypatch, capsys):
    class Short:
        def detect(self, texts, batch_size=32):
            return [Detection(0.3, False, [])] * max(1, len(texts) - 1)

    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: Short(), raising=False)
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}, {"text": "b"}])
    assert main(["detect", src]) == 0  # batch of two gave one result; each alone works
    assert len(read_jsonl(capsys.readouterr().out)) == 2


# --------------------------------------------------------------------------------------------
# restore


def test_restore_jsonl(tmp_path, stub, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "The overseas minister."}, {"text": ""}])
    assert main(["restore", src]) == 0
    a, empty = read_jsonl(capsys.readouterr().out)
    assert a == {
        "id": "a",
        "text": "The overseas minister.",
        "restored": "The foreign minister.",
        "edits": [{"start": 4, "end": 12, "before": "overseas", "after": "foreign", "score": 0.9}],
    }
    assert empty == {"text": "", "restored": "", "edits": []}
    assert apply_edits(a["text"], [Edit(**e) for e in a["edits"]]) == a["restored"]


def test_restore_text_and_diff_formats(tmp_path, stub, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "The overseas minister."}])
    assert main(["restore", src, "--format", "text"]) == 0
    assert capsys.readouterr().out == "The foreign minister.\n"
    assert main(["restore", src, "--format", "diff"]) == 0
    out = capsys.readouterr().out
    assert "## line 1 (id=a): 1 change\n" in out
    assert "  4-12  overseas → foreign  (0.90)\n" in out
    assert "The [-overseas-]{+foreign+} minister.\n" in out
    assert main(["restore", src, "--format", "diff", "--color", "always"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[9;31moverseas\x1b[0m" in out and "\x1b[1;32mforeign\x1b[0m" in out


def test_restore_without_restorer_exits_2(tmp_path, stub, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "overseas"}])
    out = tmp_path / "out.jsonl"
    stub.has_restorer = False
    assert main(["restore", src, "-o", str(out)]) == 2
    assert "has no restorer" in capsys.readouterr().err
    assert not out.exists()


def test_restore_not_implemented_at_run_time_exits_2(tmp_path, monkeypatch, capsys):
    class DetectOnly:
        def detect(self, texts):
            return []

        def restore(self, texts):
            raise NotImplementedError("restorer not trained yet")

    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: DetectOnly(), raising=False)
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "overseas"}])
    out = tmp_path / "out.jsonl"
    assert main(["restore", src, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has no restorer" in err and "restorer not trained yet" in err
    assert not out.exists()


def test_restore_greedy_reaches_the_model(tmp_path, tiny_ranked_bundle, tagged_infill, capsys):
    """--greedy makes the bundle restore without ranking at its greedy_min_score (the fake model
    step scores every replacement 0.5: under the ranked min_score, over the greedy one)."""
    text = "The deputy overseas minister said so."
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": text}])
    assert main(["restore", src, "--model", str(tiny_ranked_bundle)]) == 0
    (ranked,) = read_jsonl(capsys.readouterr().out)
    assert ranked["restored"] == text and ranked["edits"] == []
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--greedy"]) == 0
    (greedy,) = read_jsonl(capsys.readouterr().out)
    assert greedy["edits"] and {e["after"].lower() for e in greedy["edits"]} == {"greedy"}
    assert greedy["restored"] == degarble.load(tiny_ranked_bundle).restore([text], greedy=True)[0].text
    assert [rank for rank, _ in tagged_infill] == [{"candidates": 4}, None, None]


def test_restore_alternatives_reach_the_output(tmp_path, tiny_ranked_bundle, monkeypatch, capsys):
    """--alternatives K asks the ranked restorer for K runners-up per edit: the JSON edits carry them
    (edits of their own, each applicable instead of its edit), the diff view lists them, and the
    chosen edits are the same as without."""
    from degarble.models.restorer import Restorer

    asked = []

    def infill(self, items, batch_size=32):
        asked.append(self.alternatives)
        alts = [("second", 0.4), ("third", 0.2)][: self.alternatives]
        return [[("first", 0.95, alts)] * len(spans) for _, spans in items]

    monkeypatch.setattr(Restorer, "infill", infill)
    text = "The deputy overseas minister said so."
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": text}])
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--alternatives", "2"]) == 0
    (rec,) = read_jsonl(capsys.readouterr().out)
    assert rec["edits"] and all([a["after"].lower() for a in e["alternatives"]] == ["second", "third"]
                                for e in rec["edits"])
    for e in rec["edits"]:
        for a in e["alternatives"]:
            assert text[a["start"] : a["end"]] == a["before"]
            apply_edits(text, [Edit(a["start"], a["end"], a["before"], a["after"])])
    assert main(["restore", src, "--model", str(tiny_ranked_bundle)]) == 0
    (plain,) = read_jsonl(capsys.readouterr().out)
    assert [{k: v for k, v in e.items() if k != "alternatives"} for e in rec["edits"]] == plain["edits"]
    assert all("alternatives" not in e for e in plain["edits"]) and asked == [2, 0]
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--alternatives", "1", "--format", "diff",
                 "--color", "never"]) == 0
    diff = capsys.readouterr().out
    assert "or 1: " in diff and "Second" in diff and "or 2: " not in diff


def test_min_score_reaches_the_model(tmp_path, tiny_ranked_bundle, tagged_infill, monkeypatch, capsys):
    """--min-score replaces the bundle's calibrated min_score, for restore and for review (the fake
    model step scores every replacement 0.5: under the bundle's 0.9, over 0.4)."""
    text = "The deputy overseas minister said so."
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": text}])
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--min-score", "0.4"]) == 0
    (rec,) = read_jsonl(capsys.readouterr().out)
    assert rec["edits"] and {e["after"].lower() for e in rec["edits"]} == {"ranked"}
    monkeypatch.setattr(sys, "stdin", io.StringIO("r\n"))
    assert main(["review", src, "--model", str(tiny_ranked_bundle), "--min-score", "0.4", "--alternatives", "0"]) == 0
    (reviewed,) = read_jsonl(capsys.readouterr().out)
    assert reviewed["edits"] == [] and len(reviewed["rejected"]) == len(rec["edits"])
    assert [x[1] for x in tagged_infill] == [0.4, 0.4]
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--min-score", "2"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_threshold_sets_which_paragraphs_are_restored(tmp_path, tiny_ranked_bundle, tagged_infill, monkeypatch,
                                                     capsys):
    """--threshold replaces the bundle's paragraph threshold for restore, review and the html page:
    at 1 no paragraph reaches it and nothing changes; at 0 every flagged span is restored."""
    text = "The deputy overseas minister said so."
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": text}])
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--min-score", "0.4", "--threshold", "1"]) == 0
    (rec,) = read_jsonl(capsys.readouterr().out)
    assert rec["edits"] == [] and rec["restored"] == text
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--min-score", "0.4", "--threshold", "0"]) == 0
    (rec,) = read_jsonl(capsys.readouterr().out)
    assert rec["edits"]
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--min-score", "0.4", "--threshold", "1",
                 "--format", "html"]) == 0
    assert "ranked" not in capsys.readouterr().out.lower()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["review", src, "--model", str(tiny_ranked_bundle), "--min-score", "0.4", "--threshold", "1"]) == 0
    assert "0 suggested changes" in capsys.readouterr().err
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--threshold", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_restore_diff_names_a_deletion(tmp_path, tiny_ranked_bundle, monkeypatch, capsys):
    from degarble.models.restorer import Restorer

    monkeypatch.setattr(Restorer, "infill", lambda self, items, batch_size=32: [[("", 0.95, [])] * len(spans)
                                                                                 for _, spans in items])
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "It was really quite big."}])
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--format", "diff", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "→ (delete)  (0.95)" in out and "→   (" not in out


def test_restore_alternatives_with_greedy_is_a_usage_error(tmp_path, tiny_ranked_bundle, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "The deputy overseas minister said so."}])
    assert main(["restore", src, "--model", str(tiny_ranked_bundle), "--alternatives", "2", "--greedy"]) == 2
    assert "--alternatives come from candidate ranking" in capsys.readouterr().err
    assert main(["restore", src, "--alternatives", "-1"]) == 2
    assert "must be at least 0" in capsys.readouterr().err


def _answers(*lines):
    """An ``ask`` that gives ``lines`` in turn, then ``None`` (the end of the answers)."""
    it = iter(lines)
    return lambda prompt: next(it, None)


def test_review_edits_follows_each_answer():
    from degarble.cli import review_edits

    text = "The big firm told overseas media and the Common Meeting on Monday."
    spans = [("big", "large"), ("firm", "company"), ("overseas", "foreign"), ("media", "press"),
             ("Common", "General"), ("Monday", "Sunday")]
    edits = []
    for before, after in spans:
        a = text.index(before)
        alt = Edit(a, a + len(before), before, after + "-alt", 0.2)
        edits.append(Edit(a, a + len(before), before, after, 0.8, alternatives=(alt,)))
    told = []
    accepted, rejected = review_edits(text, edits, _answers("y", "n", "what?", "1", "e", "newspapers", "a"),
                                      told.append)
    assert [(e.before, e.after) for e in accepted] == [("big", "large"), ("overseas", "foreign-alt"),
                                                       ("media", "newspapers"), ("Common", "General"),
                                                       ("Monday", "Sunday")]
    assert [(e.before, e.after) for e in rejected] == [("firm", "company")]
    assert all(not e.alternatives for e in accepted + rejected)
    assert apply_edits(text, accepted) == "The large firm told foreign-alt newspapers and the General Meeting on Sunday."
    assert any("a number: that alternative" in t for t in told)  # the help, after "what?"
    assert sum(t.startswith("[") for t in told) == 5  # "a" answered for the last one without asking
    # the end of the answers rejects what is left: nothing changes unasked
    accepted, rejected = review_edits(text, edits, _answers("y"), told.append)
    assert [e.before for e in accepted] == ["big"] and [e.before for e in rejected] == [b for b, _ in spans[1:]]


def test_review_writes_only_the_accepted_changes(tmp_path, tiny_ranked_bundle, monkeypatch, capsys):
    from degarble.models.restorer import Restorer

    def infill(self, items, batch_size=32):
        return [[("first", 0.95, [("second", 0.4)][: self.alternatives])] * len(spans) for _, spans in items]

    monkeypatch.setattr(Restorer, "infill", infill)
    texts = ["The deputy overseas minister said so. He mentioned it, too.", "", "Officials mentioned the big firm."]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{k}", "text": t} for k, t in enumerate(texts)])
    model = degarble.load(tiny_ranked_bundle)
    suggested = [r.edits for r in model.restore(texts, alternatives=1)]
    n0 = len(suggested[0])
    assert n0 >= 2 and suggested[2]
    answers = ["y", "1"] + ["n"] * (n0 - 2) + ["r"]  # record 0 one by one; record 2: reject all
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(answers) + "\n"))
    out = tmp_path / "out.jsonl"
    assert main(["review", src, "--model", str(tiny_ranked_bundle), "--alternatives", "1", "-o", str(out)]) == 0
    recs = read_jsonl(out.read_text())
    assert [r["id"] for r in recs] == ["r0", "r1", "r2"]  # every record accounted for, the empty one too
    first = recs[0]
    assert [e["after"].lower() for e in first["edits"]] == ["first", "second"]
    assert len(first["rejected"]) == n0 - 2
    assert first["restored"] == apply_edits(texts[0], [Edit(**e) for e in first["edits"]])
    assert recs[1]["restored"] == "" and recs[1]["edits"] == []
    assert recs[2]["restored"] == texts[2] and len(recs[2]["rejected"]) == len(suggested[2])
    err = capsys.readouterr().err
    assert "## line 1 (id=r0)" in err and f"[1/{n0}]" in err
    # answers come from standard input, so the text cannot
    assert main(["review", "-", "--model", str(tiny_ranked_bundle)]) == 2
    assert "give the text as a file" in capsys.readouterr().err


def test_restore_greedy_with_a_model_that_cannot_is_a_usage_error(tmp_path, stub, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "The overseas minister."}])
    out = tmp_path / "out.jsonl"
    assert main(["restore", src, "--greedy", "-o", str(out)]) == 2  # StubModel.restore has no greedy
    assert "--greedy" in capsys.readouterr().err and not out.exists() and stub.calls == []


# --------------------------------------------------------------------------------------------
# info, eval, bench


def _tiny_bundle(tmp_path):
    from degarble.bundle import save_bundle

    det = tmp_path / "det"
    det.mkdir()
    (det / "config.json").write_text("{}")
    (det / "model.safetensors").write_bytes(b"w")
    return save_bundle(
        tmp_path / "bundle",
        {"name": "tiny", "detector": {"threshold": 0.6}, "spin_signature": "spin:x"},
        {"detector": det},
    )


def test_info_text_and_json(tmp_path, capsys):
    m = _tiny_bundle(tmp_path)
    assert main(["info", "--model", str(tmp_path / "bundle")]) == 0
    out = capsys.readouterr().out
    assert f"degarble {degarble.__version__}" in out and f"bundle: tiny@{m.hash()}" in out
    assert "restorer: none" in out and "trained on: spin:x" in out
    assert main(["info", "--model", str(tmp_path / "bundle"), "--format", "json", "--verify"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bundle"]["name"] == "tiny" and info["bundle"]["verified"] is True
    assert info["bundle"]["detector"]["threshold"] == 0.6
    assert set(info["versions"]) >= {"degarble", "python", "torch", "transformers"}


def test_info_lists_spinner_profiles(fake_spin, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("DEGARBLE_MODEL", raising=False)
    monkeypatch.setattr("degarble.bundle.DEFAULT_BUNDLE_DIR", tmp_path / "none")
    assert main(["info", "--format", "json"]) == 0  # no bundle is not an error for info
    info = json.loads(capsys.readouterr().out)
    assert "no model bundle found" in info["bundle"]["error"]
    assert info["spinner"]["default_profile"] == "fake.v1"
    assert info["spinner"]["profiles"]["fake.v2"].startswith("spin:fake.v2|")


def test_info_bad_explicit_model_or_failed_verify(tmp_path, capsys):
    assert main(["info", "--model", str(tmp_path / "missing")]) == 2
    assert "given explicitly" in capsys.readouterr().err
    _tiny_bundle(tmp_path)
    (tmp_path / "bundle" / "detector" / "model.safetensors").write_bytes(b"changed")
    assert main(["info", "--model", str(tmp_path / "bundle"), "--verify"]) == 1
    assert "changed: detector/model.safetensors" in capsys.readouterr().out


@pytest.mark.parametrize("verb, module", [("eval", "degarble.evaluate"), ("bench", "degarble.bench")])
def test_eval_and_bench_not_available(verb, module, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail as if the module were missing
    assert main([verb, "--anything"]) == 2
    assert "not available yet" in capsys.readouterr().err


def test_eval_is_wired_lazily(monkeypatch, capsys):
    mod = types.ModuleType("degarble.evaluate")
    seen = {}

    def add_eval_arguments(parser):
        parser.add_argument("sets", nargs="+")
        parser.add_argument("--model")

    def run_eval_from_args(args):
        seen.update(vars(args))
        return 1

    mod.add_eval_arguments = add_eval_arguments
    mod.run_eval_from_args = run_eval_from_args
    monkeypatch.setitem(sys.modules, "degarble.evaluate", mod)
    assert main(["eval", "bbc-dev", "wikinews-test", "--model", "m"]) == 1
    assert seen == {"sets": ["bbc-dev", "wikinews-test"], "model": "m"}
    assert main(["eval", "--help"]) == 0
    assert "usage: degarble eval" in capsys.readouterr().out


def test_output_into_missing_folder_exits_2(tmp_path, stub, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    assert main(["detect", src, "-o", str(tmp_path / "no" / "out.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["detect", src, "--errors", str(tmp_path / "no" / "err.jsonl")]) == 2
