"""One seeding helper for training scripts and tests."""

from __future__ import annotations

import os
import random


def set_seed(seed: int) -> None:
    """Seed ``random``, numpy and torch (when installed) so a run can be repeated."""
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass
