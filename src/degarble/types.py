"""Result types shared by the whole package: plain frozen dataclasses with flat attributes.

Offsets are Python string indices (code points) into the text the object describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Edit:
    """One change toward the clean wording: ``text[start:end] == before``; put ``after`` there.

    ``score`` is the model's confidence for predicted edits and ``None`` for gold edits
    (those that :func:`degarble.spin` returns). ``alternatives`` (only when asked for, e.g.
    ``degarble.restore(text, alternatives=3)``) are the restorer's next-best suggestions for the
    same flagged words, best first, each an edit of its own that can be applied instead of this one.
    """

    start: int
    end: int
    before: str
    after: str
    score: float | None = None
    alternatives: tuple[Edit, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict:
        d = {"start": self.start, "end": self.end, "before": self.before, "after": self.after}
        if self.score is not None:
            d["score"] = round(float(self.score), 4)
        if self.alternatives:
            d["alternatives"] = [a.to_dict() for a in self.alternatives]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Edit:
        """The edit :meth:`to_dict` wrote (alternatives included)."""
        return cls(int(d["start"]), int(d["end"]), d["before"], d["after"], d.get("score"),
                   tuple(cls.from_dict(a) for a in d.get("alternatives") or ()))


@dataclass(frozen=True)
class Span:
    """A stretch of input that the detector thinks a spinner put there (``score`` = probability)."""

    start: int
    end: int
    score: float
    text: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "score": round(float(self.score), 4)}


@dataclass(frozen=True)
class Detection:
    """Detector output for one text: ``spun_score`` in [0, 1], ``is_spun`` at the bundle's threshold."""

    spun_score: float
    is_spun: bool
    spans: list[Span]
    paragraphs: list[dict] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict:
        return {
            "spun_score": round(float(self.spun_score), 4),
            "is_spun": bool(self.is_spun),
            "spans": [s.to_dict() for s in self.spans],
        }


@dataclass(frozen=True)
class Restoration:
    """Restorer output: the restored ``text`` and the ``edits`` (offsets into the input) that build it."""

    text: str
    edits: list[Edit]

    def to_dict(self) -> dict:
        return {"restored": self.text, "edits": [e.to_dict() for e in self.edits]}


@dataclass(frozen=True)
class Spun:
    """Spinner output: the spun ``text``, gold ``edits`` (offsets into the spun text) and a ``signature``.

    Applying ``edits`` to ``text`` (see :func:`degarble.edits.apply_edits`) gives the original back exactly.
    """

    text: str
    edits: list[Edit]
    signature: str

    def to_dict(self) -> dict:
        return {"spun": self.text, "edits": [e.to_dict() for e in self.edits]}
