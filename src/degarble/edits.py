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
        if not (0 <= e.start <= e.end <= len(text)):
            raise EditError(f"edit {e.start}:{e.end} outside text of length {len(text)}")
        if text[e.start : e.end] != e.before:
            raise EditError(f"edit {e.start}:{e.end} expects {e.before!r}, text has {text[e.start:e.end]!r}")
        prev_end = e.end
    out = []
    pos = 0
    for e in ordered:
        out.append(text[pos : e.start])
        out.append(e.after)
        pos = e.end
    out.append(text[pos:])
    return "".join(out)
