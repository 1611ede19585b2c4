"""int8 students: ONNX Runtime's static quantisation, calibrated on the training crops of the checkpoint's fold,
and what it costs on that fold's test speakers.

The float32 graph is prepared by ONNX Runtime's ``quant_pre_process`` (constant folding puts the LSTM's weights in
initializers), then ``quantize_static`` writes QDQ int8: per-channel int8 weights for the convolutions, the LSTM and
the supervised head, uint8 activations with MinMax ranges from the calibration crops.  The head's output (the
logits) stays float: quantised to 256 levels over the calibration range, it flipped the label of utterances whose
two best classes are close (4 of 48 on a demo fold, against none with float logits).

The calibration crops are what training draws: a random 3 s crop of each training utterance of the fold (at most
``CALIBRATION_CROPS`` utterances, a seeded choice), from the corpus's features as the features stage wrote them.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import pandas as pd
import torch

from liser.features import FeatureStore, LogMel
from liser.folds import fold_utterances
from liser.metrics import score
from liser.params import FeatureParams
from liser.students.crops import random_crop
from liser.students.evaluate import Windowing, utterance_logits

if TYPE_CHECKING:
    from liser.predict import Classifier

__all__ = ["CALIBRATION_CROPS", "METHOD", "CorpusFiles", "FoldData", "compare_on_test", "fold_data", "quantize_student"]

log = logging.getLogger(__name__)

CALIBRATION_CROPS = 512
METHOD = (
    "ONNX Runtime static quantisation (quantize_static, QDQ format): per-channel int8 weights of the convolutions, "
    "the LSTM and the supervised head; uint8 activations with MinMax ranges from calibration crops; the logits float"
)
CALIBRATION_SEED = 0
_CALIBRATION_BATCH = 32


@dataclass(frozen=True)
class CorpusFiles:
    """Where the pipeline puts a corpus's manifest, speaker folds and log-Mel features."""

    corpus: str
    manifest: Path
    folds: Path
    features: Path

    @classmethod
    def under(cls, data: str | Path, corpus: str) -> CorpusFiles:
        data = Path(data)
        return cls(
            corpus,
            data / "manifests" / f"{corpus}.parquet",
            data / "folds" / f"{corpus}.csv",
            data / "features" / corpus,
        )

    def check(self) -> None:
        needed = (self.manifest, self.folds, self.features / "index.parquet", self.features / "logmel.npy")
        missing = [str(path) for path in needed if not path.is_file()]
        if missing:
            raise ValueError(
                f"--int8 calibrates on {self.corpus}'s training crops: {', '.join(missing)} not found "
                f"(`dvc repro features@{self.corpus} folds@{self.corpus}` writes them; --data names another folder)"
            )


@dataclass(frozen=True)
class FoldData:
    """One fold's training log-Mels (for calibration) and test log-Mels with their labels."""

    train: list[np.ndarray]
    test: list[np.ndarray]
    test_labels: np.ndarray


def fold_data(files: CorpusFiles, fold: int) -> FoldData:
    files.check()
    utterances = pd.read_parquet(files.manifest)
    folds = pd.read_csv(files.folds, dtype={"speaker": str})
    store = FeatureStore(files.features)
    if fold not in set(folds["fold"]):
        raise ValueError(f"{files.folds}: no fold {fold} (it has folds {sorted(set(folds['fold']))})")

    def present(role: str) -> pd.DataFrame:
        rows = fold_utterances(utterances, folds, fold, role)
        return rows[rows["utterance"].map(store.__contains__)]

    train, test = present("train"), present("test")
    if train.empty or test.empty:
        raise ValueError(
            f"{files.features}: no features for fold {fold}'s {'training' if train.empty else 'test'} utterances"
        )
    return FoldData(
        train=[store[u] for u in train["utterance"]],
        test=[store[u] for u in test["utterance"]],
        test_labels=test["label"].to_numpy(dtype=np.int64),
    )


def calibration_crops(train: list[np.ndarray], features: FeatureParams) -> np.ndarray:
    """(n, 1, n_mels, crop_frames): one random crop of each of at most ``CALIBRATION_CROPS`` training utterances."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    chosen = np.arange(len(train))
    if len(chosen) > CALIBRATION_CROPS:
        chosen = np.sort(rng.choice(len(train), CALIBRATION_CROPS, replace=False))
    pad = LogMel.silence_of(features)
    return np.stack([random_crop(train[i], features.crop_frames, rng, pad) for i in chosen])[:, None]


class _Crops:
    """ONNX Runtime's calibration data reader over the crops, a batch at a time."""

    def __init__(self, crops: np.ndarray, input_name: str):
        self.batches = iter(range(0, len(crops), _CALIBRATION_BATCH))
        self.crops, self.input_name = crops, input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        first = next(self.batches, None)
        return None if first is None else {self.input_name: self.crops[first : first + _CALIBRATION_BATCH]}


class _UnnamedInputNotice(logging.Filter):
    """The quantiser warns that it cannot type the LSTM's unused optional input (named ""): nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to infer the type of tensor: ." not in record.getMessage()


def quantize_student(model: onnx.ModelProto, crops: np.ndarray) -> onnx.ModelProto:
    """The float32 student graph (``logmel`` -> ``logits``) as QDQ int8, activation ranges from ``crops``."""
    # ONNX Runtime's quantisation tools take a second to import: only when a model is quantised
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    log.info("int8: calibrating activation ranges on %d training crops", len(crops))
    notice, root = _UnnamedInputNotice(), logging.getLogger()
    root.addFilter(notice)
    try:
        with tempfile.TemporaryDirectory(prefix="liser-int8.") as scratch:
            source, prepared, quantized = (
                Path(scratch) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx")
            )
            onnx.save(model, str(source))
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(quantized),
                _Crops(crops, model.graph.input[0].name),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv", "LSTM", "Gemm"],
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm"]},
            )
            result = onnx.load(str(quantized))
    finally:
        root.removeFilter(notice)
    del result.graph.value_info[:]  # shape annotations from the preparation: ONNX Runtime infers them again
    return result


def _probabilities(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def compare_on_test(float_student: Classifier, int8_student: Classifier, data: FoldData, windows: Windowing) -> dict:
    """Test UAR/WAR of both students at the evaluation stride, and how far their probabilities are apart."""
    logits = {
        name: utterance_logits(student, data.test, windows)
        for name, student in (("float32", float_student), ("int8", int8_student))
    }
    scores = {name: score(data.test_labels, value) for name, value in logits.items()}
    probabilities = {name: _probabilities(value) for name, value in logits.items()}
    agreeing = int((probabilities["float32"].argmax(1) == probabilities["int8"].argmax(1)).sum())
    return {
        "test_utterances": len(data.test),
        "float32": scores["float32"].as_dict(),
        "int8": scores["int8"].as_dict(),
        "uar_drop_points": 100 * (scores["float32"].uar - scores["int8"].uar),
        "labels_agreeing": agreeing,
        "max_abs_probability_diff": float(np.abs(probabilities["float32"] - probabilities["int8"]).max()),
    }
