"""Torch-backed models (imported lazily by :func:`degarble.load`) and the precision they run in."""

import contextlib


@contextlib.contextmanager
def quiet_loading():
    """Load weights without transformers' "Loading weights" progress bar (the bundle's models are
    small and local, and the bar cluttered every CLI run's output); the caller's setting is restored."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()
