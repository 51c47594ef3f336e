"""Torch-backed models (imported lazily by :func:`degarble.load`)."""
