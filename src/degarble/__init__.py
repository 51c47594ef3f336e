"""degarble: detect article-spinner ("spun") text and restore its original wording.

>>> import degarble
>>> degarble.spin("The minister told reporters.", seed=1).text        # doctest: +SKIP
>>> degarble.detect("Russia's deputy overseas minister instructed state media.")  # doctest: +SKIP

The spinner, scoring and result types are pure Python; the torch-backed models load lazily
inside :func:`load` (and the module-level :func:`detect` / :func:`restore`), so
``import degarble`` and ``degarble spin`` stay fast and need no torch.
"""

from ._version import __version__
from .bundle import BundleError
from .edits import apply_edits
from .spin import spin
from .types import Detection, Edit, Restoration, Span, Spun


def load(path=None, precision=None):
    """Load a model bundle (``path``, else ``$DEGARBLE_MODEL``, else the one shipped in the package).

    Returns a :class:`degarble.model.Model` with batch methods ``detect(texts)`` and
    ``restore(texts)``. Offline; never contacts a model hub. ``precision``: ``auto`` (the
    default: bf16 on a CPU with native bf16, else fp32), ``fp32``, ``bf16`` or ``int8`` (faster,
    slightly lower scores); ``None`` reads ``$DEGARBLE_PRECISION``.
    """
    from .model import load as _load

    return _load(path, precision)


def detect(text: str, model=None, threshold: float | None = None) -> Detection:
    """Detect spinning in one text: ``Detection(spun_score, is_spun, spans)`` (offsets into ``text``).

    ``threshold`` (0-1) decides ``is_spun`` instead of the bundle's calibrated threshold.
    """
    from .model import detect as _detect

    return _detect(text, model, threshold=threshold)


def restore(text: str, model=None, greedy: bool = False, alternatives: int = 0,
            min_score: float | None = None, threshold: float | None = None) -> Restoration:
    """Restore one text's original wording: ``Restoration(text, edits)`` (offsets into the input).

    ``greedy=True`` skips the bundle's candidate ranking: faster, lower edit recall
    (:meth:`degarble.model.Model.restore`). ``alternatives=3`` gives each edit up to three
    runner-up suggestions (``Edit.alternatives``), for an editor to pick from; ``min_score``
    (0-1) replaces the calibrated confidence a change needs: lower suggests more, for review.
    ``threshold`` (0-1): change only paragraphs whose ``spun_score`` reaches it, instead of the
    bundle's calibrated threshold (and its paragraph gate).
    """
    from .model import restore as _restore

    return _restore(text, model, greedy=greedy, alternatives=alternatives, min_score=min_score,
                    threshold=threshold)


__all__ = [
    "BundleError",
    "Detection",
    "Edit",
    "Restoration",
    "Span",
    "Spun",
    "__version__",
    "apply_edits",
    "detect",
    "load",
    "restore",
    "spin",
]
