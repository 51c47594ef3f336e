"""Tests for degarble.evaluate: the harness end to end, with a fake spinner, corpus and model."""

import argparse
import dataclasses
import gzip
import json
import math
import sys
import types
from pathlib import Path

import pytest

import degarble
from degarble import evaluate
from degarble.baselines import DoNothing
from degarble.text import match_case, words
from degarble.types import Detection, Edit, Restoration, Span, Spun

REPO = Path(__file__).resolve().parents[1]
SETS_DIR = REPO / "eval" / "sets"
REAL_SHARED = REPO.parent / "shared"

SWAPS = {"said": "mentioned", "war": "battle", "told": "instructed"}
UNSWAP = {v: k for k, v in SWAPS.items()}


# --------------------------------------------------------------------------------------------------
# fakes


def fake_spin(text, rate=0.2, seed=13, profile="fake.v1"):
    """Swap the first ceil(rate * 10) swappable words; edits index the spun text."""
    k = math.ceil(rate * 10)
    out, edits, pos, shift, done = [], [], 0, 0, 0
    for tok in words(text):
        new = SWAPS.get(tok.text.lower())
        if new is None or done >= k:
            continue
        new = match_case(tok.text, new)
        out.append(text[pos : tok.start])
        start = tok.start + shift
        edits.append(Edit(start, start + len(new), new, tok.text))
        out.append(new)
        shift += len(new) - len(tok.text)
        pos = tok.end
        done += 1
    out.append(text[pos:])
    return Spun("".join(out), edits, f"spin:{profile}|thes:fake|rate:{rate:.2f}|seed:{seed}|v:0.1.0")


class FakeModel:
    """Flags and undoes exactly the fake spinner's swaps."""

    name = "fake"
    bundle_hash = "deadbeef0123"
    threshold = 0.5
    precision = "int8"

    def _hits(self, text):
        return [t for t in words(text) if t.text.lower() in UNSWAP]

    def detect(self, texts):
        out = []
        for t in texts:
            hits = self._hits(t)
            s = min(1.0, 0.4 * len(hits))
            out.append(Detection(s, s >= self.threshold, [Span(h.start, h.end, 0.9) for h in hits]))
        return out

    def restore(self, texts):
        out = []
        for t in texts:
            edits = [Edit(h.start, h.end, h.text, match_case(h.text, UNSWAP[h.text.lower()])) for h in self._hits(t)]
            pieces, pos = [], 0
            for e in edits:
                pieces += [t[pos : e.start], e.after]
                pos = e.end
            out.append(Restoration("".join(pieces + [t[pos:]]), edits))
        return out


class DetectorOnly(FakeModel):
    name = "fake-det"

    def restore(self, texts):
        raise NotImplementedError("no restorer in this bundle")


@pytest.fixture
def fake_spinner(monkeypatch):
    mod = types.ModuleType("degarble.spin")
    mod.spin = fake_spin
    mod.PROFILES = {"fake.v1": object()}
    mod.BASE_PROFILES = ("fake.v1",)
    mod.RATES = {"light": 0.08, "medium": 0.20, "heavy": 0.35}
    monkeypatch.setitem(sys.modules, "degarble.spin", mod)
    return mod


@pytest.fixture
def workspace(tmp_path, monkeypatch, fake_spinner):
    """A checkout-like folder: a corpus of 320 paragraphs, and a shared/ with a dev file and PPS table."""
    derived = tmp_path / "data" / "derived"
    derived.mkdir(parents=True)
    with open(derived / "test.paragraphs.jsonl", "w", encoding="utf-8") as fh:
        for i in range(320):
            text = (f"In report {i} the minister said the war would end soon, and officials told "
                    f"reporters on day {i} that talks had gone well.")
            fh.write(json.dumps({"id": f"bbc-{i}", "source": "bbc", "doc_id": f"d{i // 4}", "text": text}) + "\n")
        fh.write(json.dumps({"id": "short", "text": "Too short."}) + "\n")
    shared = tmp_path / "shared"
    (shared / "dev").mkdir(parents=True)
    dev = [
        {"id": "p1", "spun": "He mentioned the battle was over.", "original": "He said the war was over.",
         "status": "confirmed"},
        {"id": "p2", "spun": "Nothing changed here at all.", "original": "Nothing changed here at all.",
         "status": "confirmed"},
    ]
    (shared / "dev" / "seed_dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev), encoding="utf-8")
    (shared / "data" / "tortured_phrases").mkdir(parents=True)
    pps = {"phrases": [{"tortured": "profound learning", "correct": "deep learning"},
                       {"tortured": "counterfeit news", "correct": "fake news"},
                       {"tortured": "place of interest", "correct": "region of interest (roi)"},
                       {"tortured": "cadence design", "correct": "rythm pattern (?)"}]}
    with gzip.open(shared / "data" / "tortured_phrases" / "pps_tortured_phrases.json.gz", "wt") as fh:
        json.dump(pps, fh)
    # whole articles (bbc-articles.v1): paragraphs joined by newlines, 300 words or more
    (shared / "data" / "bbc_news").mkdir(parents=True)
    with gzip.open(shared / "data" / "bbc_news" / "bbc_news.jsonl.gz", "wt", encoding="utf-8") as fh:
        for a in range(120):
            paras = [f"In article {a} part {k} " + "the minister said the war would end soon and " * 9 + "talks went well."
                     for k in range(4)]
            fh.write(json.dumps({"id": f"news/{a:03d}", "text": "\n".join(paras)}) + "\n")
    monkeypatch.setattr(evaluate, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: FakeModel(), raising=False)
    return tmp_path


def parse(argv):
    p = argparse.ArgumentParser()
    evaluate.add_eval_arguments(p)
    return p.parse_args(argv)


def run(argv):
    return evaluate.run_eval_from_args(parse(["--quiet", *argv]))


def result(report, set_name, system):
    return next(r for r in report["results"] if r["set"] == set_name and r["system"] == system)


# --------------------------------------------------------------------------------------------------
# named sets, end to end


def test_spin_set_profiles_are_a_named_group_or_a_list(workspace):
    """"all" (every current profile), "base" (the five of degarble 0.2: bbc-test.v1 keeps its means
    comparable when a profile is added) or names; anything else is a clear error."""
    defn = {"name": "x", "kind": "spin", "source": "data/derived/test.paragraphs.jsonl", "select": {"count": 3},
            "spin": {"profiles": "base", "rates": ["light"]}}
    assert [s.name for s in evaluate._build_spin_sets(defn, workspace, None, None, print)] == ["x/fake.v1/light"]
    defn["spin"]["profiles"] = "bogus"
    with pytest.raises(evaluate.SetError, match="'bogus': use \"all\", \"base\" or a list of names"):
        evaluate._build_spin_sets(defn, workspace, None, None, print)


def test_named_sets_end_to_end(workspace, capsys):
    out = workspace / "out"
    rc = run(["--sets-dir", str(SETS_DIR), "--shared", str(workspace / "shared"), "--limit", "10",
              "--output", str(out / "r.json"), "--summary", str(out / "s.md"), "--plots-dir", str(out)])
    assert rc == 0
    report = json.loads((out / "r.json").read_text())
    assert [s["name"] for s in report["systems"]] == ["fake", "do-nothing", "fgws"]
    assert report["systems"][0]["precision"] == "int8"  # scores depend on it, so the report says it
    assert [s["greedy"] for s in report["systems"]] == [False, False, False]
    assert "`fake` @deadbeef0123 (threshold 0.5, int8)" in (out / "s.md").read_text()
    names = [s["name"] for s in report["sets"]]
    # clean sets first, so spun sets can use them
    assert names[:2] == ["bbc-articles.v1/clean", "bbc-test.v1/clean"]
    # the article sets' profiles are not the fake spinner's, so only the clean articles are built
    assert set(names) == {"bbc-test.v1/clean", "bbc-test.v1/fake.v1/light", "bbc-test.v1/fake.v1/medium",
                          "bbc-test.v1/fake.v1/heavy", "seed-dev.v1", "seed-dev.v1/originals",
                          "tortured-phrases.v1", "bbc-articles.v1/clean"}
    assert all(s["n"] == 10 for s in report["sets"] if s["name"].startswith("bbc"))
    assert result(report, "bbc-articles.v1/clean", "fake")["clean"]["changed_share"] == 0.0

    medium = result(report, "bbc-test.v1/fake.v1/medium", "fake")
    assert medium["signature"] == ("degarble-eval|set:bbc-test.v1/fake.v1/medium|spin:fake.v1|thes:fake"
                                   f"|rate:0.20|seed:13|model:fake@deadbeef|v:{degarble.__version__}")
    assert medium["detection"]["auroc"] == 1.0 and medium["detection"]["negatives"] == "bbc-test.v1/clean"
    assert medium["detection"]["n"] == 20  # 10 spun + 10 clean
    assert medium["token"]["f"] == 1.0
    assert medium["restoration"]["edit"]["f"] == 1.0
    assert medium["restoration"]["wer_restored"] == 0.0 and medium["restoration"]["wer_reduction"] == 1.0
    fates = medium["restoration"]["gold_edits"]
    assert fates["gold"] > 0 and fates["restored"] == fates["gold"]
    assert "**Where the gold edits go**" in (out / "s.md").read_text()

    nothing = result(report, "bbc-test.v1/fake.v1/medium", "do-nothing")
    assert nothing["detection"]["auroc"] == 0.5 and nothing["restoration"]["wer_reduction"] == 0.0
    # it flags no paragraph, so every gold edit is lost there
    fates = nothing["restoration"]["gold_edits"]
    assert fates["paragraph_not_flagged"] == fates["gold"] == medium["restoration"]["gold_edits"]["gold"]
    assert nothing["signature"].endswith(f"|model:do-nothing|v:{degarble.__version__}")

    clean = result(report, "bbc-test.v1/clean", "fake")
    assert clean["clean"]["changed_share"] == 0.0 and clean["detection"]["flagged_share"] == 0.0

    dev = result(report, "seed-dev.v1", "fake")
    assert dev["restoration"]["wer_restored"] == 0.0
    # p2 is unchanged (a negative), and the two originals are negatives too (seed-dev.v1/originals)
    assert dev["detection"]["tp"] == 1 and dev["detection"]["tn"] == 3
    assert dev["detection"]["negatives"] == "seed-dev.v1/originals"

    tortured = next(s for s in report["sets"] if s["name"] == "tortured-phrases.v1")
    assert tortured["n"] == 3 and tortured["skipped_entries"] == 1

    md = (out / "s.md").read_text()
    assert "| bbc-test.v1/fake.v1/medium | fake | 100.0 |" in md
    assert "| bbc-test.v1/clean | fake | 0.0 |" in md
    assert "model:fgws@" in md
    assert (out / "fake-pr.png").stat().st_size > 1000
    assert (out / "fake-scores.png").stat().st_size > 1000
    assert not (out / "do-nothing-pr.png").exists()


def test_named_sets_are_deterministic(workspace):
    reports = []
    for k in range(2):
        out = workspace / f"out{k}"
        assert run(["--sets", "bbc-spun", "bbc-clean", "--sets-dir", str(SETS_DIR), "--limit", "5",
                    "--output", str(out / "r.json"), "--summary", str(out / "s.md"), "--no-plots"]) == 0
        reports.append(json.loads((out / "r.json").read_text()))
    for r in reports:
        r.pop("run")
        for system in r["systems"]:
            system.pop("seconds")  # wall-clock timing, the only thing allowed to differ
    assert reports[0] == reports[1]


def test_default_outputs_go_to_eval_reports(workspace):
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), "--shared", str(workspace / "shared"),
                "--no-plots"]) == 0
    assert (workspace / "eval" / "reports" / "fake.json").is_file()
    assert (workspace / "eval" / "reports" / "summary.md").is_file()


def test_outputs_follow_the_report_elsewhere(workspace):
    # an experiment's report elsewhere leaves the committed summary and plots in eval/reports alone
    out = workspace / "exp" / "r.json"
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), "--shared", str(workspace / "shared"),
                "--output", str(out)]) == 0
    assert out.is_file() and (workspace / "exp" / "r.md").read_text().startswith("<!-- generated by")
    assert list((workspace / "exp").glob("*.png"))
    assert not (workspace / "eval" / "reports").exists() or not list((workspace / "eval" / "reports").iterdir())


def test_missing_corpus_is_skipped_with_instructions(workspace, capsys):
    (workspace / "data" / "derived" / "test.paragraphs.jsonl").unlink()
    out = workspace / "out"
    rc = run(["--sets-dir", str(SETS_DIR), "--shared", str(workspace / "shared"),
              "--output", str(out / "r.json"), "--summary", str(out / "s.md"), "--no-plots"])
    assert rc == 0
    report = json.loads((out / "r.json").read_text())
    # the article sets read the shared BBC file, not the built corpus
    assert {s["name"] for s in report["sets"]} == {"seed-dev.v1", "seed-dev.v1/originals", "tortured-phrases.v1",
                                                   "bbc-articles.v1/clean"}
    assert any("python data/build_corpus.py" in n for n in report["notes"])
    assert "python data/build_corpus.py" in capsys.readouterr().err


def test_no_bundle_reports_baselines_only(workspace, monkeypatch):
    from degarble.bundle import BundleError

    def no_bundle(path=None, precision=None):
        raise BundleError("no bundle found: pass --model, set DEGARBLE_MODEL, or install the default")

    monkeypatch.setattr(degarble, "load", no_bundle)
    out = workspace / "out"
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), "--shared", str(workspace / "shared"),
                "--output", str(out / "r.json"), "--summary", str(out / "s.md"), "--no-plots"]) == 0
    report = json.loads((out / "r.json").read_text())
    assert [s["name"] for s in report["systems"]] == ["do-nothing", "fgws"]
    assert "baselines only" in report["notes"][0]
    assert "baselines only" in (out / "s.md").read_text()


def test_explicit_model_that_does_not_load_is_an_error(workspace, monkeypatch):
    def no_bundle(path=None, precision=None):
        raise OSError(f"{path} not found")

    monkeypatch.setattr(degarble, "load", no_bundle)
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), "--model", "nowhere"]) == 2


def test_detector_only_model(workspace, monkeypatch):
    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: DetectorOnly())
    out = workspace / "out"
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), "--shared", str(workspace / "shared"),
                "--output", str(out / "r.json"), "--summary", str(out / "s.md"), "--no-plots"]) == 0
    report = json.loads((out / "r.json").read_text())
    r = result(report, "seed-dev.v1", "fake-det")
    assert "restoration" not in r and r["detection"]["recall"] == 1.0
    assert report["systems"][0]["restores"] is False


class GreedyFake(FakeModel):
    """Restores as FakeModel; with ``greedy=True`` (no candidate ranking, here) it restores nothing."""

    def __init__(self):
        self.greedy_calls: list[bool] = []

    def restore(self, texts, greedy=False):
        self.greedy_calls.append(greedy)
        return [Restoration(t, []) for t in texts] if greedy else super().restore(texts)


def test_greedy_mode_is_evaluated_and_recorded(workspace, monkeypatch):
    model = GreedyFake()
    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: model)
    out = workspace / "out"
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), "--shared", str(workspace / "shared"), "--greedy",
                "--output", str(out / "r.json"), "--summary", str(out / "s.md"), "--no-plots"]) == 0
    report = json.loads((out / "r.json").read_text())
    assert [(s["name"], s["greedy"]) for s in report["systems"]] == [("fake", True), ("do-nothing", False),
                                                                      ("fgws", False)]
    assert model.greedy_calls and all(model.greedy_calls)
    assert result(report, "seed-dev.v1", "fake")["restoration"]["edit"]["recall"] == 0.0  # the greedy outputs
    assert "`fake` @deadbeef0123 (threshold 0.5, int8, greedy)" in (out / "s.md").read_text()


class AltFake(FakeModel):
    """Restores as FakeModel; with ``alternatives=k`` each edit also offers k copies of the span
    spelled backwards (never right)."""

    def __init__(self):
        self.asked: list[int] = []

    def restore(self, texts, alternatives=0):
        self.asked.append(alternatives)
        out = []
        for r in super().restore(texts):
            edits = [Edit(e.start, e.end, e.before, e.after, 0.9,
                          alternatives=tuple(Edit(e.start, e.end, e.before, e.before[::-1] + str(k), 0.1)
                                             for k in range(alternatives))) for e in r.edits]
            out.append(Restoration(r.text, edits))
        return out


def test_alternatives_are_scored_and_recorded(workspace, monkeypatch, capsys):
    model = AltFake()
    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: model)
    out = workspace / "out"
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), "--shared", str(workspace / "shared"),
                "--alternatives", "2", "--output", str(out / "r.json"), "--summary", str(out / "s.md"),
                "--no-plots"]) == 0
    report = json.loads((out / "r.json").read_text())
    assert [(s["name"], s["alternatives"]) for s in report["systems"]] == [("fake", 2), ("do-nothing", 0), ("fgws", 0)]
    assert model.asked and set(model.asked) == {2}
    sug = result(report, "seed-dev.v1", "fake")["restoration"]["suggestions"]
    assert sug["chosen"] == sug["in_suggestions"] == sug["gold"] > 0 and sug["rescued"] == 0
    assert sug["edits_with_alternatives"] == sug["edits"] > 0
    assert "suggestions" not in result(report, "seed-dev.v1", "do-nothing").get("restoration", {})
    assert "**Alternatives**" in (out / "s.md").read_text()
    # FakeModel.restore has no alternatives option; --greedy skips the ranking they come from
    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: FakeModel())
    capsys.readouterr()
    shared = ["--shared", str(workspace / "shared")]
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), *shared, "--alternatives", "2", "--no-plots"]) == 2
    assert "cannot suggest alternatives" in capsys.readouterr().err
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), *shared, "--alternatives", "2", "--greedy"]) == 2
    assert "which --greedy skips" in capsys.readouterr().err


class ThresholdFake(FakeModel):
    """Restores as FakeModel, remembering the min_score it was asked for."""

    def __init__(self):
        self.asked: list = []

    def restore(self, texts, min_score=None):
        self.asked.append(min_score)
        return super().restore(texts)


def test_min_score_reaches_the_model_and_is_recorded(workspace, monkeypatch, capsys):
    model = ThresholdFake()
    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: model)
    out = workspace / "out"
    shared = ["--shared", str(workspace / "shared")]
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), *shared, "--min-score", "0.25",
                "--output", str(out / "r.json"), "--summary", str(out / "s.md"), "--no-plots"]) == 0
    report = json.loads((out / "r.json").read_text())
    assert [(s["name"], s["min_score"]) for s in report["systems"]] == [("fake", 0.25), ("do-nothing", None),
                                                                       ("fgws", None)]
    assert model.asked and set(model.asked) == {0.25}
    assert "min_score 0.25" in (out / "s.md").read_text()
    capsys.readouterr()
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), *shared, "--min-score", "1.5"]) == 2
    assert "--min-score must be between 0 and 1" in capsys.readouterr().err
    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: FakeModel())
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), *shared, "--min-score", "0.2"]) == 2
    assert "has no min_score option" in capsys.readouterr().err


class GateFake(FakeModel):
    """FakeModel that judges at the threshold it is given, remembering the thresholds asked."""

    def __init__(self):
        self.asked: list = []

    def detect(self, texts, threshold=None):
        self.asked.append(("detect", threshold))
        thr = self.threshold if threshold is None else threshold
        return [dataclasses.replace(d, is_spun=d.spun_score >= thr) for d in super().detect(texts)]

    def restore(self, texts, threshold=None):
        self.asked.append(("restore", threshold))
        return super().restore(texts)


def test_threshold_reaches_detect_and_restore_and_is_recorded(workspace, monkeypatch, capsys):
    model = GateFake()
    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: model)
    out = workspace / "out"
    shared = ["--shared", str(workspace / "shared")]
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), *shared, "--threshold", "0.9",
                "--output", str(out / "r.json"), "--no-plots"]) == 0
    report = json.loads((out / "r.json").read_text())
    assert [(s["name"], s["threshold"]) for s in report["systems"]][0] == ("fake", 0.9)
    assert set(model.asked) == {("detect", 0.9), ("restore", 0.9)}
    spun = next(r for r in report["results"] if r["system"] == "fake" and r["set"] == "seed-dev.v1")
    assert spun["detection"]["threshold"] == 0.9
    assert "threshold 0.9" in (out / "r.md").read_text()
    capsys.readouterr()
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), *shared, "--threshold", "-1"]) == 2
    assert "--threshold must be between 0 and 1" in capsys.readouterr().err
    monkeypatch.setattr(degarble, "load", lambda path=None, precision=None: FakeModel())
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), *shared, "--threshold", "0.2"]) == 2
    assert "has no threshold option" in capsys.readouterr().err


def test_greedy_with_a_model_that_cannot_is_an_error(workspace, capsys):
    # FakeModel.restore takes no greedy option
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), "--shared", str(workspace / "shared"),
                "--greedy", "--no-plots", "--output", str(workspace / "r.json")]) == 2
    assert "--greedy: this model's restore() has no greedy option" in capsys.readouterr().err
    assert not (workspace / "r.json").exists()


def test_unknown_set_name(workspace, capsys):
    assert run(["--sets", "nope", "--sets-dir", str(SETS_DIR)]) == 2
    assert "unknown set(s) nope" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# user files


def test_pairs_with_bad_lines(workspace, capsys):
    pairs = workspace / "pairs.jsonl"
    pairs.write_text(
        '{"id": "a", "spun": "He mentioned the battle.", "original": "He said the war."}\n'
        "{not json\n"
        '{"id": "c", "spun": "He mentioned it."}\n'
        '{"id": "d", "spun": 5, "original": "x"}\n'
        '{"id": "e", "spun": "She told them.", "original": "She told them."}\n'
        '{"id": "f", "spun": "", "original": ""}\n',
        encoding="utf-8",
    )
    clean = workspace / "clean.jsonl"
    clean.write_text('{"text": "The minister said the war was over."}\n[1, 2]\n', encoding="utf-8")
    out = workspace / "r.json"
    rc = run(["--pairs", str(pairs), "--clean", str(clean), "--output", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "line 2: invalid JSON" in err
    assert 'line 3 (id=c): missing "original" field' in err
    assert 'line 4 (id=d): "spun" must be a string, got a number' in err
    assert "line 6 (id=f)" in err and "is empty" in err
    assert "clean.jsonl: line 2: expected a JSON object, got an array" in err
    report = json.loads(out.read_text())
    assert report["skipped_lines"] == 5
    pairs_set = next(s for s in report["sets"] if s["kind"] == "spun")
    assert pairs_set["n"] == 2 and pairs_set["skipped_lines"] == 4 and pairs_set["negatives"] == "clean:clean.jsonl"
    r = result(report, "pairs:pairs.jsonl", "fake")
    assert r["detection"]["n"] == 3  # 2 pairs (one unchanged) + 1 clean
    assert r["restoration"]["edit"]["f"] == 1.0
    assert r["signature"].startswith("degarble-eval|set:pairs:pairs.jsonl|spin:unknown|")


def test_pairs_report_to_stdout(workspace, capsys):
    pairs = workspace / "pairs.jsonl"
    pairs.write_text('{"spun": "He mentioned it.", "original": "He said it."}\n', encoding="utf-8")
    assert run(["--pairs", str(pairs)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert result(report, "pairs:pairs.jsonl", "fake")["restoration"]["exact_match"] == 1.0
    assert not (workspace / "eval" / "reports").exists()


def test_usage_errors(workspace):
    assert run(["--pairs", str(workspace / "missing.jsonl")]) == 2
    assert run(["--clean", str(workspace / "x.jsonl")]) == 2
    assert run(["--sets", "seed-dev", "--sets-dir", str(SETS_DIR), "--limit", "0"]) == 2


# --------------------------------------------------------------------------------------------------
# pieces


def test_select_is_seeded_disjoint_and_order_free():
    items = [(f"id{i}", "one two three four five") for i in range(50)] + [("short", "one two")]
    a = evaluate._select(items, {"seed": 7, "start": 0, "count": 20, "min_words": 3}, None)
    b = evaluate._select(items, {"seed": 7, "start": 20, "count": 20, "min_words": 3}, None)
    assert len(a) == len(b) == 20 and not {i for i, _ in a} & {i for i, _ in b}
    assert evaluate._select(list(reversed(items)), {"seed": 7, "count": 20, "min_words": 3}, None) == a
    assert evaluate._select(items, {"seed": 7, "count": 20, "min_words": 3}, 5) == a[:5]
    assert "short" not in {i for i, _ in evaluate._select(items, {"min_words": 3}, None)}


def test_set_definitions_in_repo():
    defs = evaluate.read_set_definitions(SETS_DIR)
    assert {d["kind"] for d in defs.values()} == {"spin", "clean", "pairs"}
    assert defs["bbc-spun"]["negatives"] == defs["bbc-clean"]["name"]


def test_markdown_marks_undefined_precision():
    report, _ = evaluate.evaluate(
        [DoNothing()],
        [evaluate.EvalSet("x", "spun", ["a"], ["He mentioned it."], ["He said it."], {"spin": "real"})],
        quiet=True,
    )
    md = evaluate.markdown_summary(report)
    # nothing predicted: precision is shown as a dash, AUROC is undefined with one class
    assert "| x | do-nothing | – | – | 0.0 | 0.0 | 0.0 | – | 0.0 | 0.0 |" in md
    assert report["results"][0]["detection"]["auroc"] is None


@pytest.mark.skipif(not (REAL_SHARED / "dev" / "seed_dev.jsonl").exists(), reason="shared/ not present")
def test_real_dev_article_through_the_harness():
    sets, notes = evaluate.load_named_sets(["seed-dev"], SETS_DIR, REPO, None, None, log=lambda m: None)
    # the originals it is scored against come along, clean sets first
    assert notes == [] and [s.name for s in sets] == ["seed-dev.v1/originals", "seed-dev.v1"]
    assert len(sets[1].texts) == 30
    report, _ = evaluate.evaluate([DoNothing()], sets, quiet=True)
    dev = next(x for x in report["results"] if x["set"] == "seed-dev.v1")
    assert dev["detection"]["negatives"] == "seed-dev.v1/originals"
    r = dev["restoration"]
    assert 100 * r["wer_spun"] == pytest.approx(31.2, abs=0.5)
    assert r["bleu"]["score"] == pytest.approx(44.0, abs=0.5)
    assert r["chrf"]["score"] == pytest.approx(66.2, abs=0.5)


def test_headline_table_and_readme_update(tmp_path):
    from degarble.evaluate import README_BEGIN, README_END, SetError, headline_table, update_readme

    res = lambda s, sysname, **kw: {"set": s, "system": sysname, "signature": f"degarble-eval|set:{s}|model:{sysname}", **kw}  # noqa: E731
    report = {
        "degarble_version": "0.1.0", "run": {"created": "T"},
        "systems": [{"name": "m", "kind": "model"}],
        "results": [
            res("bbc-test.v1/a.v1/medium", "m", token={"f": 0.9}, detection={"auroc": 0.99}),
            res("bbc-test.v1/b.v1/medium", "m", token={"f": 0.8}, detection={"auroc": 0.97}),
            res("bbc-test.v1/clean", "m", detection={"flagged_share": 0.02}),
            res("seed-dev.v1", "m", detection={"recall": 0.9}, token={"f": 0.7},
                restoration={"wer_spun": 0.316, "wer_restored": 0.15, "edit": {"f": 0.5}}),
            res("seed-dev.v1/originals", "m", n=30, detection={"fp": 1}),
        ],
    }
    table = headline_table(report)
    row = [line for line in table.splitlines() if line.startswith("| m |")][0]
    # mean over the two profiles: F1 85.0, AUROC 98.0; clean 2.0; dev 90.0, 1/30, 70.0, WER 31.6 -> 15.0
    assert row == "| m | 85.0 | 98.0 | 2.0 | 90.0 | 1/30 | 70.0 | 31.6 → 15.0 | – |"
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\nold\n{README_END}\nrest\n")
    update_readme(readme, table)
    text = readme.read_text()
    assert "old" not in text and row in text and text.startswith("intro\n") and text.endswith("rest\n")
    (tmp_path / "bare.md").write_text("no markers")
    with pytest.raises(SetError, match="markers"):
        update_readme(tmp_path / "bare.md", table)
