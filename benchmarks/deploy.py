"""What the deployable students are worth on the demo's test folds: sizes, parity and the int8 drop.

For every fold of a configuration's trained students (after `dvc repro`), the four exports of `liser export`
(log-Mel or waveform input, float32 or int8) are written, and:

- their size on disk (the card included), the graph's size without it, and the student graph's alone;
- the waveform graphs against `liser predict` on every test utterance of the fold (the corpus's audio files as the
  demo wrote them): the largest |probability difference|, float32 graph vs the checkpoint, int8 graph vs the int8
  log-Mel export;
- the int8 student's test UAR against float32's (what `export --int8` writes into the card).

Prints tables and saves benchmarks/results/deploy.json.

    python benchmarks/deploy.py [--project .] [--configuration no-dstl] [--corpora ravdess crema_d]
"""

import os

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import torch
from tqdm import tqdm

from liser.deploy.int8 import CorpusFiles
from liser.deploy.waveform import WAVEFORM_INPUT
from liser.export import export_student
from liser.features import audio_blocks
from liser.files import write_json
from liser.folds import fold_utterances
from liser.params import load_params
from liser.predict import Predictor
from liser.runtime import describe_machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "deploy.json"
VARIANTS = {
    "float32": {},
    "int8": {"int8": True},
    "waveform_float32": {"waveform": True},
    "waveform_int8": {"waveform": True, "int8": True},
}


def fold_figures(project: Path, corpus: str, fold_folder: Path, params, scratch: Path) -> dict:
    checkpoint = fold_folder / "student.safetensors"
    fold = int(fold_folder.name.removeprefix("fold"))
    cards, sizes = {}, {}
    for name, options in VARIANTS.items():
        out = scratch / f"{corpus}-{fold}-{name}.onnx"
        cards[name] = export_student(
            checkpoint, out, params.features, params.evaluate, data=project / "data", **options
        )
        sizes[name] = {
            "file_bytes": out.stat().st_size,
            "graph_bytes": cards[name]["export"]["graph_bytes"],
            "student_graph_bytes": cards[name]["export"]["student_graph_bytes"],
        }
    files = CorpusFiles.under(project / "data", corpus)
    folds = pd.read_csv(files.folds, dtype={"speaker": str})
    test = fold_utterances(pd.read_parquet(files.manifest), folds, fold, "test")
    predictors = {
        "float32": Predictor.load(checkpoint, params.features, params.evaluate, threads=1),
        "int8": Predictor.load(scratch / f"{corpus}-{fold}-int8.onnx", params.features, params.evaluate, threads=1),
    }
    sessions = {
        precision: onnxruntime.InferenceSession(str(scratch / f"{corpus}-{fold}-waveform_{precision}.onnx"))
        for precision in predictors
    }
    parity = dict.fromkeys(predictors, 0.0)
    for path in tqdm(test["path"], desc=f"{corpus} fold {fold} parity", unit="file", leave=False):
        samples = np.concatenate(list(audio_blocks(project / path, params.features.sample_rate)))
        for precision, predictor in predictors.items():
            expected = predictor.predict(project / path).probabilities
            (got,) = sessions[precision].run(["probabilities"], {WAVEFORM_INPUT: samples})
            parity[precision] = max(parity[precision], float(np.abs(got - expected).max()))
    return {
        "fold": fold,
        "sizes": sizes,
        "waveform_vs_predict_max_abs_probability_diff": parity,
        "test_files": len(test),
        "int8": cards["int8"]["quantization"]["test"],
        "export_parity": {name: card["export"] for name, card in cards.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=REPO, help="where data/ and outputs/ are (after dvc repro)")
    parser.add_argument("--configuration", default="no-dstl")
    parser.add_argument("--corpora", nargs="+", default=["ravdess", "crema_d"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params(args.project / "params.yaml")
    figures = {
        "machine": describe_machine(threads=1),
        "onnxruntime": onnxruntime.__version__,
        "configuration": args.configuration,
        "corpora": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        for corpus in args.corpora:
            folder = args.project / "outputs" / "students" / corpus / args.configuration
            folds = sorted(folder.glob("fold*"), key=lambda p: int(p.name.removeprefix("fold")))
            if not folds:
                raise SystemExit(f"{folder}: no fold<k>/ folders; run dvc repro {args.configuration}@{corpus} first")
            figures["corpora"][corpus] = [fold_figures(args.project, corpus, f, params, Path(scratch)) for f in folds]

    print(figures["machine"])
    print(f"\n{args.configuration}: sizes on disk in bytes (card included), per fold")
    print("| corpus | fold | float32 | int8 | waveform float32 | waveform int8 |")
    print("|---|---|---|---|---|---|")
    for corpus, folds in figures["corpora"].items():
        for f in folds:
            cells = " | ".join(f"{f['sizes'][name]['file_bytes']:,}" for name in VARIANTS)
            print(f"| {corpus} | {f['fold']} | {cells} |")
    print("\nwaveform graph vs liser predict on the fold's test files, and int8 vs float32 test UAR")
    print("| corpus | fold | test files | max diff float32 | max diff int8 | UAR float32 | UAR int8 | drop (points) |")
    print("|---|---|---|---|---|---|---|---|")
    for corpus, folds in figures["corpora"].items():
        for f in folds:
            parity, int8 = f["waveform_vs_predict_max_abs_probability_diff"], f["int8"]
            print(
                f"| {corpus} | {f['fold']} | {f['test_files']} | {parity['float32']:.1e} | {parity['int8']:.1e} | "
                f"{int8['float32']['uar']:.3f} | {int8['int8']['uar']:.3f} | {int8['uar_drop_points']:+.2f} |"
            )
    write_json(RESULTS, figures)
    print(f"\nsaved to {RESULTS}")


if __name__ == "__main__":
    main()
