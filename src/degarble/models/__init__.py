"""Torch-backed models (imported lazily by :func:`degarble.load`) and the precision they run in."""
