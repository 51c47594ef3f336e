"""The spinner simulator (pure Python, no torch): synthetic spun text with gold edits.

>>> from degarble.spin import spin
>>> s = spin("The minister told reporters the meeting was possible.", seed=1)
>>> s.text, s.edits, s.signature  # doctest: +SKIP
"""

from .spinner import (
    BASE_PROFILES,
    DEFAULT_PROFILE,
    PROFILES,
    RATES,
    RETIRED_PROFILES,
    Profile,
    Spinner,
    resolve_rate,
    spin,
)
from .thesaurus import THESAURUS_VERSION, Thesaurus, ThesaurusError, load_thesaurus

__all__ = [
    "DEFAULT_PROFILE",
    "BASE_PROFILES",
    "PROFILES",
    "RATES",
    "RETIRED_PROFILES",
    "THESAURUS_VERSION",
    "Profile",
    "Spinner",
    "Thesaurus",
    "ThesaurusError",
    "load_thesaurus",
    "resolve_rate",
    "spin",
]
