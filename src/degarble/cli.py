"""The ``degarble`` command: one argparse subcommand per verb, each a thin loop over the library.

Verbs: ``spin``, ``detect``, ``restore`` (JSON Lines in, JSON Lines out; see DESIGN.md
"Contracts"), ``info``, and ``eval`` / ``bench`` (their arguments and logic live in
``degarble.evaluate`` and ``degarble.bench``, imported only when used).

Exit status: 0 when every record succeeded, 1 when some records failed (each is reported on
standard error, and to ``--errors FILE`` if given, while all the others are still processed),
2 when the run cannot start or go on (bad flags, missing input file, no model bundle, a verb not
available, an output that cannot be written).

Nothing heavy is imported at start-up: torch and transformers load only inside
``degarble.load`` when ``detect`` or ``restore`` runs, so ``degarble spin`` and ``--help`` are fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import __version__
from .io import INPUT_FORMATS, MAX_TEXT_CHARS, ErrorLog, open_output, read_records, record_id
from .model import GREEDY_HELP
from .models.precision import PRECISION_HELP, PRECISIONS
from .types import Edit

PROG = "degarble"
DEFAULT_BATCH_SIZE = 32

# ANSI styles for the human-readable formats (used only on a terminal, or with --color always).
_FLAG = "\x1b[30;43m"  # flagged word: black on yellow
_DEL = "\x1b[9;31m"  # text taken out: red, struck through
_INS = "\x1b[1;32m"  # text put in: bold green
_SPUN = "\x1b[1;31m"
_CLEAN = "\x1b[1;32m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"


class UsageError(Exception):
    """Stops a verb with a message and exit status 2 (no output file is left behind)."""


# --------------------------------------------------------------------------------------------
# argument parsing


class _Formatter(argparse.HelpFormatter):
    """Wrap one-paragraph descriptions, keep multi-line epilogs (the examples) as written, and show
    a flag's default where it has a meaningful one."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in help_text:
            if action.option_strings or action.nargs in ("?", "*"):
                help_text += " (default: %(default)s)"
        return help_text


def _whole_number(s: str, least: int) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if v < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {v}")
    return v


def _positive_int(s: str) -> int:
    return _whole_number(s, 1)


def _non_negative_int(s: str) -> int:
    return _whole_number(s, 0)


def _probability(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {s!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {v}")
    return v


def _add_input_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input and output")
    g.add_argument(
        "input",
        metavar="IN",
        nargs="?",
        default="-",
        help="JSON Lines file (.jsonl, .jsonl.gz), a plain .txt file (one record), or - for standard input",
    )
    g.add_argument(
        "-o", "--output", metavar="OUT", help="output file (default: standard output); written atomically"
    )
    g.add_argument("--text-field", metavar="F", default="text", help="the input field that holds the text")
    g.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default="auto",
        help="auto: .txt files are one text record, anything else is JSON Lines",
    )
    g.add_argument(
        "--errors",
        metavar="FILE",
        help='also write failed records to FILE as JSON Lines {"line", "id", "error"}',
    )
    g.add_argument(
        "--max-chars",
        metavar="N",
        type=_positive_int,
        default=MAX_TEXT_CHARS,
        help="reject records whose text is longer than N characters",
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        metavar="DIR",
        help="model bundle folder (default: $DEGARBLE_MODEL, else the bundle shipped with degarble)",
    )
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        help=PRECISION_HELP,
    )
    g.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="texts per model call",
    )


def _add_color_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text and diff formats (auto: only on a terminal, and not when NO_COLOR is set)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full ``degarble`` parser (``eval`` and ``bench`` take their arguments from their modules)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=_Formatter,
        description="Detect article-spinner ('spun') text and restore its original wording.",
        epilog=textwrap.dedent(
            """\
            examples:
              degarble spin clean.jsonl --rate heavy --seed 13 -o spun.jsonl
              degarble detect articles.jsonl -o scores.jsonl
              degarble detect story.txt --format text
              degarble restore spun.jsonl --format diff | less -R
              degarble review story.txt --format text -o story.fixed.txt
              degarble info

            Input records are JSON objects, one per line, with a "text" field; every other field passes
            through. Exit status: 0 all records done, 1 some records failed (reported on stderr), 2 usage error.
            Run 'degarble VERB --help' for each verb."""
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="VERB")

    # spin ------------------------------------------------------------------------------------
    p = sub.add_parser(
        "spin",
        help="make synthetic spun text (with the gold edits that undo it)",
        formatter_class=_Formatter,
        description=(
            'Spin each record\'s text the way an article spinner would. Adds "spun", "edits" '
            '([{"start","end","before","after"}], offsets into "spun": applying them to "spun" gives '
            '"text" back exactly) and "spin_signature". Deterministic for a given text, rate, seed and profile.'
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              degarble spin clean.jsonl -o spun.jsonl
              degarble spin clean.jsonl --rate 0.3 --seed 7 -o spun.jsonl
              degarble spin story.txt --rate heavy --format text
              echo '{"id": "a", "text": "The deputy foreign minister spoke."}' | degarble spin -"""
        ),
    )
    _add_input_args(p)
    g = p.add_argument_group("spinning")
    g.add_argument(
        "--rate",
        default=None,
        metavar="R",
        help="share of words to swap: a number in [0, 1] or light, medium, heavy "
        "(default: the profile's own, 0.25 for synonym-swap.v1, as in real spun news)",
    )
    g.add_argument(
        "--seed", type=int, default=13, help="random seed (each text's choices depend on seed and text)"
    )
    g.add_argument(
        "--profile", metavar="NAME", help="spinner profile (default: degarble.spin.DEFAULT_PROFILE)"
    )
    p.add_argument(
        "--format",
        choices=("jsonl", "text"),
        default="jsonl",
        help="jsonl: records with spun text and edits; text: just the spun text",
    )
    p.set_defaults(func=cmd_spin)

    # detect ----------------------------------------------------------------------------------
    p = sub.add_parser(
        "detect",
        help="score how likely each text is spun, and flag the swapped words",
        formatter_class=_Formatter,
        description=(
            'Adds "spun_score" (0..1), "is_spun" (score >= the bundle\'s calibrated threshold) and "spans" '
            '([{"start","end","score"}], offsets into "text") to each record.'
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              degarble detect articles.jsonl -o scores.jsonl
              degarble detect articles.jsonl.gz --errors bad.jsonl -o scores.jsonl
              degarble detect story.txt --format text
              cat articles.jsonl | degarble detect - --threshold 0.8 | head"""
        ),
    )
    _add_input_args(p)
    _add_model_args(p)
    p.add_argument(
        "--threshold",
        type=_probability,
        metavar="T",
        help="decide is_spun at this spun_score instead of the bundle's calibrated threshold",
    )
    p.add_argument(
        "--format",
        choices=("jsonl", "text"),
        default="jsonl",
        help="text: the score and the text with flagged words highlighted ([[word]] when not a terminal)",
    )
    _add_color_arg(p)
    p.set_defaults(func=cmd_detect)

    # restore ---------------------------------------------------------------------------------
    p = sub.add_parser(
        "restore",
        help="restore the original wording of spun text",
        formatter_class=_Formatter,
        description=(
            'Adds "restored" (the text with the suggested original wording) and "edits" '
            '([{"start","end","before","after","score"}], offsets into "text") to each record. '
            "Text the model does not flag comes out unchanged."
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              degarble restore spun.jsonl -o restored.jsonl
              degarble restore story.txt --format text > story.restored.txt
              degarble restore spun.jsonl --format diff | less -R
              degarble restore story.txt --format diff --alternatives 3   # runners-up to choose from
              degarble restore story.txt --format html --alternatives 3 -o review.html
              degarble restore big.jsonl --greedy -o restored.jsonl   # faster, fewer edits"""
        ),
    )
    _add_input_args(p)
    _add_model_args(p)
    p.add_argument(
        "--format",
        choices=("jsonl", "text", "diff", "html"),
        default="jsonl",
        help="text: just the restored text; diff: each change 'before → after', highlighted; html: a page "
        "to open in a browser, every change a menu (suggestion, alternatives, original) and the result to copy",
    )
    p.add_argument("--greedy", action="store_true", help=GREEDY_HELP)
    p.add_argument(
        "--alternatives",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help='also give each edit up to K runner-up suggestions ("alternatives": edits of their own, '
        "best first; the chosen edits stay the same), for an editor to pick from",
    )
    _add_restore_threshold_arg(p)
    _add_min_score_arg(p)
    _add_color_arg(p)
    p.set_defaults(func=cmd_restore)

    # review ----------------------------------------------------------------------------------
    p = sub.add_parser(
        "review",
        help="go through the suggested changes one by one: accept, reject or pick an alternative",
        formatter_class=_Formatter,
        description=(
            "Restore each record, then ask about every suggested change on the terminal (questions on "
            "standard error, answers from standard input): y accept, n reject, a number: that alternative, "
            "e: type your own wording, a: accept the rest of the record, r: reject the rest. Writes the text "
            "with only the accepted changes: \"restored\" and \"edits\" as restore does, plus \"rejected\". "
            "At the end of the answers (EOF) the remaining changes are rejected: nothing changes unasked."
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              degarble review story.txt --format text -o story.fixed.txt
              degarble review articles.jsonl -o reviewed.jsonl --alternatives 5"""
        ),
    )
    _add_input_args(p)
    _add_model_args(p)
    p.add_argument("--format", choices=("jsonl", "text"), default="jsonl",
                   help="jsonl: each record with restored, edits and rejected; text: just the reviewed text")
    p.add_argument("--alternatives", type=_non_negative_int, default=3, metavar="K",
                   help="runner-up suggestions offered per change")
    _add_restore_threshold_arg(p)
    _add_min_score_arg(p)
    _add_color_arg(p)
    p.set_defaults(func=cmd_review)

    # info ------------------------------------------------------------------------------------
    p = sub.add_parser(
        "info",
        help="versions, the model bundle in use, spinner profiles",
        formatter_class=_Formatter,
        description="Show the installed versions, the model bundle that detect/restore would use, and the spinner profiles.",
        epilog="examples:\n  degarble info\n  degarble info --model models/en-small --verify --format json",
    )
    p.add_argument("--model", metavar="DIR", help="model bundle folder (default: as for detect)")
    p.add_argument("--verify", action="store_true", help="also check every bundle file against its sha256")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_info)

    # batch -----------------------------------------------------------------------------------
    _add_batch_parser(sub)

    # eval / bench: arguments come from their own modules, parsed in _run_plugin ----------------
    for verb, helptext in (
        ("eval", "score a model bundle on spun evaluation sets"),
        ("bench", "measure throughput (texts/s, tokens/s)"),
    ):
        p = sub.add_parser(verb, help=helptext, add_help=False)
        p.set_defaults(func=None)
    return parser


def _add_batch_parser(sub: Any) -> None:
    """``degarble batch``: the resumable job over archives (logic in ``degarble.batch``)."""
    p = sub.add_parser(
        "batch",
        help="run detect/restore over an archive: streamed, resumable, on all cores (or Ray)",
        formatter_class=_Formatter,
        description=(
            "Run the model over every record of IN (JSON Lines, optionally .gz; CSV; Parquet; or a folder of "
            ".txt/.html files) and write OUT (JSON Lines, .jsonl.gz or Parquet, by extension) with every input "
            "field plus the contract fields. Bad records go to ERRORS with their id and a reason. Killed at "
            "any point, the same command continues where it stopped (state in OUT.parts/); in the end every "
            "record is in OUT or in ERRORS exactly once."
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              degarble batch archive.jsonl.gz --output scores.parquet
              degarble batch pages/ --output pages.jsonl --errors pages.errors.jsonl --workers 2
              degarble batch news.csv --text-field body --output scored.jsonl
              degarble batch archive.jsonl.gz --output fixed.jsonl --task restore --greedy
              degarble batch archive.parquet --output out.parquet --engine ray --ray-address ray://head:10001

            Exit status: 0 all records written, 1 some records in ERRORS, 2 the job could not run,
            130 interrupted (rerun the same command to go on)."""
        ),
    )
    g = p.add_argument_group("input and output")
    g.add_argument("input", metavar="IN", help="input file or folder")
    g.add_argument("-o", "--output", metavar="OUT", required=True, help="output file (.jsonl, .jsonl.gz or .parquet)")
    g.add_argument("--errors", metavar="ERRORS",
                   help='failed records as JSON Lines {"id", "line", "error"} (default: OUT.errors.jsonl)')
    g.add_argument("--text-field", metavar="F", default="text", help="the input field that holds the text")
    g.add_argument("--input-format", choices=("auto", "jsonl", "csv", "parquet", "dir"), default="auto",
                   help="auto: a folder is dir, .csv is CSV, .parquet/.pq is Parquet, anything else JSON Lines")
    g.add_argument("--max-chars", metavar="N", type=_positive_int, default=MAX_TEXT_CHARS,
                   help="records with a longer text go to ERRORS")
    g = p.add_argument_group("job")
    g.add_argument("--task", choices=("detect", "restore", "validate"), default="detect",
                   help="validate: read and check records only, no model (fast; measures the job itself)")
    g.add_argument("--workers", metavar="N", type=_positive_int,
                   help="worker processes (Ray: actors), each loading the model once (default: number of cores)")
    g.add_argument("--chunk-size", metavar="N", type=_positive_int, default=256,
                   help="records per chunk, the unit of work and of resuming")
    g.add_argument("--restart", action="store_true",
                   help="throw away the state of an earlier run (OUT.parts/) and start over")
    g.add_argument("--keep-parts", action="store_true", help="keep OUT.parts/ after the job finishes")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (it shows only on a terminal anyway)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="ray: run on a Ray cluster with Ray Data (pip install 'degarble[ray]')")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to join (ray://host:10001, host:6379 or auto; default: start a local one)")
    _add_model_args(p)
    p.add_argument("--threshold", type=_probability, metavar="T",
                   help="decide is_spun (detect), and which paragraphs are restored (restore), at this "
                        "spun_score instead of the bundle's threshold")
    p.add_argument("--greedy", action="store_true", help="restore: " + GREEDY_HELP)
    _add_min_score_arg(p)
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    """``degarble batch``: a thin wrapper around :func:`degarble.batch.run_batch`."""
    from .batch import BatchError, run_batch

    try:
        summary = run_batch(
            args.input, args.output, task=args.task, errors=args.errors, workers=args.workers,
            text_field=args.text_field, input_format=args.input_format, model=args.model, precision=args.precision,
            batch_size=args.batch_size, threshold=args.threshold, greedy=args.greedy, min_score=args.min_score,
            chunk_size=args.chunk_size,
            max_chars=args.max_chars, restart=args.restart, keep_parts=args.keep_parts,
            engine=args.engine, ray_address=args.ray_address, progress=False if args.no_progress else None,
        )
    except BatchError as e:
        raise UsageError(str(e)) from e
    except KeyboardInterrupt:
        print(f"{PROG} batch: interrupted; finished chunks are saved, run the same command again to go on",
              file=sys.stderr)
        return 130
    print(summary.format(), file=sys.stderr)
    return 1 if summary.errors else 0


# --------------------------------------------------------------------------------------------
# entry point


def main(argv: list[str] | None = None) -> int:
    """Run the ``degarble`` command line; return the exit status (0, 1 or 2)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return _exit_code(e)
    if argv is None and args.command != "batch":
        # batch writes only to files, and its process pool talks to its workers through pipes: with
        # SIGPIPE at its default, a write to a worker that Ctrl-C already stopped killed the job
        # (status -13) before it could report the saved chunks and exit with 130
        _default_sigpipe()
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command in ("eval", "bench"):
        return _run_plugin(args.command, extra)
    if extra:
        try:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        except SystemExit as e:
            return _exit_code(e)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"{PROG} {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        _silence_stdout()
        return 0
    except OSError as e:
        # The run cannot go on (output folder missing, disk full): say so, no traceback.
        print(f"{PROG} {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    return e.code if isinstance(e.code, int) else 2


def _default_sigpipe() -> None:
    # As sacrebleu does: die silently on SIGPIPE so `degarble detect big.jsonl | head` just stops.
    # Only for a real command line (argv is None); a caller of main([...]) keeps its own handler.
    if hasattr(signal, "SIGPIPE"):
        try:
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        except ValueError:  # not the main thread
            pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _run_plugin(verb: str, argv: list[str]) -> int:
    """Run ``eval`` or ``bench`` from ``degarble.evaluate`` / ``degarble.bench``, imported only now."""
    modname = {"eval": "degarble.evaluate", "bench": "degarble.bench"}[verb]
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name == modname:
            print(f"{PROG} {verb}: not available yet ({modname} is not part of this build)", file=sys.stderr)
        else:
            print(
                f"{PROG} {verb}: needs the Python package {e.name!r}, which is not installed", file=sys.stderr
            )
        return 2
    add = getattr(mod, f"add_{verb}_arguments", None)
    run = getattr(mod, f"run_{verb}_from_args", None)
    if add is None or run is None:
        print(
            f"{PROG} {verb}: not available yet ({modname} has no add_{verb}_arguments/run_{verb}_from_args)",
            file=sys.stderr,
        )
        return 2
    parser = argparse.ArgumentParser(prog=f"{PROG} {verb}", formatter_class=_Formatter)
    add(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return _exit_code(e)
    try:
        return int(run(args) or 0)
    except BrokenPipeError:
        _silence_stdout()
        return 0


# --------------------------------------------------------------------------------------------
# shared record loop


def _check_input(path: str) -> None:
    # exists() rather than is_file(): /dev/stdin and named pipes are fine inputs
    if path != "-" and (not Path(path).exists() or Path(path).is_dir()):
        what = "is a folder" if Path(path).is_dir() else "not found"
        raise UsageError(f"input file {path} {what}")


def _accepts(fn: Callable, name: str) -> bool:
    """Does ``fn`` take a keyword argument ``name`` (or ``**kwargs``)?"""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _as_dict(result: Any) -> dict:
    if isinstance(result, dict):
        return dict(result)
    to_dict = getattr(result, "to_dict", None)
    if to_dict is None:
        raise TypeError(f"model returned {type(result).__name__}, which has no to_dict()")
    return to_dict()


def _map_batch(fn: Callable[[list[str]], Iterable[Any]], texts: list[str]) -> list[Any]:
    """``fn(texts)``; if that fails, each text alone, so one bad text fails only its own record.

    Returns one result per text: the model's output, or the exception it raised for that text.
    NotImplementedError is not a per-record failure (the model cannot do this at all): it propagates.
    """

    def call(chunk: list[str]) -> list[Any]:
        out = list(fn(chunk))
        if len(out) != len(chunk):
            raise RuntimeError(f"model returned {len(out)} results for {len(chunk)} texts")
        return out

    try:
        return call(texts)
    except NotImplementedError:
        raise
    except Exception as e:
        if len(texts) == 1:
            return [e]
    results: list[Any] = []
    for t in texts:
        try:
            results.append(call([t])[0])
        except NotImplementedError:
            raise
        except Exception as e:
            results.append(e)
    return results


def _run_records(
    args: argparse.Namespace,
    model_fn: Callable[[list[str]], Iterable[Any]],
    empty_result: Callable[[str], Any] | None,
    render: Callable[[Any, int, dict, Any], None],
    batch_size: int,
    begin: Callable[[Any], None] | None = None,
) -> int:
    """Read records, run ``model_fn`` on batches of texts, ``render`` each result, report failures.

    ``empty_result(text)``, if given, answers blank texts without calling the model. ``render(out,
    line, record, result)`` writes one record's output; ``begin(out)``, if given, writes what comes
    before the first (a page's head).
    """
    _check_input(args.input)
    errors = ErrorLog(args.errors, prog=PROG)
    with errors, open_output(args.output) as out:
        if begin is not None:
            begin(out)
        batch: list[tuple[int, dict]] = []

        def flush() -> None:
            texts = [rec[args.text_field] for _, rec in batch]
            results: list[Any] = [None] * len(texts)
            todo = []
            for i, t in enumerate(texts):
                if empty_result is not None and not t.strip():
                    results[i] = empty_result(t)
                else:
                    todo.append(i)
            if todo:
                for i, r in zip(todo, _map_batch(model_fn, [texts[i] for i in todo]), strict=True):
                    results[i] = r
            for (line, rec), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    errors.add(line, record_id(rec), f"model failed: {type(result).__name__}: {result}")
                    continue
                try:
                    render(out, line, rec, result)
                except (TypeError, ValueError, KeyError, AttributeError) as e:
                    errors.add(line, record_id(rec), f"bad model output: {type(e).__name__}: {e}")
            out.flush()
            batch.clear()

        for line, rec, err in read_records(
            args.input, args.text_field, input_format=args.input_format, max_chars=args.max_chars
        ):
            if err is not None:
                errors.report(err)
                continue
            batch.append((line, rec))
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    return errors.exit_code()


def _load_model(args: argparse.Namespace) -> Any:
    import degarble

    load = getattr(degarble, "load", None)
    if load is None:
        raise UsageError("model loading is not available in this build (degarble.load is missing)")
    try:
        return load(args.model, args.precision)
    except Exception as e:
        # A missing or broken bundle (BundleError), missing torch, unreadable weights: the run
        # cannot start, which is a setup problem rather than a per-record failure.
        from .bundle import BundleError

        if isinstance(e, BundleError):
            raise UsageError(str(e)) from e
        raise UsageError(f"cannot load the model: {type(e).__name__}: {e}") from e


def _use_color(choice: str, out: Any) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    return out.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _header(line: int, rec: dict) -> str:
    rid = record_id(rec)
    return f"line {line}" + (f" (id={rid})" if rid is not None else "")


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


# --------------------------------------------------------------------------------------------
# spin


def cmd_spin(args: argparse.Namespace) -> int:
    """``degarble spin``: add "spun", "edits" and "spin_signature" to each record."""
    try:
        import degarble.spin as spin_module
        from degarble.spin import DEFAULT_PROFILE, PROFILES, RATES, spin
    except ImportError as e:
        raise UsageError(f"the spinner is not available yet ({e})") from e
    rate_s = str(args.rate).strip().lower()
    if args.rate is None:
        rate = None  # the profile's default rate (the library decides, one place for it)
    elif rate_s in RATES:
        rate = float(RATES[rate_s])
    else:
        try:
            rate = float(rate_s)
        except ValueError:
            raise UsageError(
                f"--rate must be a number in [0, 1] or one of {', '.join(RATES)}; got {args.rate!r}"
            ) from None
        if not 0.0 <= rate <= 1.0:
            raise UsageError(f"--rate must be between 0 and 1, got {rate}")
    profile = args.profile or DEFAULT_PROFILE
    if profile not in PROFILES and profile not in getattr(spin_module, "RETIRED_PROFILES", {}):
        raise UsageError(f"unknown --profile {profile!r}; choose one of {', '.join(sorted(PROFILES))}")

    def spin_batch(texts: list[str]) -> list[Any]:
        return [spin(t, rate=rate, seed=args.seed, profile=profile) for t in texts]

    def render(out, line: int, rec: dict, spun: Any) -> None:
        if args.format == "text":
            out.write(_ensure_newline(spun.text))
            return
        out.write_record(
            {
                **rec,
                "spun": spun.text,
                "edits": [e.to_dict() for e in spun.edits],
                "spin_signature": spun.signature,
            }
        )

    # If one text in a batch makes spin() raise, the batch is redone text by text (spinning is
    # deterministic, so the others come out the same). Blank texts go through spin() too, so
    # their records carry the signature.
    return _run_records(args, spin_batch, None, render, DEFAULT_BATCH_SIZE)


# --------------------------------------------------------------------------------------------
# detect


def _highlight_spans(text: str, spans: list[dict], color: bool) -> str:
    out = []
    pos = 0
    for s in sorted(spans, key=lambda s: (s["start"], s["end"])):
        start, end = int(s["start"]), int(s["end"])
        if start < pos or end > len(text) or start >= end:
            continue  # overlapping or out of range: leave unmarked rather than garble the text
        out.append(text[pos:start])
        word = text[start:end]
        out.append(f"{_FLAG}{word}{_RESET}" if color else f"[[{word}]]")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def cmd_detect(args: argparse.Namespace) -> int:
    """``degarble detect``: add "spun_score", "is_spun" and "spans" to each record."""
    from .types import Detection

    model = _load_model(args)
    kwargs: dict[str, Any] = {}
    if _accepts(model.detect, "batch_size"):
        kwargs["batch_size"] = args.batch_size
    # Pass the threshold to a model that takes one; otherwise decide is_spun here from the score.
    model_takes_threshold = args.threshold is not None and _accepts(model.detect, "threshold")
    if model_takes_threshold:
        kwargs["threshold"] = args.threshold
    threshold = args.threshold if args.threshold is not None else getattr(model, "threshold", None)

    def detect(texts: list[str]) -> list[Any]:
        return model.detect(texts, **kwargs)

    def render(out, line: int, rec: dict, det: Any) -> None:
        d = _as_dict(det)
        result = {
            "spun_score": float(d["spun_score"]),
            "is_spun": bool(d["is_spun"]),
            "spans": [_as_dict(s) for s in d["spans"]],
        }
        if args.threshold is not None and not model_takes_threshold:
            result["is_spun"] = result["spun_score"] >= args.threshold
        if args.format == "jsonl":
            out.write_record({**rec, **d, **result})
            return
        color = _use_color(args.color, out)
        verdict = "SPUN" if result["is_spun"] else "clean"
        if color:
            verdict = f"{_SPUN if result['is_spun'] else _CLEAN}{verdict}{_RESET}"
        thr = f" (threshold {threshold:.2f})" if isinstance(threshold, (int, float)) else ""
        out.write(
            f"## {_header(line, rec)}: spun_score {result['spun_score']:.3f}{thr} → {verdict}, "
            f"{len(result['spans'])} flagged\n"
        )
        out.write(_ensure_newline(_highlight_spans(rec[args.text_field], result["spans"], color)) + "\n")

    return _run_records(args, detect, lambda t: Detection(0.0, False, []), render, args.batch_size)


# --------------------------------------------------------------------------------------------
# restore


_NO_RESTORER = (
    "this model bundle has no restorer (it can only detect). Use 'degarble detect', or pass "
    "--model with a bundle that includes a restorer."
)


def _diff_inline(text: str, edits: list[dict], color: bool) -> str:
    out = []
    pos = 0
    for e in sorted(edits, key=lambda e: (e["start"], e["end"])):
        start, end = int(e["start"]), int(e["end"])
        if start < pos or end > len(text):
            continue
        out.append(text[pos:start])
        before, after = text[start:end], e["after"]
        if color:
            out.append(
                (f"{_DEL}{before}{_RESET}" if before else "") + (f"{_INS}{after}{_RESET}" if after else "")
            )
        else:
            out.append((f"[-{before}-]" if before else "") + (f"{{+{after}+}}" if after else ""))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _restorer_call(args: argparse.Namespace) -> tuple[Any, Callable, dict[str, Any]]:
    """The model, its restore() and the keyword arguments that restore and review pass it,
    checked against what it accepts (a usage error for an option it lacks)."""
    model = _load_model(args)
    restore_fn = getattr(model, "restore", None)
    if not callable(restore_fn) or getattr(model, "has_restorer", True) is False:
        raise UsageError(_NO_RESTORER)
    kwargs: dict[str, Any] = {}
    if _accepts(restore_fn, "batch_size"):
        kwargs["batch_size"] = args.batch_size
    if getattr(args, "greedy", False):
        if not _accepts(restore_fn, "greedy"):
            raise UsageError("--greedy: this model's restore() has no greedy option (it cannot skip candidate ranking)")
        kwargs["greedy"] = True
    if args.alternatives:
        if kwargs.get("greedy"):
            raise UsageError("--alternatives come from candidate ranking, which --greedy skips; use one of them")
        if not _accepts(restore_fn, "alternatives"):
            raise UsageError("--alternatives: this model's restore() cannot suggest alternatives")
        kwargs["alternatives"] = args.alternatives
    if args.min_score is not None:
        if not _accepts(restore_fn, "min_score"):
            raise UsageError("--min-score: this model's restore() has no min_score option")
        kwargs["min_score"] = args.min_score
    if getattr(args, "threshold", None) is not None:
        if not _accepts(restore_fn, "threshold"):
            raise UsageError("--threshold: this model's restore() has no threshold option")
        kwargs["threshold"] = args.threshold
    return model, restore_fn, kwargs


def _run_restore_records(args: argparse.Namespace, restore: Callable, render: Callable,
                         begin: Callable | None = None) -> int:
    """:func:`_run_records` for restore and review: blank texts restored as themselves, and a
    model that turns out to have no restorer is a usage error, not a failure per record."""
    from .types import Restoration

    try:
        return _run_records(args, restore, lambda t: Restoration(t, []), render, args.batch_size, begin)
    except NotImplementedError as e:
        raise UsageError(f"{_NO_RESTORER} ({e})" if str(e) else _NO_RESTORER) from e


def _add_restore_threshold_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=_probability,
        metavar="T",
        help="restore in paragraphs whose spun_score reaches T (0-1) instead of the bundle's calibrated "
        "threshold; lower brings suggestions to paragraphs the detector is less sure of, and to more clean ones",
    )


def _add_min_score_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-score",
        type=_probability,
        metavar="P",
        help="restore: the confidence (0-1, the model's estimate that a change is right) a change needs; "
        "higher makes fewer, surer changes (unattended rewriting), lower more, more of them wrong (review) "
        "(default: the bundle's calibrated value)",
    )


def cmd_restore(args: argparse.Namespace) -> int:
    """``degarble restore``: add "restored" and "edits" to each record."""
    model, restore_fn, kwargs = _restorer_call(args)
    # the page also marks the words the detector flagged (in paragraphs it judged spun) that no
    # change covers; a model that takes them restores from the same detections, in one pass
    detect_fn = getattr(model, "detect", None) if args.format == "html" else None
    takes_detections = detect_fn is not None and _accepts(restore_fn, "detections")

    def restore(texts: list[str]) -> list[Any]:
        if detect_fn is None:
            return restore_fn(texts, **kwargs)
        # the page's flags come from the paragraphs judged spun at the threshold the changes used
        at = {"threshold": kwargs["threshold"]} if "threshold" in kwargs and _accepts(detect_fn, "threshold") else {}
        detections = detect_fn(texts, **at)
        given = {"detections": detections} if takes_detections else {}
        return list(zip(restore_fn(texts, **kwargs, **given), detections))

    def render(out, line: int, rec: dict, res: Any) -> None:
        flagged = []
        if isinstance(res, tuple):
            res, det = res
            spun = [(p["start"], p["end"]) for p in getattr(det, "paragraphs", []) if p.get("is_spun")]
            flagged = [sp for sp in det.spans if any(a <= sp.start < b for a, b in spun)]
        d = _as_dict(res)
        result = {"restored": d.get("restored", d.get("text")), "edits": [_as_dict(e) for e in d["edits"]]}
        if not isinstance(result["restored"], str):
            raise TypeError("model result has no restored text")
        if args.format == "html":
            from .review_page import record_block

            out.write(record_block(_header(line, rec), rec[args.text_field], [Edit.from_dict(e) for e in result["edits"]],
                                   flagged))
        elif args.format == "jsonl":
            d.pop("text", None)  # a Restoration-shaped dict: its "text" is ours under "restored"
            out.write_record({**rec, **d, **result})
        elif args.format == "text":
            out.write(_ensure_newline(result["restored"]))
        else:
            color = _use_color(args.color, out)
            n = len(result["edits"])
            out.write(f"## {_header(line, rec)}: {n} change{'s' if n != 1 else ''}\n")
            for e in sorted(result["edits"], key=lambda e: e["start"]):
                score = f"  ({float(e['score']):.2f})" if e.get("score") is not None else ""
                before, after = e["before"].strip(), _shown(e["after"])
                if color:
                    change = f"{_DEL}{before}{_RESET} → {_INS}{after}{_RESET}"
                else:
                    change = f"{before} → {after}"
                out.write(
                    f"  {e['start']}-{e['end']}  {change}{_DIM if color else ''}{score}{_RESET if color else ''}\n"
                )
                for k, alt in enumerate(e.get("alternatives") or (), 1):
                    out.write(f"      or {k}: {_change_text(alt['before'], alt['after'], alt.get('score'))}\n")
            out.write(_ensure_newline(_diff_inline(rec[args.text_field], result["edits"], color)) + "\n")

    def begin(out) -> None:
        if args.format == "html":
            from .review_page import HEAD

            out.write(HEAD)

    return _run_restore_records(args, restore, render, begin)


# --------------------------------------------------------------------------------------------
# review

_REVIEW_HELP = ("y accept, n reject, a number: that alternative, e: type your own wording, "
                "a: accept this and the rest of the record, r: reject this and the rest")


def _shown(after: str) -> str:
    return after if after else "(delete)"


def _change_text(before: str, after: str, score: float | None) -> str:
    """``before → after (score)`` as the diff listing and the review show a change."""
    return f"{before.strip()} → {_shown(after)}" + (f"  ({float(score):.2f})" if score is not None else "")


def _context(text: str, edit: Edit, color: bool, width: int = 70) -> str:
    """The edit in its surroundings on one line: about ``width`` characters either side."""
    a = text.rfind(" ", 0, max(0, edit.start - width)) + 1 if edit.start > width else 0
    b = text.find(" ", min(len(text), edit.end + width))
    b = len(text) if b < 0 else b
    marked = _diff_inline(text[a:b], [{"start": edit.start - a, "end": edit.end - a, "after": edit.after}], color)
    return ("…" if a else "") + " ".join(marked.split()) + ("…" if b < len(text) else "")


def review_edits(text: str, edits: list[Edit], ask: Callable[[str], str | None], tell: Callable[[str], None],
                 color: bool = False) -> tuple[list[Edit], list[Edit]]:
    """Ask about each edit in turn; return (accepted, rejected).

    ``ask(prompt)`` returns the answer, or ``None`` when there are no more answers (the edit and all
    after it are rejected). An accepted alternative or typed wording replaces the edit's ``after``
    (its own span for an alternative); accepted edits carry no alternatives.
    """
    accepted: list[Edit] = []
    rejected: list[Edit] = []
    rest = None  # "a" or "r": the answer for the rest of the record
    for k, e in enumerate(edits, 1):
        if rest is None:
            tell(f"[{k}/{len(edits)}] {_context(text, e, color)}")
            tell(f"    {_change_text(e.before, e.after, e.score)}")
            for j, alt in enumerate(e.alternatives, 1):
                tell(f"    {j}: {_change_text(alt.before, alt.after, alt.score)}")
        numbers = f"/1-{len(e.alternatives)}" if len(e.alternatives) > 1 else "/1" if e.alternatives else ""
        choice = rest
        while choice is None:
            answer = ask(f"  accept? [y/n{numbers}/e/a/r, ? for help] ")
            if answer is None:
                tell("  (no more answers: this change and the rest are rejected)")
                choice = rest = "r"
                break
            answer = answer.strip().lower()
            if answer in ("y", "n", "a", "r"):
                choice = answer
            elif answer.isdigit() and 1 <= int(answer) <= len(e.alternatives):
                choice = answer
            elif answer == "e":
                typed = ask(f"  replace {e.before!r} with: ")
                if typed is None:
                    choice = rest = "r"
                    break
                accepted.append(Edit(e.start, e.end, e.before, typed.rstrip("\n"), None))
                choice = "done"
            else:
                tell(f"  {_REVIEW_HELP}")
        if choice in ("a", "r"):
            rest = choice
            choice = "y" if choice == "a" else "n"
        if choice == "y":
            accepted.append(dataclasses.replace(e, alternatives=()))
        elif choice == "n":
            rejected.append(dataclasses.replace(e, alternatives=()))
        elif choice.isdigit():
            accepted.append(dataclasses.replace(e.alternatives[int(choice) - 1], alternatives=()))
    return accepted, rejected


def cmd_review(args: argparse.Namespace) -> int:
    """``degarble review``: restore, then accept or reject each change on the terminal."""
    from .edits import apply_edits

    if args.input == "-":
        raise UsageError("review reads your answers from standard input: give the text as a file (IN)")
    _, restore_fn, kwargs = _restorer_call(args)
    color = _use_color(args.color, sys.stderr)

    def restore(texts: list[str]) -> list[Any]:
        return restore_fn(texts, **kwargs)

    def ask(prompt: str) -> str | None:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
        return line if line else None

    def tell(message: str) -> None:
        print(message, file=sys.stderr)

    def render(out, line: int, rec: dict, res: Any) -> None:
        text = rec[args.text_field]
        edits = sorted(res.edits, key=lambda e: e.start)
        n = len(edits)
        tell(f"## {_header(line, rec)}: {n} suggested change{'s' if n != 1 else ''}")
        accepted, rejected = review_edits(text, edits, ask, tell, color)
        restored = apply_edits(text, accepted)
        if args.format == "text":
            out.write(_ensure_newline(restored))
        else:
            out.write_record({**rec, "restored": restored, "edits": [e.to_dict() for e in accepted],
                              "rejected": [e.to_dict() for e in rejected]})

    return _run_restore_records(args, restore, render)


# --------------------------------------------------------------------------------------------
# info


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _spinner_info() -> dict:
    try:
        from degarble.spin import DEFAULT_PROFILE, PROFILES, RATES, spin
    except ImportError as e:
        return {"available": False, "error": str(e)}
    profiles = {}
    for name in sorted(PROFILES):
        try:
            sig = spin(
                "The minister thanked the assembly.", rate=RATES["medium"], seed=13, profile=name
            ).signature
        except Exception as e:  # a broken profile should not hide the others
            sig = f"<error: {type(e).__name__}: {e}>"
        profiles[name] = sig
    return {"available": True, "default_profile": DEFAULT_PROFILE, "rates": dict(RATES), "profiles": profiles}


def cmd_info(args: argparse.Namespace) -> int:
    """``degarble info``: versions, the bundle in use and the spinner profiles."""
    import json
    import platform

    from .bundle import BundleError, manifest_summary, read_manifest, resolve_bundle_path, verify

    info: dict[str, Any] = {
        "versions": {
            "degarble": __version__,
            "python": platform.python_version(),
            "torch": _dist_version("torch"),
            "transformers": _dist_version("transformers"),
        }
    }
    status = 0
    try:
        path = resolve_bundle_path(args.model)
        manifest = verify(path) if args.verify else read_manifest(path)
        info["bundle"] = manifest_summary(manifest)
        if args.verify:
            info["bundle"]["verified"] = True
    except BundleError as e:
        if args.model is not None and not args.verify:
            raise UsageError(str(e)) from e
        info["bundle"] = {"error": str(e)}
        status = 1 if args.verify else 0
    info["spinner"] = _spinner_info()

    if args.format == "json":
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return status
    v = info["versions"]
    print(
        f"degarble {v['degarble']}  (python {v['python']}, torch {v['torch'] or 'not installed'}, "
        f"transformers {v['transformers'] or 'not installed'})"
    )
    b = info["bundle"]
    if "error" in b:
        print("bundle: none\n  " + b["error"].replace("\n", "\n  "))
    else:
        print(f"bundle: {b['name']}@{b['hash']}  ({b['path']})")
        print(
            f"  format {b['format']}, made by degarble {b['degarble_version']}, "
            f"{b['files']} files, {(b['size_bytes'] or 0) / 1e6:.1f} MB"
            + ("  [verified]" if b.get("verified") else "")
        )
        print(f"  detector: {json.dumps(b['detector'], ensure_ascii=False)}")
        print(f"  restorer: {json.dumps(b['restorer'], ensure_ascii=False) if b['restorer'] else 'none'}")
        if b["spin_signature"]:
            print(f"  trained on: {b['spin_signature']}")
        if b["scores"]:
            print(f"  scores: {json.dumps(b['scores'], ensure_ascii=False)}")
    s = info["spinner"]
    if not s["available"]:
        print(f"spinner: not available ({s['error']})")
    else:
        rates = ", ".join(f"{k}={val}" for k, val in s["rates"].items())
        print(f"spinner: default profile {s['default_profile']}; rates {rates}")
        for name, sig in s["profiles"].items():
            print(f"  {name}: {sig}")
    return status
