"""A loaded model bundle: the object behind ``degarble.load()``, ``detect()`` and ``restore()``."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import threading
from pathlib import Path

from .bundle import BundleError, read_manifest, resolve_bundle_path
from .edits import apply_edits
from .types import Detection, Restoration

# the --greedy option's help, shared by the restore, batch, eval and bench commands
GREEDY_HELP = "skip candidate ranking: generate each replacement greedily (about 1.5x faster, lower recall)"


def given(**options) -> dict:
    """The options that were set (not ``None``, not ``False``), and only those: a restore function
    without an option still runs when it is not asked for, and a batch job's state written before
    an option existed still resumes."""
    return {k: v for k, v in options.items() if v is not None and v is not False}


def check_probability(name: str, value: float | None) -> None:
    """Raise ``ValueError`` unless ``value`` (a threshold or a confidence) is ``None`` or within 0
    and 1: a score compared with a value outside that range would silently flag all or nothing."""
    if value is not None and not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be within 0 and 1, got {value!r}")


_gc_lock = threading.Lock()
_gc_users = 0  # calls inside _collector_paused, in all threads
_gc_was_enabled = False


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector paused for the duration of a detect or restore call.

    After ``import torch, transformers`` the interpreter tracks some 360 k container objects,
    and a full collection walks them all: about 0.3 s each on this 2-core machine. The
    restorer's candidate ranking makes tens of thousands of short-lived objects per batch,
    enough to set off one or two full collections per call (15 % of restore time, measured).
    Nothing in a call depends on the collector: reference counting frees what it drops, and a
    call makes no reference cycles (a test checks it), so nothing piles up meanwhile. Re-entrant and
    thread-safe: the first call in disables it, the last one out enables it again if it was on.
    """
    global _gc_users, _gc_was_enabled
    with _gc_lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()


class Model:
    """Detector (and, where the bundle has one, restorer) from one bundle folder.

    Use :func:`degarble.load` to get one. Batch methods take lists of texts. ``precision`` is
    ``auto``, ``fp32``, ``bf16`` or ``int8`` (:mod:`degarble.models.precision`); ``None`` reads
    ``$DEGARBLE_PRECISION``, else ``auto``: bf16 on a CPU with native bf16, else fp32.
    ``context=False`` leaves out the detector's corpus evidence (``training/fit_context.py`` fits
    it on the bare model's probabilities).
    """

    def __init__(self, path: str | os.PathLike, precision: str | None = None, context: bool = True):
        from .models.detector import Detector
        from .models.precision import resolve_precision

        self.path = Path(path)
        self.precision = resolve_precision(precision)
        self.manifest = read_manifest(self.path)
        det = self.manifest.detector_settings(self.precision)
        self.detector = Detector.from_dir(
            self.manifest.part_dir("detector"),
            threshold=det["threshold"],
            max_length=det.get("max_length", 128),
            stride=det.get("stride", 32),
            word_threshold=det.get("word_threshold", 0.5),
            top_k=det.get("top_k", 3),
            top_share=det.get("top_share", 0.0),
            score=det.get("score", "top"),
            score_weights=det.get("score_weights"),
            precision=self.precision,
            context=self._context(det.get("context")) if context else None,
        )
        self.restorer = None
        self._greedy_restorer = None
        res = self.manifest.restorer
        if res is not None:
            from .models.restorer import Restorer

            self.restorer = Restorer.from_dir(
                self.manifest.part_dir("restorer"),
                min_score=res.get("min_score", 0.0),
                max_words=res.get("max_words", 60),
                max_length=res.get("max_length", 192),
                rank=res.get("rank"),
                precision=self.precision,
                context=self.detector.context,
            )
            # the min_score calibrated for greedy decoding, for restore(greedy=True) on a bundle
            # that ranks candidates (its own min_score is calibrated for ranking)
            self._greedy_min_score = res.get("greedy_min_score")
            # paragraphs the detector is less sure of (``threshold`` <= spun_score < its own) get
            # only the surest changes (``min_score``); absent: only paragraphs judged spun change
            self._paragraph_gate = res.get("paragraph_gate")

    def _context(self, settings: dict | None):
        """The detector's corpus evidence (``detector.context`` in the manifest), if the bundle has it."""
        if not settings:
            return None
        from .models.context import ContextScorer

        return ContextScorer.from_dir(self.manifest.part_dir("detector"), settings)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def bundle_hash(self) -> str:
        return self.manifest.hash()

    @property
    def threshold(self) -> float:
        return self.detector.threshold

    @property
    def has_restorer(self) -> bool:
        return self.restorer is not None

    def detect(self, texts: list[str], batch_size: int = 32, threshold: float | None = None) -> list[Detection]:
        """Detect spinning in each text; see :class:`~degarble.types.Detection`. ``threshold``
        decides ``is_spun`` (texts and paragraphs) instead of the bundle's calibrated one."""
        if isinstance(texts, str):
            raise TypeError("Model.detect() takes a list of texts; use degarble.detect(text) for one")
        check_probability("threshold", threshold)
        with _collector_paused():
            return self.detector.detect(list(texts), batch_size=batch_size, threshold=threshold)

    def restore(self, texts: list[str], batch_size: int = 32, threshold: float | None = None,
                greedy: bool = False, alternatives: int = 0, min_score: float | None = None,
                detections: list[Detection] | None = None) -> list[Restoration]:
        """Restore the original wording of each text (needs a bundle with a restorer).

        The detector flags spans first; the restorer rewrites only those, in paragraphs judged
        spun (at ``threshold``, default the bundle's), so everything else comes back byte for byte.
        A bundle with a ``restorer.paragraph_gate`` (``{"threshold": T, "min_score": M}``) also
        rewrites paragraphs scoring from ``T`` up to its threshold, keeping there only the changes
        of confidence ``M`` or more (not with ``greedy`` or an explicit ``threshold``).
        ``greedy=True`` skips the bundle's candidate ranking (if it has one) and takes each
        span's greedy replacement at the bundle's ``greedy_min_score``: about 1.5x faster, lower
        edit recall (README, "How restoring works"). ``alternatives=k`` also gives each edit up
        to ``k`` runners-up of the ranking (``Edit.alternatives``), for an editor to choose from;
        the edits themselves stay the same. ``min_score`` replaces the calibrated confidence an
        edit needs (the bundle's ``min_score``, or ``greedy_min_score`` with ``greedy``): lower
        suggests more changes, more of them wrong, for an editor who reviews each.
        ``detections``: this model's :meth:`detect` results for ``texts``, when the caller has them
        already (to show the flagged words beside the changes): they are used instead of a second
        detection pass (``threshold`` then does nothing).
        """
        if isinstance(texts, str):
            raise TypeError("Model.restore() takes a list of texts; use degarble.restore(text) for one")
        if alternatives and greedy:
            raise ValueError("alternatives come from candidate ranking; greedy=True skips it")
        check_probability("threshold", threshold)
        check_probability("min_score", min_score)
        if self.restorer is None:
            raise NotImplementedError(
                f"bundle {self.name!r} has no restorer; it can only detect (degarble detect)"
            )
        texts = list(texts)
        if detections is not None and len(detections) != len(texts):
            raise ValueError(f"detections: {len(detections)} for {len(texts)} texts; give one per text, in order")
        restorer = self._greedy() if greedy else self.restorer
        if alternatives or min_score is not None:
            restorer = restorer.using(alternatives=alternatives, min_score=min_score)
        with _collector_paused():
            if detections is None:
                detections = self.detector.detect(texts, batch_size=batch_size, threshold=threshold)
            gate = None if greedy or threshold is not None else self._paragraph_gate
            if not gate:
                return restorer.restore(texts, list(detections), batch_size=batch_size)
            opened = [_open_paragraphs(d, float(gate["threshold"])) for d in detections]
            out = restorer.restore(texts, opened, batch_size=batch_size)
            return [_gated(t, d, r, gate) for t, d, r in zip(texts, detections, out, strict=True)]

    def _greedy(self):
        """The restorer without candidate ranking (made on first use; it shares the weights)."""
        if self.restorer.rank is None:
            return self.restorer
        if self._greedy_restorer is None:
            self._greedy_restorer = self.restorer.greedy(self._greedy_min_score)
        return self._greedy_restorer

    def __repr__(self) -> str:
        return (f"Model(name={self.name!r}, path={str(self.path)!r}, parts={self.manifest.parts()}, "
                f"precision={self.precision!r})")


def _open_paragraphs(det: Detection, threshold: float) -> Detection:
    """``det`` with every paragraph whose ``spun_score`` reaches ``threshold`` marked spun (what the
    restorer rewrites): the paragraph gate's lower threshold."""
    paras = [{**p, "is_spun": bool(p["is_spun"] or p["spun_score"] >= threshold)} for p in det.paragraphs]
    return dataclasses.replace(det, paragraphs=paras)


def gate_keeps(judged: bool, paragraph_score: float, edit_score: float | None, gate: dict) -> bool:
    """Whether an edit stands under the paragraph gate ``gate`` (``{"threshold", "min_score"}``):
    any edit in a paragraph judged spun; in one that scores from the gate's threshold up, only an
    edit of confidence ``min_score`` or more. (``training/calibrate_gate.py`` chooses the gate
    with this same rule.)"""
    return judged or (paragraph_score >= float(gate["threshold"])
                      and edit_score is not None and edit_score >= float(gate["min_score"]))


def paragraph_at(det: Detection, pos: int) -> tuple[bool, float]:
    """``(is_spun, spun_score)`` of the paragraph of ``det`` that holds character ``pos``;
    ``(False, 1.0)`` outside them all."""
    p = next((p for p in det.paragraphs if p["start"] <= pos < p["end"]), None)
    return (bool(p["is_spun"]), float(p["spun_score"])) if p else (False, 1.0)


def _gated(text: str, det: Detection, res: Restoration, gate: dict) -> Restoration:
    """``res`` with only the changes the paragraph gate keeps (:func:`gate_keeps`; ``det``
    judged its paragraphs at the detector's own threshold)."""
    kept = [e for e in res.edits if gate_keeps(*paragraph_at(det, e.start), e.score, gate)]
    if len(kept) == len(res.edits):
        return res
    return Restoration(apply_edits(text, kept), kept)


_cache: dict[tuple[Path, str], Model] = {}
_lock = threading.Lock()


def load(path: str | os.PathLike | None = None, precision: str | None = None) -> Model:
    """Load a model bundle: ``path``, else ``$DEGARBLE_MODEL``, else the bundle shipped in the package.

    ``precision``: ``auto`` (bf16 on a CPU with native bf16, else fp32), ``fp32``, ``bf16`` or
    ``int8`` (faster, slightly lower scores: :mod:`degarble.models.precision`); ``None`` reads
    ``$DEGARBLE_PRECISION``, else ``auto``.
    Loading is offline (``local_files_only``); a loaded bundle is cached per folder and precision.
    Raises :class:`~degarble.bundle.BundleError` naming what was looked for when nothing is found,
    and ``ValueError`` for an unknown precision.
    """
    from .models.precision import resolve_precision

    key = (resolve_bundle_path(path).resolve(), resolve_precision(precision))
    with _lock:
        if key not in _cache:
            _cache[key] = Model(*key)
        return _cache[key]


def detect(text: str, model: str | os.PathLike | None = None, threshold: float | None = None) -> Detection:
    """Detect spinning in one text with the default (or given) bundle (``threshold``: see
    :meth:`Model.detect`)."""
    if not isinstance(text, str):
        raise TypeError(f"detect() needs a str, got {type(text).__name__}")
    return load(model).detect([text], threshold=threshold)[0]


def restore(text: str, model: str | os.PathLike | None = None, greedy: bool = False,
            alternatives: int = 0, min_score: float | None = None, threshold: float | None = None) -> Restoration:
    """Restore one text's original wording with the default (or given) bundle
    (``greedy``, ``threshold``: see :meth:`Model.restore`)."""
    if not isinstance(text, str):
        raise TypeError(f"restore() needs a str, got {type(text).__name__}")
    return load(model).restore([text], threshold=threshold, greedy=greedy, alternatives=alternatives,
                               min_score=min_score)[0]


__all__ = ["BundleError", "Model", "detect", "load", "restore"]
