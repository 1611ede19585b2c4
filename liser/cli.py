"""liser: predict the emotion of audio files with trained students, follow it over a stream, export a student.

    liser predict talk.wav recordings/ --student outputs/students/ravdess/no-dstl --out results.csv
    liser stream talk.wav --student outputs/students/ravdess/no-dstl/fold0/student.safetensors
    liser export --student outputs/students/ravdess/no-dstl/fold0/student.safetensors --out ravdess-fold0.onnx
    liser export --student outputs/students/ravdess/no-dstl/fold0/student.safetensors --web page/ --int8

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

STREAM_HELP = """\
The emotion of audio as it arrives: one distribution per hop, each from the last 3 s window,
the first once 3 s have arrived; memory stays the same however long the stream runs. When
the stream ends, the whole stream's distribution: the windows' logits averaged, as
`liser predict --stride HOP` gives it.

SOURCE is an audio file (wav, flac, mp3; any rate, mono or not, as predict reads it), or -
for raw PCM on standard input: signed 16-bit little-endian (s16le), 16 kHz, mono, no header.
For example:
  arecord -q -f S16_LE -r 16000 -c 1 -t raw | liser stream - --student model.onnx
  ffmpeg -loglevel error -i talk.mp3 -f s16le -ac 1 -ar 16000 - | liser stream - --student ...

Exit status: 0 when the stream was scored, 1 when it could not be used (unreadable,
digital silence, under 0.5 s), 2 for a usage error.
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

    stream = commands.add_parser(
        "stream",
        help="emotion over time of a file or of raw PCM on standard input, as it arrives",
        description=STREAM_HELP,
        formatter_class=raw,
    )
    stream.add_argument(
        "source", help="an audio file, or - for raw PCM on standard input (s16le, 16 kHz, mono)", metavar="SOURCE"
    )
    stream.add_argument(
        "--student",
        type=Path,
        required=True,
        help="a student.safetensors, a log-Mel .onnx export (float32 or int8), or a folder of fold<k>/ (ensemble)",
    )
    stream.add_argument(
        "--hop", type=float, default=0.5, metavar="SECONDS", help="one distribution every SECONDS (default 0.5)"
    )
    stream.add_argument("--jsonl", action="store_true", help="one JSON object per line instead of a table")
    stream.add_argument("--params", type=Path, default=Path("params.yaml"))

    export = commands.add_parser(
        "export", help="a student as ONNX (log-Mel or waveform input, float32 or int8), with a model card"
    )
    export.add_argument("--student", type=Path, required=True, help="one fold's student.safetensors")
    where = export.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="model.onnx; model.json and model.md go beside it")
    where.add_argument(
        "--web",
        type=Path,
        metavar="DIR",
        help="a static page in DIR that runs the waveform model (float32, or int8 with --int8) in the browser "
        "with ONNX Runtime Web, offline; serve DIR with any static server",
    )
    export.add_argument(
        "--waveform",
        action="store_true",
        help="16 kHz mono samples in, the utterance's probabilities (and each window's) out: the front end "
        "(STFT, mel filterbank, log) and the windowing are inside the graph",
    )
    export.add_argument(
        "--int8",
        action="store_true",
        help="quantise the student to int8 (ONNX Runtime static quantisation), calibrated on the training crops of "
        "the checkpoint's corpus and fold; the card says what it costs on the fold's test speakers",
    )
    export.add_argument(
        "--data",
        type=Path,
        help="with --int8: the pipeline's data folder, holding manifests/, folds/ and features/ (default: data)",
    )
    export.add_argument(
        "--onnxruntime-web",
        type=Path,
        metavar="DIR",
        help="with --web: the onnxruntime-web npm package to copy from (default: web/node_modules/onnxruntime-web "
        "of the LiSER project, installed by ./run.sh)",
    )
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
    params = load_params(args.params)
    predictor = Predictor.load(
        args.student, params.features, params.evaluate, device=params.train.device, stride_s=args.stride
    )
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
    from liser.deploy.web import DEFAULT_ONNXRUNTIME_WEB, export_web
    from liser.export import export_student

    params = load_params(args.params)
    if args.onnxruntime_web and not args.web:
        raise ValueError("--onnxruntime-web goes with --web")
    if args.data and not args.int8:
        raise ValueError("--data goes with --int8 (the training crops it calibrates on)")
    options = {"metrics": args.metrics, "int8": args.int8, "data": args.data or Path("data")}
    if args.web:
        card, version = export_web(
            args.student,
            args.web,
            params.features,
            params.evaluate,
            onnxruntime_web=args.onnxruntime_web or DEFAULT_ONNXRUNTIME_WEB,
            **options,
        )
        model = args.web / "model.onnx"
    else:
        card = export_student(
            args.student, args.out, params.features, params.evaluate, waveform=args.waveform, **options
        )
        model = args.out
    export = card["export"]
    print(
        f"{model}: {card['kind']} input, {card['precision']}, {model.stat().st_size:,} bytes; "
        f"{len(card['classes'])} classes ({', '.join(card['classes'])}), {card['parameters']['exported']:,} "
        f"parameters; ONNX Runtime vs PyTorch max |diff| {export['parity_max_abs_diff']:.1e}"
        + (
            f", waveform graph vs {export['waveform_parity_reference']} {export['waveform_parity_max_abs_diff']:.1e}"
            if "waveform_parity_max_abs_diff" in export
            else ""
        )
    )
    if card["quantization"]:
        test = card["quantization"]["test"]
        print(
            f"int8 vs float32 on {card['training']['corpus']} fold {card['training']['fold']}'s "
            f"{test['test_utterances']} test utterances: UAR {test['int8']['uar']:.3f} vs {test['float32']['uar']:.3f} "
            f"({test['uar_drop_points']:+.2f} points drop)"
        )
    print(f"card in {model.with_suffix('.md')}")
    if args.web:
        print(
            f"page in {args.web} (ONNX Runtime Web {version}); serve it, e.g. "
            f"python3 -m http.server --directory {args.web} --bind 127.0.0.1 8000, and open http://127.0.0.1:8000/"
        )
    return 0


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.rjust(w) if i != 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths)))


def _stream(args: argparse.Namespace) -> int:
    import json

    from liser.corpora.audio_check import UnusableAudio
    from liser.deploy.stream import EmotionStream, StreamResult, file_blocks, pcm_blocks, stream_emotions
    from liser.predict import Predictor

    params = load_params(args.params)
    features = params.features
    from_stdin = args.source == "-"
    source = "standard input" if from_stdin else args.source
    if not from_stdin and not Path(args.source).is_file():
        raise ValueError(f"{args.source}: no such file")
    predictor = Predictor.load(args.student, features, params.evaluate, device=params.train.device)
    stream = EmotionStream(predictor.students, features, args.hop)
    classes = predictor.classes
    widths = [16, max(map(len, ["emotion", *classes])), *(max(5, len(name)) for name in classes)]
    try:
        if from_stdin:
            blocks = pcm_blocks(sys.stdin.buffer, features.sample_rate, min(args.hop, 0.1))
        else:
            blocks, warnings = file_blocks(Path(args.source), features.sample_rate)
            for warning in warnings:
                print(f"liser stream: {source}: {warning}", file=sys.stderr)
        if not args.jsonl:
            print(_row(["seconds", "emotion", *classes], widths), flush=True)
        for item in stream_emotions(stream, blocks):
            whole = isinstance(item, StreamResult)
            start, end = (0.0, item.seconds) if whole else (item.start_s, item.end_s)
            emotion = classes[int(item.probabilities.argmax())]
            if args.jsonl:
                record = {"start_s": round(start, 6), "end_s": round(end, 6), "emotion": emotion}
                record["probabilities"] = {name: float(p) for name, p in zip(classes, item.probabilities)}
                if whole:
                    record |= {"whole": True, "windows": item.windows}
                print(json.dumps(record), flush=True)
            else:
                span = f"{'whole ' if whole else ''}{start:.2f}-{end:.2f}"
                print(_row([span, emotion, *(f"{p:.3f}" for p in item.probabilities)], widths), flush=True)
    except UnusableAudio as problem:
        print(f"liser stream: error: {source}: {problem}", file=sys.stderr)
        return 1
    return 0


COMMANDS = {"predict": _predict, "stream": _stream, "export": _export}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    from liser.export import ParityError

    try:
        return COMMANDS[args.command](args)
    except (ValueError, ParamsError, FileNotFoundError) as problem:
        print(f"liser {args.command}: error: {problem}", file=sys.stderr)
        return 2
    except ParityError as problem:
        print(f"liser export: {problem}", file=sys.stderr)
        return 1
