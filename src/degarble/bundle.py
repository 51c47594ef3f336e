"""The model bundle: one self-contained folder holding everything inference needs.

Layout (see DESIGN.md, "Model bundle")::

    <bundle>/
      degarble.json     # the manifest, below
      README.md         # optional model card
      detector/         # save_pretrained() folder: config.json, *.safetensors, tokenizer files
      restorer/         # the same for the seq2seq restorer (optional: a bundle may be detector-only)

The manifest ``degarble.json``::

    {
      "format": "degarble-bundle.v1",
      "degarble_version": "0.1.0",
      "name": "en-small",
      "detector": {"dir": "detector", "threshold": 0.5, "max_length": 256, "stride": 64, ...},
      "restorer": {"dir": "restorer", "max_length": 256, ...} | null,
      "spin_signature": "spin:synonym-swap.v1|...",
      "train_config": {...},
      "scores": {...},
      "files_sha256": {"detector/model.safetensors": "…", ...}
    }

Inference settings (threshold, lengths, prompts) travel in the manifest so that a loaded bundle
behaves like the evaluated one with no flags. ``detector.by_precision`` may hold thresholds
calibrated for one precision, ``{"int8": {"threshold": 0.59, "word_threshold": 0.3}}``
(:meth:`Manifest.detector_settings`): int8 shifts the scores, bf16 and fp32 share the main ones.
Unknown keys are kept (``Manifest.extra``) and written back unchanged, so a newer training script
can add fields without breaking older readers.

Loading is always offline: code that builds models from a bundle passes ``local_files_only=True``
to ``from_pretrained``; nothing here or there contacts a model hub. The bundle to use is found by
:func:`resolve_bundle_path`: an explicit path, else ``$DEGARBLE_MODEL``, else the default bundle
shipped inside the package (``degarble/models/default/``), so a fresh install works offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ._version import __version__
from .models.precision import RESOLVED

FORMAT = "degarble-bundle.v1"
#: Bundle formats this version of degarble can read.
SUPPORTED_FORMATS = (FORMAT,)
MANIFEST_NAME = "degarble.json"
ENV_VAR = "DEGARBLE_MODEL"
#: The bundle shipped inside the package (may be absent in a development checkout).
DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parent / "models" / "default"
#: Oldest degarble version whose bundles this version still reads.
MIN_BUNDLE_VERSION = (0, 1, 0)
#: Sections of the manifest that name a model folder; "detector" is required.
PART_SECTIONS = ("detector", "restorer")

# Files a training run leaves in an output folder that do not belong in a bundle (pickled
# optimizer and trainer state). They are skipped when copying a part.
_SKIP_FILES = {
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "trainer_state.json",
}
_SKIP_PREFIXES = ("rng_state", "checkpoint-", ".")
# Pickled weights: a bundle carries safetensors only (loading a pickle can run code).
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

_LAYOUT_HELP = (
    "expected a folder with degarble.json (the manifest), detector/ and optionally restorer/ "
    "(save_pretrained folders with config.json and *.safetensors)"
)


class BundleError(Exception):
    """A model bundle is missing, malformed, tampered with, or would be overwritten."""


@dataclass
class Manifest:
    """The parsed ``degarble.json``. ``root`` is the bundle folder it was read from (if any).

    ``detector`` and ``restorer`` are the raw sections (dicts with at least ``"dir"``); use
    :meth:`part_dir` for their absolute folders. ``extra`` keeps keys this version does not know.
    """

    name: str
    detector: dict
    restorer: dict | None = None
    format: str = FORMAT
    degarble_version: str = __version__
    spin_signature: str = ""
    train_config: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    files_sha256: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    root: Path | None = field(default=None, compare=False)

    # the order keys are written in; anything in ``extra`` follows
    _KEYS = (
        "format",
        "degarble_version",
        "name",
        "detector",
        "restorer",
        "spin_signature",
        "train_config",
        "scores",
        "files_sha256",
    )

    @property
    def threshold(self) -> float:
        """The detector's calibrated decision threshold on ``spun_score``."""
        return float(self.detector["threshold"])

    def detector_settings(self, precision: str) -> dict:
        """The detector section with the thresholds calibrated for ``precision`` (``fp32``,
        ``bf16``, ``int8``) in place of the main ones, where ``by_precision`` has them."""
        own = (self.detector.get("by_precision") or {}).get(precision) or {}
        return {k: v for k, v in {**self.detector, **own}.items() if k != "by_precision"}

    @property
    def has_restorer(self) -> bool:
        return self.restorer is not None

    def part_dir(self, section: str) -> Path:
        """Absolute folder of ``"detector"`` or ``"restorer"`` (needs ``root``)."""
        part = getattr(self, section, None) if section in PART_SECTIONS else None
        if part is None:
            raise BundleError(
                f"bundle {self.name!r} has no {section!r} section; it has: {', '.join(self.parts())}"
            )
        if self.root is None:
            raise BundleError("manifest was not read from a folder, so its parts have no location")
        return self.root / part["dir"]

    def parts(self) -> list[str]:
        """The model sections present: ``["detector"]`` or ``["detector", "restorer"]``."""
        return [s for s in PART_SECTIONS if getattr(self, s) is not None]

    def hash(self) -> str:
        """Short identity of the bundle's contents and settings; see :func:`bundle_hash`."""
        return _contents_hash(self.files_sha256, {s: getattr(self, s) for s in PART_SECTIONS})

    def to_dict(self) -> dict:
        d: dict[str, Any] = {k: getattr(self, k) for k in self._KEYS}
        d["files_sha256"] = dict(sorted(self.files_sha256.items()))
        for k, v in self.extra.items():
            d.setdefault(k, v)
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> Manifest:
        """Validate a manifest dict; raise :class:`BundleError` listing every problem found."""
        if not isinstance(data, dict):
            raise BundleError(f"{source}: expected a JSON object, got {type(data).__name__}")
        problems: list[str] = []
        fmt = data.get("format")
        if fmt not in SUPPORTED_FORMATS:
            raise BundleError(
                f"{source}: unsupported bundle format {fmt!r}; this degarble ({__version__}) reads "
                f"{', '.join(repr(f) for f in SUPPORTED_FORMATS)}"
                + (
                    ". Upgrade degarble to read newer bundles."
                    if isinstance(fmt, str) and fmt > FORMAT
                    else ""
                )
            )
        version = data.get("degarble_version")
        if not isinstance(version, str) or _parse_version(version) is None:
            problems.append(f'"degarble_version" must be a version string like "0.1.0", got {version!r}')
        else:
            problems += _version_problems(version)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f'"name" must be a non-empty string, got {name!r}')
        detector = data.get("detector")
        if not isinstance(detector, dict):
            problems.append('"detector" must be an object like {"dir": "detector", "threshold": 0.5, ...}')
        else:
            problems += _section_problems("detector", detector)
            t = detector.get("threshold")
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
                problems.append(f'"detector.threshold" must be a number in [0, 1], got {t!r}')
            problems += _by_precision_problems(detector.get("by_precision"))
        restorer = data.get("restorer")
        if restorer is not None:
            if not isinstance(restorer, dict):
                problems.append('"restorer" must be an object like {"dir": "restorer", ...} or null')
            else:
                problems += _section_problems("restorer", restorer)
        for key, typ, example in (
            ("spin_signature", str, '"spin:synonym-swap.v1|..."'),
            ("train_config", dict, "{...}"),
            ("scores", dict, "{...}"),
            ("files_sha256", dict, '{"detector/model.safetensors": "<sha256>"}'),
        ):
            if key in data and not isinstance(data[key], typ):
                problems.append(
                    f'"{key}" must be {typ.__name__} like {example}, got {type(data[key]).__name__}'
                )
        hashes = data.get("files_sha256", {})
        if isinstance(hashes, dict):
            for rel, digest in hashes.items():
                if not _safe_relpath(rel):
                    problems.append(
                        f'"files_sha256" lists {rel!r}, which is not a relative path inside the bundle'
                    )
                if not (isinstance(digest, str) and len(digest) == 64):
                    problems.append(f'"files_sha256[{rel!r}]" must be a 64-character hex sha256')
        if problems:
            raise BundleError(f"{source}: invalid manifest:\n  - " + "\n  - ".join(problems))
        return cls(
            format=fmt,
            degarble_version=version,
            name=name,
            detector=dict(detector),
            restorer=dict(restorer) if restorer is not None else None,
            spin_signature=data.get("spin_signature", ""),
            train_config=data.get("train_config", {}),
            scores=data.get("scores", {}),
            files_sha256=dict(data.get("files_sha256", {})),
            extra={k: v for k, v in data.items() if k not in cls._KEYS},
        )


def _section_problems(section: str, part: dict) -> list[str]:
    problems = []
    d = part.get("dir")
    if not isinstance(d, str) or not _safe_relpath(d):
        problems.append(
            f'"{section}.dir" must be a relative folder inside the bundle (e.g. "{section}"), got {d!r}'
        )
    for key, minimum in (("max_length", 1), ("stride", 0)):
        if key in part:
            v = part[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                problems.append(f'"{section}.{key}" must be an integer >= {minimum}, got {v!r}')
    return problems


def _by_precision_problems(by: Any) -> list[str]:
    """What is wrong with a ``detector.by_precision`` object (``None`` is fine: there is none)."""
    if by is None:
        return []
    if not isinstance(by, dict):
        return [f'"detector.by_precision" must be an object like {{"int8": {{"threshold": 0.59}}}}, got {by!r}']
    problems = []
    for prec, settings in by.items():
        where = f'"detector.by_precision.{prec}"'
        if prec not in RESOLVED:
            problems.append(f"{where}: unknown precision; known: {', '.join(RESOLVED)}")
        elif not isinstance(settings, dict):
            problems.append(f"{where} must be an object of thresholds, got {settings!r}")
        else:
            for key, v in settings.items():
                if key not in ("threshold", "word_threshold"):
                    problems.append(f"{where}.{key}: only threshold and word_threshold may differ by precision")
                elif isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                    problems.append(f"{where}.{key} must be a number in [0, 1], got {v!r}")
    return problems


def _safe_relpath(rel: Any) -> bool:
    if not isinstance(rel, str) or not rel or "\\" in rel:
        return False
    p = PurePosixPath(rel)
    return not p.is_absolute() and ".." not in p.parts


def _parse_version(v: str) -> tuple[int, int, int] | None:
    """``"0.1.0"`` -> ``(0, 1, 0)``; pre-release and local tags (``0.2.0rc1+g1234``) are ignored."""
    m = re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?", v.strip())
    if not m:
        return None
    return tuple(int(g or 0) for g in m.groups())  # type: ignore[return-value]


def _version_problems(version: str) -> list[str]:
    bundle_v = _parse_version(version)
    ours = _parse_version(__version__) or (0, 0, 0)
    assert bundle_v is not None
    if bundle_v < MIN_BUNDLE_VERSION:
        oldest = ".".join(map(str, MIN_BUNDLE_VERSION))
        return [
            f"bundle was made by degarble {version}; this degarble ({__version__}) reads bundles from {oldest} on"
        ]
    if bundle_v[0] > ours[0]:
        return [
            f"bundle was made by degarble {version}, a newer major version than this one ({__version__}); upgrade degarble"
        ]
    return []


# --------------------------------------------------------------------------------------------
# reading and checking


def _manifest_path(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if p.is_dir() or p.suffix.lower() != ".json":
        return p / MANIFEST_NAME
    return p


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate the manifest of the bundle at ``path`` (the folder or its ``degarble.json``).

    Checks the format name, the degarble version range and the field types, and that each part's
    folder exists. Does not hash the files (see :func:`verify`).
    """
    mpath = _manifest_path(path)
    if not mpath.is_file():
        raise BundleError(f"no bundle at {path}: {mpath} not found; {_LAYOUT_HELP}")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{mpath}: not valid JSON ({e})") from e
    manifest = Manifest.from_dict(data, source=str(mpath))
    manifest.root = mpath.parent.resolve()
    missing = [s for s in manifest.parts() if not manifest.part_dir(s).is_dir()]
    if missing:
        raise BundleError(
            f"{mpath}: part folder(s) missing: "
            + ", ".join(f"{s} ({manifest.part_dir(s)})" for s in missing)
            + f"; {_LAYOUT_HELP}"
        )
    return manifest


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: str | os.PathLike, strict: bool = False) -> Manifest:
    """Read the manifest and check every file against ``files_sha256``.

    Raises :class:`BundleError` listing each missing or changed file. With ``strict=True``, files
    inside the part folders that the manifest does not list are errors too. Returns the manifest.
    """
    manifest = read_manifest(path)
    root = manifest.root
    assert root is not None
    if not manifest.files_sha256:
        raise BundleError(f"{root}: manifest lists no files_sha256, so the bundle cannot be verified")
    problems = []
    for rel, expected in sorted(manifest.files_sha256.items()):
        f = root / rel
        if not f.is_file():
            problems.append(f"missing: {rel}")
        elif sha256_file(f) != expected.lower():
            problems.append(f"changed: {rel} (sha256 differs from the manifest)")
    if strict:
        for section in manifest.parts():
            for f in sorted(manifest.part_dir(section).rglob("*")):
                rel = f.relative_to(root).as_posix()
                if f.is_file() and rel not in manifest.files_sha256:
                    problems.append(f"not in manifest: {rel}")
    if problems:
        raise BundleError(f"bundle {root} failed verification:\n  - " + "\n  - ".join(problems))
    return manifest


def _contents_hash(files_sha256: dict[str, str], settings: dict) -> str:
    canon = json.dumps({"files": files_sha256, "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:8]


def bundle_hash(path_or_manifest: str | os.PathLike | Manifest) -> str:
    """Short (8 hex) identity of a bundle: the sha256 of its ``files_sha256`` table and of the
    manifest's ``detector`` and ``restorer`` sections (thresholds, ``min_score``, ``rank``, the
    corpus-evidence weights: the settings that change what the bundle outputs).

    Two bundles with the same files and settings have the same hash whatever their folder or
    name; it is the ``model:<name>@<hash>`` part of evaluation signatures.
    """
    m = path_or_manifest if isinstance(path_or_manifest, Manifest) else read_manifest(path_or_manifest)
    return m.hash()


def resolve_bundle_path(path: str | os.PathLike | None = None) -> Path:
    """Find the bundle to load, in this order:

    1. ``path``, when given;
    2. the ``DEGARBLE_MODEL`` environment variable, when set and not empty;
    3. the default bundle shipped in the package, ``degarble/models/default/``.

    Returns the bundle folder. Raises :class:`BundleError` naming all three options when nothing
    is found; nothing is ever downloaded.
    """
    if path is not None and str(path) != "":
        p = Path(path).expanduser()
        if not _manifest_path(p).is_file():
            raise BundleError(f"no bundle at {path} (given explicitly): {_LAYOUT_HELP}")
        return p if p.is_dir() else p.parent
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        p = Path(env).expanduser()
        if not _manifest_path(p).is_file():
            raise BundleError(f"no bundle at {env} (from ${ENV_VAR}): {_LAYOUT_HELP}")
        return p if p.is_dir() else p.parent
    if (DEFAULT_BUNDLE_DIR / MANIFEST_NAME).is_file():
        return DEFAULT_BUNDLE_DIR
    raise BundleError(
        "no model bundle found. Give one in any of these ways:\n"
        "  1. pass a path: degarble.load(PATH) or --model PATH;\n"
        f"  2. set the {ENV_VAR} environment variable to a bundle folder;\n"
        f"  3. install a degarble package that ships the default bundle ({DEFAULT_BUNDLE_DIR}).\n"
        "Nothing is downloaded."
    )


# --------------------------------------------------------------------------------------------
# writing


def _part_files(src: Path) -> list[Path]:
    """Files of a save_pretrained folder worth bundling (training leftovers skipped)."""
    out = []
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if any(part.startswith(_SKIP_PREFIXES) for part in rel.parts):
            continue
        if f.name in _SKIP_FILES or not f.is_file():
            continue
        out.append(f)
    return out


def _check_part(section: str, src: Path) -> list[Path]:
    if not src.is_dir():
        raise BundleError(f"part {section!r}: {src} is not a folder; expected a save_pretrained() folder")
    files = _part_files(src)
    names = {f.relative_to(src).as_posix() for f in files}
    problems = []
    if "config.json" not in names:
        problems.append("no config.json")
    if not any(n.endswith(".safetensors") for n in names):
        problems.append("no *.safetensors weights (save with save_pretrained(..., safe_serialization=True))")
    pickles = sorted(n for n in names if n.lower().endswith(_PICKLE_SUFFIXES))
    if pickles:
        problems.append(f"pickled files {pickles}: bundles hold safetensors only")
    if problems:
        raise BundleError(f"part {section!r} at {src}: " + "; ".join(problems))
    return files


def save_bundle(
    out_dir: str | os.PathLike,
    manifest: dict,
    parts: dict[str, str | os.PathLike],
    force: bool = False,
    readme: str | None = None,
) -> Manifest:
    """Write a bundle to ``out_dir`` and return its manifest.

    :param manifest: the manifest fields (``name``, ``detector``, ``restorer``, ``spin_signature``,
        ``train_config``, ``scores``, any extra keys). ``format`` and ``degarble_version`` default to
        this version's; ``files_sha256`` is computed here (a given one is replaced).
    :param parts: ``{"detector": src_dir, "restorer": src_dir}``: save_pretrained folders to copy
        into the sections' ``dir`` (default: the section name). Every section present in the
        manifest needs a part and vice versa; a section may be omitted from ``manifest`` and given
        only as a part (it is then ``{"dir": name}``, which for the detector still needs a threshold).
    :param force: replace an existing non-empty ``out_dir``. Without it, that is an error.
    :param readme: text of a model card written as ``README.md``.

    The bundle is assembled in a temporary folder beside ``out_dir``, checked with :func:`verify`,
    and only then moved into place, so a failure never leaves a half-written bundle.
    """
    out = Path(out_dir).expanduser()
    data = dict(manifest)
    data.setdefault("format", FORMAT)
    data.setdefault("degarble_version", __version__)
    data.setdefault("restorer", None)
    unknown = sorted(set(parts) - set(PART_SECTIONS))
    if unknown:
        raise BundleError(f"unknown part(s) {unknown}; parts are {', '.join(PART_SECTIONS)}")
    for section in PART_SECTIONS:
        if section in parts:
            sec = data.get(section)
            data[section] = {"dir": section} if sec is None else {"dir": section, **sec}
        elif data.get(section) is not None:
            raise BundleError(f"manifest has a {section!r} section but no {section!r} part folder was given")
    if "detector" not in parts:
        raise BundleError("a bundle needs a 'detector' part (a save_pretrained folder)")
    data["files_sha256"] = {}
    Manifest.from_dict(data, source="manifest to save")  # fail before copying anything

    for section, src in parts.items():
        src_p = Path(src).expanduser().resolve()
        if out.resolve() == src_p or out.resolve() in src_p.parents:
            raise BundleError(
                f"part {section!r} ({src_p}) lies inside the output folder {out}; choose another output"
            )
    if out.exists():
        if not out.is_dir():
            raise BundleError(f"{out} exists and is not a folder")
        if any(out.iterdir()):
            if not force:
                raise BundleError(
                    f"{out} already exists and is not empty; pass force=True (--force) to replace it"
                )
            if not (out / MANIFEST_NAME).is_file():
                # force replaces an old bundle, never an arbitrary folder that happens to be in the way
                raise BundleError(
                    f"{out} is not empty and holds no {MANIFEST_NAME}; refusing to replace it even with force"
                )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        hashes: dict[str, str] = {}
        for section, src in parts.items():
            src_p = Path(src).expanduser()
            dest_dir = tmp / data[section]["dir"]
            for f in _check_part(section, src_p):
                rel = f.relative_to(src_p)
                dest = dest_dir / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
                hashes[(PurePosixPath(data[section]["dir"]) / rel.as_posix()).as_posix()] = sha256_file(dest)
        if readme is not None:
            (tmp / "README.md").write_text(readme, encoding="utf-8")
            hashes["README.md"] = sha256_file(tmp / "README.md")
        data["files_sha256"] = hashes
        m = Manifest.from_dict(data, source="manifest to save")
        (tmp / MANIFEST_NAME).write_text(
            json.dumps(m.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        verify(tmp, strict=True)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_manifest(out)


def manifest_summary(m: Manifest) -> dict:
    """The fields worth showing a person (``degarble info``): identity, settings, headline scores."""
    return {
        "name": m.name,
        "path": str(m.root) if m.root else None,
        "hash": m.hash(),
        "format": m.format,
        "degarble_version": m.degarble_version,
        "detector": m.detector,
        "restorer": m.restorer,
        "spin_signature": m.spin_signature,
        "scores": m.scores,
        "files": len(m.files_sha256),
        "size_bytes": _bundle_size(m),
    }


def _bundle_size(m: Manifest) -> int | None:
    if m.root is None:
        return None
    total = 0
    for rel in m.files_sha256:
        f = m.root / rel
        if f.is_file():
            total += f.stat().st_size
    return total
