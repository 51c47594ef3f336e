"""Model bundle: save -> read round trip, hash checks, overwrite refusal, manifest validation, resolve order.

The parts here are stand-in save_pretrained folders (a config.json and a few bytes of
"safetensors"): bundle.py copies and hashes files and never loads weights, so no model is needed.
"""

from __future__ import annotations

import json

import pytest

from degarble import __version__, bundle
from degarble.bundle import (
    FORMAT,
    MANIFEST_NAME,
    BundleError,
    Manifest,
    bundle_hash,
    read_manifest,
    resolve_bundle_path,
    save_bundle,
    verify,
)


def _part(path, weights: bytes = b"\x00weights", extra: dict | None = None):
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "stub"}')
    (path / "model.safetensors").write_bytes(weights)
    (path / "tokenizer.json").write_text("{}")
    for name, content in (extra or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(content)
    return path


def _manifest(**over) -> dict:
    m = {
        "name": "en-test",
        "detector": {"threshold": 0.42, "max_length": 256, "stride": 64},
        "restorer": {"max_length": 128, "num_beams": 4},
        "spin_signature": "spin:synonym-swap.v1|rate:0.20|seed:13",
        "train_config": {"lr": 3e-5, "seed": 13},
        "scores": {"dev": {"f1": 0.9}},
        "data_manifest_sha256": "ab" * 32,
    }
    m.update(over)
    return m


@pytest.fixture
def parts(tmp_path):
    return {
        "detector": _part(tmp_path / "src" / "det"),
        "restorer": _part(tmp_path / "src" / "res", b"\x01r"),
    }


@pytest.fixture
def saved(tmp_path, parts):
    return save_bundle(tmp_path / "bundle", _manifest(), parts, readme="# en-test\n")


def test_save_read_round_trip(tmp_path, saved):
    out = tmp_path / "bundle"
    assert (out / MANIFEST_NAME).is_file() and (out / "README.md").read_text() == "# en-test\n"
    m = read_manifest(out)
    assert m == saved
    assert m.root == out.resolve()
    assert m.format == FORMAT and m.degarble_version == __version__ and m.name == "en-test"
    assert m.detector == {"dir": "detector", "threshold": 0.42, "max_length": 256, "stride": 64}
    assert m.threshold == 0.42
    assert m.restorer["dir"] == "restorer" and m.has_restorer and m.parts() == ["detector", "restorer"]
    assert m.part_dir("detector") == out.resolve() / "detector"
    assert m.extra == {"data_manifest_sha256": "ab" * 32}  # unknown keys kept
    assert set(m.files_sha256) == {
        "README.md",
        "detector/config.json",
        "detector/model.safetensors",
        "detector/tokenizer.json",
        "restorer/config.json",
        "restorer/model.safetensors",
        "restorer/tokenizer.json",
    }
    assert (out / "restorer" / "model.safetensors").read_bytes() == b"\x01r"
    # reading the manifest file directly works too, and to_dict writes back what was read
    assert read_manifest(out / MANIFEST_NAME) == m
    on_disk = json.loads((out / MANIFEST_NAME).read_text())
    assert m.to_dict() == on_disk
    assert list(on_disk)[:3] == ["format", "degarble_version", "name"]
    assert verify(out, strict=True) == m


def test_detector_only_bundle(tmp_path, parts):
    m = save_bundle(tmp_path / "b", _manifest(restorer=None), {"detector": parts["detector"]})
    assert m.restorer is None and not m.has_restorer and m.parts() == ["detector"]
    with pytest.raises(BundleError, match="no 'restorer' section"):
        m.part_dir("restorer")


def test_training_leftovers_are_skipped_and_pickles_refused(tmp_path):
    det = _part(
        tmp_path / "det",
        extra={"training_args.bin": b"pickle", "checkpoint-10/x.safetensors": b"x", ".cache/y": b"y"},
    )
    m = save_bundle(tmp_path / "b", _manifest(restorer=None), {"detector": det})
    assert sorted(m.files_sha256) == [
        "detector/config.json",
        "detector/model.safetensors",
        "detector/tokenizer.json",
    ]
    bad = _part(tmp_path / "bad", extra={"pytorch_model.bin": b"pickle"})
    with pytest.raises(BundleError, match="pickled files"):
        save_bundle(tmp_path / "b2", _manifest(restorer=None), {"detector": bad})
    assert not (tmp_path / "b2").exists()


def test_part_without_config_or_weights(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match=r"no config\.json; no \*\.safetensors"):
        save_bundle(tmp_path / "b", _manifest(restorer=None), {"detector": empty})
    with pytest.raises(BundleError, match="not a folder"):
        save_bundle(tmp_path / "b", _manifest(restorer=None), {"detector": tmp_path / "missing"})
    # nothing half-written is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_parts_and_sections_must_match(tmp_path, parts):
    with pytest.raises(BundleError, match="'restorer' section but no 'restorer' part"):
        save_bundle(tmp_path / "b", _manifest(), {"detector": parts["detector"]})
    with pytest.raises(BundleError, match="needs a 'detector' part"):
        save_bundle(tmp_path / "b", _manifest(detector=None), {"restorer": parts["restorer"]})
    with pytest.raises(BundleError, match="unknown part"):
        save_bundle(tmp_path / "b", _manifest(), {**parts, "tagger": parts["detector"]})


def test_refuses_to_overwrite_without_force(tmp_path, saved, parts):
    out = tmp_path / "bundle"
    with pytest.raises(BundleError, match="already exists.*force"):
        save_bundle(out, _manifest(name="second"), parts)
    assert read_manifest(out).name == "en-test"
    m = save_bundle(out, _manifest(name="second"), parts, force=True)
    assert m.name == "second" and read_manifest(out).name == "second"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp or old folders left


def test_force_never_replaces_a_folder_that_is_not_a_bundle(tmp_path, parts):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(BundleError, match="holds no degarble.json"):
        save_bundle(out, _manifest(), parts, force=True)
    assert (out / "thesis.tex").read_text() == "years of work"


def test_empty_existing_folder_is_fine(tmp_path, parts):
    (tmp_path / "b").mkdir()
    assert save_bundle(tmp_path / "b", _manifest(), parts).name == "en-test"


def test_output_inside_a_part_is_refused(tmp_path, parts):
    with pytest.raises(BundleError, match="inside the output folder"):
        save_bundle(tmp_path / "src", _manifest(), parts, force=True)


def test_verify_detects_changed_and_missing_files(tmp_path, saved):
    out = tmp_path / "bundle"
    (out / "detector" / "model.safetensors").write_bytes(b"tampered")
    (out / "restorer" / "tokenizer.json").unlink()
    with pytest.raises(BundleError) as ei:
        verify(out)
    msg = str(ei.value)
    assert "changed: detector/model.safetensors" in msg and "missing: restorer/tokenizer.json" in msg
    read_manifest(out)  # reading alone does not hash


def test_verify_strict_flags_unlisted_files(tmp_path, saved):
    out = tmp_path / "bundle"
    (out / "detector" / "stray.txt").write_text("?")
    verify(out)
    with pytest.raises(BundleError, match="not in manifest: detector/stray.txt"):
        verify(out, strict=True)


def test_bundle_hash_depends_on_contents_and_settings_only(tmp_path, saved, parts):
    h = bundle_hash(tmp_path / "bundle")
    assert len(h) == 8 and h == saved.hash()
    other = save_bundle(tmp_path / "copy", _manifest(name="renamed", scores={}), parts, readme="# en-test\n")
    assert bundle_hash(other) == h  # same files and settings, other name/folder/scores
    changed = save_bundle(tmp_path / "changed", _manifest(), parts, readme="# different card\n")
    assert bundle_hash(changed) != h
    # a setting that changes the outputs (here the restorer's) changes the identity too
    restorer = {**_manifest()["restorer"], "min_score": 0.35}
    tuned = save_bundle(tmp_path / "tuned", _manifest(restorer=restorer), parts, readme="# en-test\n")
    assert bundle_hash(tuned) != h


def _write_manifest(tmp_path, data) -> object:
    d = tmp_path / "m"
    (d / "detector").mkdir(parents=True, exist_ok=True)
    (d / MANIFEST_NAME).write_text(json.dumps(data) if not isinstance(data, str) else data)
    return d


def _valid() -> dict:
    return {
        "format": FORMAT,
        "degarble_version": __version__,
        "name": "x",
        "detector": {"dir": "detector", "threshold": 0.5},
        "restorer": None,
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"format": "degarble-bundle.v2"},
            "unsupported bundle format 'degarble-bundle.v2'.*reads 'degarble-bundle.v1'.*Upgrade",
        ),
        ({"format": None}, "unsupported bundle format None"),
        ({"degarble_version": "0.0.9"}, "reads bundles from 0.1.0 on"),
        ({"degarble_version": "99.0.0"}, "newer major version"),
        ({"degarble_version": "banana"}, "must be a version string"),
        ({"name": ""}, '"name" must be a non-empty string'),
        ({"detector": None}, '"detector" must be an object'),
        ({"detector": {"dir": "detector", "threshold": 1.5}}, r"threshold\" must be a number in \[0, 1\]"),
        ({"detector": {"dir": "detector"}}, "threshold"),
        ({"detector": {"dir": "../outside", "threshold": 0.5}}, "relative folder inside the bundle"),
        (
            {"detector": {"dir": "detector", "threshold": 0.5, "max_length": 0}},
            'max_length" must be an integer >= 1',
        ),
        (
            {"detector": {"dir": "detector", "threshold": 0.5, "stride": -1}},
            'stride" must be an integer >= 0',
        ),
        (
            {"detector": {"dir": "detector", "threshold": 0.5, "by_precision": {"fp16": {"threshold": 0.4}}}},
            r"by_precision.fp16\": unknown precision",
        ),
        (
            {"detector": {"dir": "detector", "threshold": 0.5, "by_precision": {"int8": {"threshold": 2}}}},
            r"by_precision.int8\".threshold must be a number in \[0, 1\]",
        ),
        (
            {"detector": {"dir": "detector", "threshold": 0.5, "by_precision": {"int8": {"stride": 8}}}},
            "only threshold and word_threshold may differ by precision",
        ),
        ({"detector": {"dir": "detector", "threshold": 0.5, "by_precision": [1]}}, "by_precision\" must be an object"),
        ({"restorer": "restorer"}, '"restorer" must be an object'),
        ({"scores": []}, '"scores" must be dict'),
        ({"files_sha256": {"/etc/passwd": "0" * 64}}, "not a relative path"),
        ({"files_sha256": {"detector/x": "short"}}, "64-character hex"),
    ],
)
def test_manifest_validation_errors(tmp_path, change, message):
    with pytest.raises(BundleError, match=message):
        read_manifest(_write_manifest(tmp_path, {**_valid(), **change}))


def test_detector_settings_take_the_thresholds_calibrated_for_a_precision(tmp_path):
    det = {"dir": "detector", "threshold": 0.6, "word_threshold": 0.35, "stride": 32,
           "by_precision": {"int8": {"threshold": 0.58, "word_threshold": 0.3}}}
    m = read_manifest(_write_manifest(tmp_path, {**_valid(), "detector": det}))
    assert m.detector_settings("int8") == {"dir": "detector", "threshold": 0.58, "word_threshold": 0.3, "stride": 32}
    assert m.detector_settings("fp32") == m.detector_settings("bf16") == {
        "dir": "detector", "threshold": 0.6, "word_threshold": 0.35, "stride": 32}
    assert m.threshold == 0.6  # the main threshold, as before
    assert read_manifest(_write_manifest(tmp_path, _valid())).detector_settings("int8")["threshold"] == 0.5


def test_manifest_lists_every_problem_at_once(tmp_path):
    with pytest.raises(BundleError) as ei:
        read_manifest(_write_manifest(tmp_path, {**_valid(), "name": 3, "detector": {"threshold": 2}}))
    msg = str(ei.value)
    assert '"name"' in msg and '"detector.dir"' in msg and '"detector.threshold"' in msg


def test_manifest_not_json_or_missing(tmp_path):
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(_write_manifest(tmp_path, "{nope"))
    with pytest.raises(BundleError, match="degarble.json.*not found; expected a folder with degarble.json"):
        read_manifest(tmp_path / "nothing")


def test_missing_part_folder(tmp_path):
    d = _write_manifest(tmp_path, {**_valid(), "restorer": {"dir": "restorer"}})
    with pytest.raises(BundleError, match=r"part folder\(s\) missing: restorer"):
        read_manifest(d)


def test_compatible_versions_are_accepted(tmp_path):
    for v in ("0.1.0", "0.1", "0.9.3rc1+g123"):
        assert (
            read_manifest(_write_manifest(tmp_path, {**_valid(), "degarble_version": v})).degarble_version
            == v
        )


def test_manifest_from_dict_rejects_non_objects():
    with pytest.raises(BundleError, match="expected a JSON object"):
        Manifest.from_dict([1, 2])


# --- resolve order: explicit path -> $DEGARBLE_MODEL -> packaged default -> error naming all three


@pytest.fixture
def no_default(monkeypatch, tmp_path):
    monkeypatch.delenv("DEGARBLE_MODEL", raising=False)
    monkeypatch.setattr(bundle, "DEFAULT_BUNDLE_DIR", tmp_path / "no-default")


def test_resolve_explicit_path_wins(tmp_path, saved, no_default, monkeypatch):
    monkeypatch.setenv("DEGARBLE_MODEL", str(tmp_path / "elsewhere"))
    assert resolve_bundle_path(tmp_path / "bundle") == tmp_path / "bundle"
    assert resolve_bundle_path(str(tmp_path / "bundle" / MANIFEST_NAME)) == tmp_path / "bundle"
    with pytest.raises(BundleError, match="given explicitly"):
        resolve_bundle_path(tmp_path / "missing")


def test_resolve_env_var_then_default(tmp_path, saved, no_default, monkeypatch):
    monkeypatch.setenv("DEGARBLE_MODEL", str(tmp_path / "bundle"))
    assert resolve_bundle_path() == tmp_path / "bundle"
    monkeypatch.setenv("DEGARBLE_MODEL", str(tmp_path / "missing"))
    with pytest.raises(BundleError, match=r"from \$DEGARBLE_MODEL"):
        resolve_bundle_path()
    monkeypatch.setenv("DEGARBLE_MODEL", "")  # empty means unset
    monkeypatch.setattr(bundle, "DEFAULT_BUNDLE_DIR", tmp_path / "bundle")
    assert resolve_bundle_path() == tmp_path / "bundle"


def test_resolve_error_names_all_options(no_default):
    with pytest.raises(BundleError) as ei:
        resolve_bundle_path()
    msg = str(ei.value)
    assert (
        "--model" in msg
        and "DEGARBLE_MODEL" in msg
        and "no-default" in msg
        and "Nothing is downloaded" in msg
    )


def test_default_bundle_location_is_inside_the_package():
    import degarble

    assert (
        bundle.DEFAULT_BUNDLE_DIR.parent.parent
        == __import__("pathlib").Path(degarble.__file__).resolve().parent
    )


def test_loading_shows_no_progress_bar_and_keeps_the_callers_setting(tiny_full_bundle, capfd):
    """Loading a bundle's models prints no "Loading weights" bar, and leaves transformers'
    progress-bar setting as the caller had it."""
    from transformers.utils import logging

    from degarble.bundle import read_manifest
    from degarble.models.detector import Detector
    from degarble.models.restorer import Restorer

    m = read_manifest(tiny_full_bundle)
    for enabled in (True, False):
        (logging.enable_progress_bar if enabled else logging.disable_progress_bar)()
        Detector.from_dir(m.part_dir("detector"))
        Restorer.from_dir(m.part_dir("restorer"))
        assert logging.is_progress_bar_enabled() == enabled
    logging.enable_progress_bar()
    assert "Loading weights" not in capfd.readouterr().err
