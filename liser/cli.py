"""liser: predict the emotion of audio files with trained students; export a student to ONNX.

    liser predict talk.wav recordings/ --student outputs/students/ravdess/no-dstl --out results.csv
    liser export --student outputs/students/ravdess/no-dstl/fold0/student.safetensors --out ravdess-fold0.onnx

Feature and windowing settings come from params.yaml (--params), the ones the students
were trained and evaluated with.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from liser.logs import configure_logging
from liser.params import ParamsError, load_params

if TYPE_CHECKING:  # torch, ONNX and pandas load when a command runs, so that `liser --help` answers at once
    from liser.predict import Prediction, Predictor

__all__ = ["main"]

PREDICT_HELP = """\
Each file gets the evaluation stage's sliding-window prediction: 3 s windows every
evaluate.stride_s (0.1 s, the paper's), supervised logits averaged; with a folder of folds,
the folds' softmax probabilities averaged. A file that cannot be used (missing, unreadable,
digital silence, under 0.5 s) is reported with its problem and the others go on.

On long files the windows dominate the time: an exported model (`liser export`, then
--student model.onnx) runs them about 3x faster in ONNX Runtime, and --stride 0.5 scores
5x fewer windows than 0.1 s (figures: benchmarks/inference.py).

Exit status: 0 when at least one file was predicted, 1 when none was, 2 for a usage error.
"""


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="liser", description=__doc__, formatter_class=raw)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict", help="emotion of audio files", description=PREDICT_HELP, formatter_class=raw
    )
    predict.add_argument("paths", nargs="+", type=Path, help="audio files (wav, flac, mp3) or folders of them")
    predict.add_argument(
        "--student",
        type=Path,
        required=True,
        help="a student.safetensors, an exported .onnx, or a folder of fold<k>/student.safetensors (their ensemble)",
    )
    predict.add_argument("--out", type=Path, help="also write the results to a .csv or .json file")
    predict.add_argument("--params", type=Path, default=Path("params.yaml"))
    predict.add_argument(
        "--stride",
        type=float,
        metavar="SECONDS",
        help="window stride (default: evaluate.stride_s, 0.1 s); larger is faster on long files "
        "but no longer the evaluation stage's procedure",
    )

    export = commands.add_parser("export", help="a student's supervised path as ONNX, with a model card")
    export.add_argument("--student", type=Path, required=True, help="one fold's student.safetensors")
    export.add_argument("--out", type=Path, required=True, help="model.onnx; model.json and model.md go beside it")
    export.add_argument("--params", type=Path, default=Path("params.yaml"))
    export.add_argument(
        "--metrics",
        type=Path,
        help="the configuration's metrics JSON for the model card "
        "(default: metrics/students/<corpus>/<config>.json when there)",
    )
    return parser


def _note(prediction: Prediction) -> str:
    return f"ERROR: {prediction.error}" if prediction.error else "; ".join(prediction.warnings)


def _table(predictions: Sequence[Prediction]) -> str:
    """One line per file: its emotion, that emotion's probability, its length, and warnings or error."""
    rows = [("file", "emotion", "p", "seconds", "note")]
    for p in predictions:
        if p.error:
            rows.append((str(p.path), "-", "-", "-", _note(p)))
        else:
            rows.append((str(p.path), p.emotion, f"{p.probabilities.max():.3f}", f"{p.seconds:.1f}", _note(p)))
    widths = [max(map(len, column)) for column in zip(*rows)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _flat(record: dict) -> dict:
    row = {"path": record["path"], "emotion": record["emotion"], "seconds": record["seconds"]}
    for kind, prefix in (("probabilities", "probability"), ("logits", "logit")):
        for name, value in (record[kind] or {}).items():
            row[f"{prefix}_{name}"] = value
    row["warnings"] = "; ".join(record["warnings"])
    row["error"] = record["error"]
    return row


def _check_writable(out: Path) -> None:
    """Before any file is scored: ``out`` must be a .csv or .json file that can be written."""
    if out.suffix not in (".csv", ".json"):
        raise ValueError(f"--out: a .csv or .json file (got {out})")
    if out.is_dir():
        raise ValueError(f"--out: {out} is a folder; give a file name such as {out / 'results.csv'}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"--out: {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ValueError(f"--out: {out} cannot be written (permission denied)")


def _write_results(out: Path, predictor: Predictor, predictions: Sequence[Prediction]) -> None:
    import pandas as pd

    from liser.files import write_csv, write_json

    records = [p.as_dict(predictor.classes) for p in predictions]
    if out.suffix == ".json":
        write_json(
            out,
            {
                "students": [str(s) for s in predictor.sources],
                "classes": predictor.classes,
                "stride_s": round(predictor.stride_s, 9),
                "predictions": records,
            },
        )
    else:
        write_csv(out, pd.DataFrame([_flat(r) for r in records]))


def _predict(args: argparse.Namespace) -> int:
    from liser.predict import Predictor, find_audio
    from liser.runtime import keep_freed_buffers

    if args.out:
        _check_writable(args.out)
    keep_freed_buffers()
    predictor = Predictor.load(args.student, load_params(args.params), stride_s=args.stride)
    files = find_audio(args.paths)
    if not files:
        print("liser: no audio files (.wav, .flac, .mp3) found", file=sys.stderr)
        return 1
    predictions = [predictor.predict(path) for path in files]
    print(_table(predictions))
    if args.out:
        try:
            _write_results(args.out, predictor, predictions)
        except OSError as problem:  # the table above still has every result
            raise ValueError(f"--out: {args.out} could not be written: {problem.strerror or problem}") from None
    failed = sum(p.error is not None for p in predictions)
    if failed:
        print(f"{failed} of {len(predictions)} files could not be used", file=sys.stderr)
    return 1 if failed == len(predictions) else 0


def _export(args: argparse.Namespace) -> int:
    from liser.export import export_student

    card = export_student(args.student, args.out, load_params(args.params), metrics=args.metrics)
    print(
        f"{args.out}: {len(card['classes'])} classes ({', '.join(card['classes'])}), "
        f"{card['parameters']['exported']:,} parameters, ONNX Runtime vs PyTorch max |diff| "
        f"{card['export']['parity_max_abs_diff']:.1e}; card in {args.out.with_suffix('.md')}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    from liser.export import ParityError

    try:
        return _predict(args) if args.command == "predict" else _export(args)
    except (ValueError, ParamsError, FileNotFoundError) as problem:
        print(f"liser {args.command}: error: {problem}", file=sys.stderr)
        return 2
    except ParityError as problem:
        print(f"liser export: {problem}", file=sys.stderr)
        return 1
