"""The benchmark behind ``degarble bench``: articles/s, cold start and peak memory.

    degarble bench                                   # the default bundle, 12 articles of 600 words
    degarble bench --model DIR --articles 20 --output eval/reports/bench.json
    degarble bench --greedy                          # restore without candidate ranking

What it measures, on 600-word news articles (held-out BBC paragraphs joined, then cut at the
600th word), each both clean and spun by :func:`degarble.spin.spin` (medium rate, seed 13):

* **articles/s** for ``model.detect`` and ``model.restore``: the median of ``--repeats`` timed
  passes, after one warm-up article;
* **cold start**: seconds from the worker's start to the first result (import, load, first call);
* **peak memory**: the worker process's peak resident set size (``ru_maxrss``).

In the same run the bundle's own weights go through a **plain transformers path**. The detector
runs as a ``token-classification`` pipeline (with a stride over long input). The restorer runs as
``generate()`` on every sentence if it is seq2seq, or as a second ``token-classification`` pipeline
if it is a tagger. This is the baseline, and the report gives ``degarble / plain`` as a ratio.
Each path runs in its own fresh Python process (``--in-process`` runs both here), so that cold start
and peak memory belong to that path alone. The output is JSON. The test suite never checks these
timings.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_T_START = time.perf_counter()  # a worker's cold start counts from here (imports included)

from ._version import __version__  # noqa: E402
from .model import GREEDY_HELP  # noqa: E402
from .models.precision import PRECISION_HELP, PRECISIONS  # noqa: E402
from .text import sentences, words  # noqa: E402

__all__ = ["add_bench_arguments", "bench_system", "make_articles", "plain_pipeline_system", "run_bench_from_args"]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = "data/derived/test.paragraphs.jsonl"
FALLBACK_CORPUS = "../shared/data/bbc_news/bbc_news.jsonl.gz"


# ------------------------------------------------------------------------------------------
# articles


def _read_paragraphs(path: Path) -> list[str]:
    """Paragraph texts in file order: a ``{"text"}`` JSON Lines split, or the BBC article file."""
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            text = rec.get("text") if isinstance(rec, dict) else None
            if isinstance(text, str):
                out += [p.strip() for p in text.split("\n") if p.strip()]
    return out


def make_articles(paragraphs: Sequence[str], n: int, n_words: int = 600) -> list[str]:
    """``n`` articles of exactly ``n_words`` words: consecutive paragraphs joined by a newline, cut
    after the ``n_words``-th word (:func:`degarble.text.words`). Deterministic; wraps around."""
    if not paragraphs:
        raise ValueError("no paragraphs to build articles from")
    out: list[str] = []
    k = 0
    while len(out) < n:
        parts: list[str] = []
        count = 0
        while count < n_words:
            p = paragraphs[k % len(paragraphs)]
            k += 1
            parts.append(p)
            count += len(words(p))
        text = "\n".join(parts)
        cut = words(text)[n_words - 1].end
        out.append(text[:cut] + ".")
        if k > 10 * n * n_words:  # paragraphs without words
            raise ValueError("paragraphs hold too few words to build articles")
    return out


# ------------------------------------------------------------------------------------------
# timing


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def _time(fn: Callable[[list[str]], Any], articles: list[str], batch_size: int, repeats: int) -> dict:
    fn(articles[:1])  # warm-up: first-call allocations and lazy init do not count
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(0, len(articles), batch_size):
            fn(articles[i : i + batch_size])
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    n_words = sum(len(words(a)) for a in articles)
    return {
        "articles_per_s": len(articles) / med if med else None,
        "words_per_s": n_words / med if med else None,
        "median_s": round(med, 4),
        "seconds": [round(t, 4) for t in times],
    }


def bench_system(
    system: Any, corpora: dict[str, list[str]], batch_size: int = 8, repeats: int = 3,
    cold: dict | None = None, log: Callable[[str], None] = lambda m: None, greedy: bool = False,
) -> dict:
    """Time ``system.detect`` and ``system.restore`` on each named list of articles.

    ``system`` is anything with ``detect(list)`` and ``restore(list)`` (a loaded bundle, or
    :func:`plain_pipeline_system`). A ``restore`` that raises :class:`NotImplementedError` (or is
    absent) is reported as ``null``. ``greedy`` times ``restore(list, greedy=True)`` (a bundle's
    restore without candidate ranking).
    """
    out: dict[str, Any] = {"name": getattr(system, "name", "?"), "detect": {}, "restore": {}}
    if cold is not None:
        out["cold_start"] = cold
    restore = getattr(system, "restore", None)
    if greedy and restore is not None:
        restore = functools.partial(restore, greedy=True)
    for kind, articles in corpora.items():
        log(f"{out['name']}: detect on {len(articles)} {kind} articles")
        out["detect"][kind] = _time(system.detect, articles, batch_size, repeats)
        if restore is None:
            out["restore"][kind] = None
            continue
        log(f"{out['name']}: restore on {len(articles)} {kind} articles")
        try:
            out["restore"][kind] = _time(restore, articles, batch_size, repeats)
        except NotImplementedError:
            out["restore"][kind] = None
            restore = None
    out["peak_rss_mb"] = round(_rss_mb(), 1)
    return out


# ------------------------------------------------------------------------------------------
# the plain transformers path


class _PlainSystem:
    """The bundle's weights run through plain transformers calls (the benchmark's baseline)."""

    name = "transformers-pipeline"

    def __init__(self, detect_fn, restore_fn, info: dict):
        self.detect = detect_fn
        if restore_fn is not None:
            self.restore = restore_fn
        self.info = info


def plain_pipeline_system(bundle: str | os.PathLike | None, batch_size: int = 8) -> _PlainSystem:
    """Build the plain-transformers baseline from a bundle folder (offline: local files only).

    * detect: ``pipeline("token-classification", aggregation_strategy="simple", stride=...)`` over
      each whole article, with the tokenizer's maximum length set to the manifest's ``max_length``;
    * restore: for a seq2seq restorer, ``tokenizer`` + ``model.generate()`` on every sentence of
      the article (``source_prefix``, ``max_length``, ``num_beams`` from the manifest), with no
      detector gating; for a token-tagging restorer, a second token-classification pipeline.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForSeq2SeqLM,
        AutoModelForTokenClassification,
        AutoTokenizer,
        pipeline,
    )

    from .bundle import read_manifest, resolve_bundle_path

    manifest = read_manifest(resolve_bundle_path(bundle))

    def tagger(section: str, aggregation: str):
        part = getattr(manifest, section)
        d = manifest.part_dir(section)
        cfg = AutoConfig.from_pretrained(d, local_files_only=True)
        max_len = int(part.get("max_length") or min(getattr(cfg, "max_position_embeddings", 512), 512))
        stride = int(part.get("stride", max_len // 4))
        stride = min(stride, max_len // 2)
        tok = AutoTokenizer.from_pretrained(d, local_files_only=True, model_max_length=max_len)
        model = AutoModelForTokenClassification.from_pretrained(d, local_files_only=True)
        pipe = pipeline("token-classification", model=model, tokenizer=tok, device=-1,
                        aggregation_strategy=aggregation, stride=stride)
        return pipe, {"max_length": max_len, "stride": stride, "aggregation": aggregation}

    det_pipe, det_info = tagger("detector", "simple")

    def detect(texts: list[str]) -> list:
        return det_pipe(list(texts), batch_size=batch_size)

    info: dict[str, Any] = {"detector": {"task": "token-classification", **det_info}}
    restore_fn = None
    if manifest.restorer is not None:
        rdir = manifest.part_dir("restorer")
        cfg = AutoConfig.from_pretrained(rdir, local_files_only=True)
        if str(manifest.restorer.get("kind", "")).startswith("span-infilling"):
            restore_fn, info["restorer"] = _plain_span_infiller(rdir, det_pipe, batch_size)
        elif getattr(cfg, "is_encoder_decoder", False):
            tok = AutoTokenizer.from_pretrained(rdir, local_files_only=True)
            model = AutoModelForSeq2SeqLM.from_pretrained(rdir, local_files_only=True).eval()
            prefix = manifest.restorer.get("source_prefix", "")
            max_len = int(manifest.restorer.get("max_length", 256))
            beams = int(manifest.restorer.get("num_beams", 1))

            def restore(texts: list[str]) -> list[str]:
                out = []
                for text in texts:
                    sents = [prefix + text[s:e] for s, e in sentences(text)]
                    gen = []
                    for i in range(0, len(sents), batch_size):
                        enc = tok(sents[i : i + batch_size], return_tensors="pt", padding=True, truncation=True,
                                  max_length=max_len)
                        with torch.inference_mode():
                            ids = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                                 max_length=max_len, num_beams=beams)
                        gen += tok.batch_decode(ids, skip_special_tokens=True)
                    out.append(" ".join(gen))
                return out

            restore_fn = restore
            info["restorer"] = {"task": "generate() on every sentence", "max_length": max_len, "num_beams": beams}
        else:
            res_pipe, res_info = tagger("restorer", "none")

            def restore(texts: list[str]) -> list:
                return res_pipe(list(texts), batch_size=batch_size)

            restore_fn = restore
            info["restorer"] = {"task": "token-classification", **res_info}
    return _PlainSystem(detect, restore_fn, info)


def _plain_span_infiller(rdir, det_pipe, batch_size: int):
    """The span-infilling restorer the plain way: the detector pipeline's spans, then
    ``model.generate()`` (fp32, default settings) on every sentence holding one, in article order."""
    import torch
    from transformers import AutoTokenizer

    from .models.restorer import encode_source, span_infiller_class

    tok = AutoTokenizer.from_pretrained(rdir, local_files_only=True)
    model = span_infiller_class().from_pretrained(rdir, local_files_only=True, dtype=torch.float32).eval()

    def restore(texts: list[str]) -> list[str]:
        out = []
        for text, ents in zip(texts, det_pipe(list(texts), batch_size=batch_size)):
            spans = [(e["start"], e["end"]) for e in ents if e.get("entity_group") == "spun"]
            srcs = []
            for a, b in sentences(text):
                inside = [(s - a, e - a) for s, e in spans if a <= s and e <= b]
                if inside:
                    srcs.append(encode_source(tok, text[a:b], inside))
            gen = []
            for i in range(0, len(srcs), batch_size):
                chunk = srcs[i : i + batch_size]
                ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(x) for x in chunk], batch_first=True,
                                                      padding_value=tok.pad_token_id)
                with torch.inference_mode():
                    res = model.generate(input_ids=ids, attention_mask=(ids != tok.pad_token_id).long(),
                                         max_new_tokens=64)
                gen += tok.batch_decode(res, skip_special_tokens=True)
            out.append(" | ".join(gen))
        return out

    return restore, {"task": "generate() on every sentence with a detector-pipeline span, fp32, no batching by length"}


# ------------------------------------------------------------------------------------------
# workers (one fresh process per path)


def _set_threads(threads: int | None) -> int | None:
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:  # pragma: no cover
        return None


def run_worker(path_kind: str, model: str | None, corpora: dict[str, list[str]], batch_size: int, repeats: int,
               threads: int | None, t_start: float, log: Callable[[str], None], precision: str | None = None,
               greedy: bool = False) -> dict:
    """Load one path (``degarble`` or ``pipeline``), time its cold start, then benchmark it.

    ``precision`` applies to the degarble path (:func:`degarble.load`); the pipeline runs fp32.
    ``greedy`` restores on the degarble path without candidate ranking (``restore(greedy=True)``)."""
    n_threads = _set_threads(threads)
    if path_kind == "degarble":
        import degarble

        t0 = time.perf_counter()
        system = degarble.load(model, precision)
        label = {"name": getattr(system, "name", "?"), "bundle_hash": getattr(system, "bundle_hash", ""),
                 "precision": getattr(system, "precision", None), "greedy": greedy}
    else:
        t0 = time.perf_counter()
        system = plain_pipeline_system(model, batch_size=batch_size)
        label = {"name": system.name, **system.info}
    t_load = time.perf_counter()
    first = next(iter(corpora.values()))[:1]
    system.detect(first)
    t_first = time.perf_counter()
    cold = {
        "import_s": round(t0 - t_start, 3),
        "load_s": round(t_load - t0, 3),
        "first_detect_s": round(t_first - t_load, 3),
        "cold_start_s": round(t_first - t_start, 3),
        "note": "from the worker's first import to the first detect result; interpreter start-up not included",
    }
    res = bench_system(system, corpora, batch_size, repeats, cold=cold, log=log, greedy=greedy)
    res.update(label)
    res["threads"] = n_threads
    return res


def _worker_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m degarble.bench")
    p.add_argument("--worker", choices=("degarble", "pipeline"), required=True)
    p.add_argument("--articles-file", required=True)
    p.add_argument("--model")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int)
    p.add_argument("--precision")
    p.add_argument("--greedy", action="store_true")
    a = p.parse_args(argv)
    corpora = json.loads(Path(a.articles_file).read_text(encoding="utf-8"))

    def log(m: str) -> None:
        print(f"degarble bench [{a.worker}]: {m}", file=sys.stderr, flush=True)

    try:
        res = run_worker(a.worker, a.model, corpora, a.batch_size, a.repeats, a.threads, _T_START, log, a.precision,
                         a.greedy)
    except Exception as e:  # one line back to the parent instead of a traceback
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps(res))
    return 0


def _spawn(path_kind: str, args: argparse.Namespace, articles_file: Path, log) -> dict:
    cmd = [sys.executable, "-m", "degarble.bench", "--worker", path_kind, "--articles-file", str(articles_file),
           "--batch-size", str(args.batch_size), "--repeats", str(args.repeats)]
    if args.model:
        cmd += ["--model", str(args.model)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.precision:
        cmd += ["--precision", args.precision]
    if args.greedy and path_kind == "degarble":
        cmd += ["--greedy"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if args.verbose else subprocess.PIPE,
                          text=True, env=env)
    wall = time.perf_counter() - t
    lines = proc.stdout.strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(f"worker exited with status {proc.returncode}: " + " | ".join(tail)) from None
    if "error" in res:
        raise RuntimeError(res["error"])
    res["process_wall_s"] = round(wall, 2)
    return res


# ------------------------------------------------------------------------------------------
# command line


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``degarble bench``."""
    parser.description = (
        "Benchmark detect and restore (articles/s on 600-word news articles, spun and clean), cold start "
        "and peak memory, against the same weights run through a plain transformers pipeline. JSON out."
    )
    parser.add_argument("--model", metavar="DIR", help="model bundle (default: as degarble.load finds it)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help=PRECISION_HELP + "; the degarble path only, the plain pipeline runs fp32")
    parser.add_argument("--greedy", action="store_true", help=GREEDY_HELP + "; the degarble path only")
    parser.add_argument("--articles", type=int, default=12, help="articles per kind (spun, clean)")
    parser.add_argument("--words", type=int, default=600, help="words per article")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the median is reported")
    parser.add_argument("--batch-size", type=int, default=8, help="articles per call")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--rate", default="medium", help="spin rate for the spun articles (a RATES name)")
    parser.add_argument("--seed", type=int, default=13, help="spin seed")
    parser.add_argument("--corpus", type=Path, help=f"paragraphs (JSON Lines with \"text\"; default: {DEFAULT_CORPUS})")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the plain transformers baseline")
    parser.add_argument("--in-process", action="store_true",
                        help="run both paths in this process (cold start and peak memory then mix)")
    parser.add_argument("--output", metavar="BENCH.json", help="write the JSON here (default: standard output)")
    parser.add_argument("--verbose", action="store_true", help="show the workers' progress")


def _find_corpus(args: argparse.Namespace) -> Path:
    if args.corpus is not None:
        if not args.corpus.is_file():
            raise FileNotFoundError(f"corpus {args.corpus} not found")
        return args.corpus
    for rel in (DEFAULT_CORPUS, FALLBACK_CORPUS):
        p = REPO_ROOT / rel
        if p.is_file():
            return p
    raise FileNotFoundError(
        f"no news text to benchmark on: build {DEFAULT_CORPUS} with `python data/build_corpus.py`, or pass --corpus")


def _ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or not a.get("articles_per_s") or not b.get("articles_per_s"):
        return None
    return round(a["articles_per_s"] / b["articles_per_s"], 3)


def run_bench_from_args(args: argparse.Namespace) -> int:
    """Run ``degarble bench``; return the exit status (0 ok, 1 a path failed, 2 usage error)."""
    def log(m: str) -> None:
        print(f"degarble bench: {m}", file=sys.stderr, flush=True)

    if args.articles < 1 or args.words < 1 or args.repeats < 1 or args.batch_size < 1:
        log("--articles, --words, --repeats and --batch-size must be at least 1")
        return 2
    try:
        corpus = _find_corpus(args)
    except FileNotFoundError as e:
        log(str(e))
        return 2
    notes: list[str] = []
    clean = make_articles(_read_paragraphs(corpus), args.articles, args.words)
    corpora: dict[str, list[str]] = {}
    spin_sig = None
    try:
        from .spin import RATES, spin
    except ImportError as e:
        notes.append(f"spinner not available ({e}): clean articles only")
    else:
        rate = RATES[args.rate] if args.rate in RATES else float(args.rate)
        spun = [spin(a, rate=rate, seed=args.seed) for a in clean]
        corpora["spun"] = [s.text for s in spun]
        spin_sig = spun[0].signature
    corpora["clean"] = clean

    report: dict[str, Any] = {
        "format": "degarble-bench.v1",
        "degarble_version": __version__,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "articles": {"n": len(clean), "words": args.words, "source": str(corpus),
                     "words_mean": {k: round(statistics.mean(len(words(a)) for a in v), 1) for k, v in corpora.items()},
                     "spin_signature": spin_sig},
        "settings": {"batch_size": args.batch_size, "repeats": args.repeats, "threads": args.threads,
                     "greedy": args.greedy, "isolated_processes": not args.in_process},
    }
    for dist in ("torch", "transformers"):
        try:
            from importlib.metadata import version

            report["machine"][dist] = version(dist)
        except Exception:  # not installed
            report["machine"][dist] = None

    status = 0
    paths = ["degarble"] + ([] if args.no_pipeline else ["pipeline"])
    with tempfile.TemporaryDirectory() as tmp:
        articles_file = Path(tmp) / "articles.json"
        articles_file.write_text(json.dumps(corpora), encoding="utf-8")
        for kind in paths:
            log(f"running the {kind} path" + ("" if args.in_process else " in a fresh process"))
            try:
                if args.in_process:
                    report[kind] = run_worker(kind, args.model, corpora, args.batch_size, args.repeats, args.threads,
                                              time.perf_counter(), log if args.verbose else lambda m: None,
                                              args.precision, args.greedy and kind == "degarble")
                else:
                    report[kind] = _spawn(kind, args, articles_file, log)
            except Exception as e:  # a missing bundle or a broken path: report it, keep the other
                msg = str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
                report[kind] = {"error": msg}
                notes.append(f"{kind} path failed: {msg}")
                status = 1
    d, p = report.get("degarble", {}), report.get("pipeline", {})
    if "error" not in d and p and "error" not in p:
        report["ratio_vs_pipeline"] = {
            op: {k: _ratio(d[op].get(k), p[op].get(k)) for k in corpora} for op in ("detect", "restore")}
        report["ratio_vs_pipeline"]["peak_rss"] = round(d["peak_rss_mb"] / p["peak_rss_mb"], 3)
        report["ratio_vs_pipeline"]["cold_start"] = round(
            d["cold_start"]["cold_start_s"] / p["cold_start"]["cold_start_s"], 3)
    if "error" not in d:
        report["signature"] = (f"degarble-bench|model:{d.get('name')}@{(d.get('bundle_hash') or '')[:8]}"
                               f"|words:{args.words}|articles:{len(clean)}|batch:{args.batch_size}"
                               f"|threads:{d.get('threads')}|precision:{d.get('precision')}"
                               + ("|restore:greedy" if args.greedy else "") + f"|v:{__version__}")
    report["notes"] = notes
    text = json.dumps(report, indent=1)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        log(f"wrote {args.output}")
    else:
        print(text)
    for kind in paths:
        r = report.get(kind, {})
        if "error" in r:
            continue  # said in the notes below
        parts = [f"{op} {k} {r[op][k]['articles_per_s']:.2f}/s" for op in ("detect", "restore") for k in corpora
                 if r[op].get(k)]
        log(f"{kind}: " + ", ".join(parts) + f"; cold start {r['cold_start']['cold_start_s']:.1f} s; "
            f"peak {r['peak_rss_mb']:.0f} MB")
    for n in notes:
        log(n)
    return status


if __name__ == "__main__":
    sys.exit(_worker_main())
