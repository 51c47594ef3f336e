"""Applying edits to text. One implementation, used by the spinner, restorer, eval and tests."""

from __future__ import annotations

from collections.abc import Iterable

from .types import Edit


class EditError(ValueError):
    """Edits that do not describe the text they are applied to (overlap, out of range, mismatch)."""


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Return ``text`` with every edit's ``before`` (at ``start:end``) replaced by its ``after``.

    Edits must not overlap; they are applied right to left so earlier offsets stay valid.
    Raises :class:`EditError` when an edit's ``before`` does not match the text.
    """
    ordered = sorted(edits, key=lambda e: (e.start, e.end))
    prev_end = -1
    for e in ordered:
        if e.start < prev_end:
            raise EditError(f"overlapping edits at {e.start}:{e.end}")
        _check_fits(text, e)
        prev_end = e.end
    out = []
    pos = 0
    for e in ordered:
        out.append(text[pos : e.start])
        out.append(e.after)
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


def _check_fits(text: str, e: Edit) -> None:
    """Raise :class:`EditError` unless ``e`` lies inside ``text`` and its ``before`` is what is there."""
    if not (0 <= e.start <= e.end <= len(text)):
        raise EditError(f"edit {e.start}:{e.end} outside text of length {len(text)}")
    if text[e.start : e.end] != e.before:
        raise EditError(f"edit {e.start}:{e.end} expects {e.before!r}, text has {text[e.start:e.end]!r}")


def choice_segments(text: str, edits: Iterable[Edit], flagged: Iterable = ()) -> list[str | dict]:
    """``text`` cut into untouched pieces (strings) and one choice per edit, for a reviewer.

    Each choice is ``{"start", "end", "original", "options": [{"text", "score"}, ...]}``: the
    options are the edit's own replacement, then its alternatives (:attr:`Edit.alternatives`),
    each written out for the same stretch ``text[start:end]`` (the edit and its alternatives,
    which may cover different words of it, together), and ``original`` is that stretch as it
    stands (rejecting the change). ``flagged`` spans (anything with ``start``, ``end`` and
    ``score``, such as a :class:`~degarble.types.Detection`'s) that no choice covers become
    ``{"flag": text, "score"}`` pieces: words the detector doubts but nothing was suggested for.
    Joining the pieces (a flag as its text) with every first option gives
    ``apply_edits(text, edits)``; with every ``original``, ``text``.
    """
    out: list[str | dict] = []
    flags = sorted((int(f.start), int(f.end), float(f.score)) for f in flagged)

    def untouched(a: int, b: int) -> None:
        for fa, fb, score in flags:
            if a <= fa and fb <= b:
                out.append(text[a:fa])
                out.append({"flag": text[fa:fb], "score": round(score, 4)})
                a = fb
        out.append(text[a:b])

    pos = 0
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        group = [e, *e.alternatives]
        start, end = min(x.start for x in group), max(x.end for x in group)
        if start < pos:
            raise EditError(f"overlapping edits at {start}:{end}")
        for x in group:
            _check_fits(text, x)
        untouched(pos, start)
        options = [{"text": text[start : x.start] + x.after + text[x.end : end],
                    "score": None if x.score is None else round(float(x.score), 4)} for x in group]
        out.append({"start": start, "end": end, "original": text[start:end], "options": options})
        pos = end
    untouched(pos, len(text))
    return [s for s in out if s != ""]
