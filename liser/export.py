"""The student as an ONNX model: export of its supervised path, a parity check, a model card, and
loading the exported model back to run in ONNX Runtime.

``export_student`` writes ``model.onnx`` with ``model.json`` and ``model.md`` beside it.  The model
takes a batch of 3 s log-Mel windows, (N, 1, 64, 94) float32 with a dynamic batch axis, and returns
the supervised head's logits (N, K_S): what evaluation averages over an utterance's windows.  The
JSON card is also embedded in the ONNX file's metadata, so the .onnx alone says which classes and
which front end it expects.

Nothing is written unless ONNX Runtime reproduces PyTorch's logits within ``PARITY_TOLERANCE`` on
the same inputs, at batch sizes 1 and more.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from liser.features import LogMel
from liser.files import atomic_path, read_json, write_json, write_text
from liser.models.student import Student
from liser.params import FeatureParams, Params
from liser.students.checkpoints import load_student

__all__ = [
    "FRONT_END_KEYS",
    "PARITY_TOLERANCE",
    "ParityError",
    "OnnxStudent",
    "export_student",
    "front_end",
    "load_onnx_student",
    "metrics_path_for",
    "supervised_parameters",
]

# The torch.export-based exporter writes opset 18 natively (older ones go through a version
# converter); ONNX Runtime's CPU provider runs it from release 1.14 on.
OPSET = 18
PARITY_TOLERANCE = 1e-4
CARD_KEY = "liser_card"
INPUT_NAME = "logmel"
OUTPUT_NAME = "logits"
# Front-end settings that must match between an exported model and the features it is given.
RENAMED_INPUT_KEYS = {"segment_s": "crop_s", "segment_frames": "crop_frames"}
FRONT_END_KEYS = ("sample_rate", "n_mels", "window_s", "hop_s", "log_floor", "crop_s")


class ParityError(RuntimeError):
    """ONNX Runtime does not reproduce PyTorch's output: the export is not to be trusted."""


class SupervisedPath(nn.Module):
    """Log-Mel windows -> supervised-head logits: the part of the student that prediction uses."""

    def __init__(self, student: Student):
        super().__init__()
        self.student = student

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.student.classify(logmel)


def supervised_parameters(student: Student) -> int:
    """Parameters on the exported path: convolutions, LSTM and supervised head (not the distillation heads)."""
    parts = (student.conv, student.lstm, student.sup_head)
    return sum(p.numel() for part in parts for p in part.parameters())


def front_end(features: FeatureParams) -> dict:
    """How a waveform becomes the model's input, as the features stage computes it."""
    return {
        "name": INPUT_NAME,
        "shape": ["batch", 1, features.n_mels, features.crop_frames],
        "dtype": "float32",
        "sample_rate": features.sample_rate,
        "channels": "mono: channels averaged, then resampled to sample_rate",
        "n_mels": features.n_mels,
        "window_s": features.window_s,
        "hop_s": features.hop_s,
        "n_fft": features.n_fft,
        "hop_length": features.hop_length,
        "stft": "centred frames, Hann window, zero padding at the ends",
        "mel_filters": "librosa.filters.mel(sr, n_fft, n_mels) defaults (Slaney scale and norm)",
        "log_floor": features.log_floor,
        "value": "log(Mel power + log_floor)",
        "crop_s": features.crop_s,
        "crop_frames": features.crop_frames,
        "pad_value": LogMel.silence_of(features),
        "padding": "signals shorter than crop_s are padded on the right with pad_value (log-Mel of silence)",
    }


class OnnxStudent:
    """An exported student in an ONNX Runtime session.

    ``classify`` and ``eval`` behave as the PyTorch student's do, so ``evaluate.utterance_logits``
    runs an exported model unchanged.
    """

    def __init__(self, model: str | Path | bytes, threads: int | None = None):
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else str(model)
        self.session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    @property
    def card(self) -> dict | None:
        embedded = self.session.get_modelmeta().custom_metadata_map.get(CARD_KEY)
        return json.loads(embedded) if embedded else None

    def logits(self, logmel: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(logmel, dtype=np.float32)})[0]

    def classify(self, logmel: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.logits(logmel.numpy()))

    def eval(self) -> OnnxStudent:
        return self


# what ONNX Runtime raises for a file it cannot load (a missing, truncated or not-ONNX file)
_ONNXRUNTIME_ERRORS = tuple(
    getattr(onnxruntime.capi.onnxruntime_pybind11_state, name)
    for name in ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph")
    if hasattr(onnxruntime.capi.onnxruntime_pybind11_state, name)
)


def _first_line(problem: BaseException) -> str:
    return (str(problem).strip().splitlines() or [type(problem).__name__])[0]


def load_onnx_student(path: str | Path, threads: int | None = None) -> tuple[OnnxStudent, list[str], dict]:
    """The exported student, its class names in output order, and its model card."""
    try:
        runtime = OnnxStudent(path, threads)
        card = runtime.card
    except (*_ONNXRUNTIME_ERRORS, RuntimeError, json.JSONDecodeError) as problem:
        raise ValueError(f"{path}: not a readable ONNX model ({_first_line(problem)})") from None
    if card is None:
        raise ValueError(f"{path}: not a LiSER export (no {CARD_KEY!r} entry in its metadata)")
    outputs = runtime.session.get_outputs()[0].shape[-1]
    if not isinstance(card.get("classes"), list) or (isinstance(outputs, int) and len(card["classes"]) != outputs):
        raise ValueError(f"{path}: the card's classes {card.get('classes')} do not match the model's {outputs} outputs")
    for old, new in RENAMED_INPUT_KEYS.items():  # cards exported before the rename
        if old in card.get("input", {}) and new not in card["input"]:
            card["input"][new] = card["input"].pop(old)
    return runtime, list(card["classes"]), card


def to_onnx(student: Student, features: FeatureParams) -> onnx.ModelProto:
    example = torch.zeros(2, 1, features.n_mels, features.crop_frames)
    # torch.export's exporter, the default since torch 2.9; the TorchScript one (dynamo=False) is
    # deprecated.  eval(): batch norm must use its running statistics, not the example's.
    with warnings.catch_warnings():
        # torch.export's own deprecation notices about its internals, and one about the LSTM's
        # flattened weights; the parity check is what says whether the result is right
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*were assigned during export", category=UserWarning)
        program = torch.onnx.export(
            SupervisedPath(student).eval(),
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
            verbose=False,
        )
    return program.model_proto


def parity_inputs(features: FeatureParams, windows: int = 7, seed: int = 0) -> np.ndarray:
    """Log-Mel-like windows around speech's level, the first one digital silence."""
    rng = np.random.default_rng(seed)
    batch = rng.normal(-6.0, 3.0, (windows, 1, features.n_mels, features.crop_frames)).astype(np.float32)
    batch[0] = LogMel.silence_of(features)
    return batch


def check_parity(student: Student, runtime: OnnxStudent, inputs: np.ndarray) -> float:
    """Largest |ONNX Runtime - PyTorch| logit over ``inputs``; raises :class:`ParityError` above tolerance."""
    student.eval()
    with torch.inference_mode():
        expected = student.classify(torch.from_numpy(inputs)).numpy()
    # one window alone, then the rest as a batch: the batch axis must really be dynamic
    got = np.concatenate([runtime.logits(inputs[:1]), runtime.logits(inputs[1:])])
    difference = float(np.abs(got - expected).max())
    if not difference <= PARITY_TOLERANCE:  # also catches NaN
        raise ParityError(
            f"ONNX Runtime's logits differ from PyTorch's by up to {difference:.3g} "
            f"(tolerance {PARITY_TOLERANCE:g}); the export was not written"
        )
    return difference


def metrics_path_for(checkpoint: Path) -> Path | None:
    """The configuration's metrics JSON where the pipeline puts it, if it is there.

    ``outputs/students/<corpus>/<config>/fold<k>/student.safetensors`` has its metrics in
    ``metrics/students/<corpus>/<config>.json`` (dvc.yaml), each fold's under ``folds``.
    """
    parts = checkpoint.parts
    if len(parts) < 6 or parts[-6:-4] != ("outputs", "students"):
        return None
    corpus, config = parts[-4:-2]
    candidate = Path(*parts[:-6], "metrics", "students", corpus, f"{config}.json")
    return candidate if candidate.is_file() else None


def _fold_metrics(metrics: Path, fold: object) -> dict:
    """The fold's figures from a configuration's metrics file (or a file holding one fold's figures)."""
    figures = read_json(metrics)
    if "folds" not in figures:
        return {"file": str(metrics), **figures}
    if str(fold) not in figures["folds"]:
        raise ValueError(f"{metrics}: no fold {fold} (it has folds {', '.join(figures['folds'])})")
    mean = {split: figures[split] for split in ("test", "validation") if split in figures}
    return {"file": str(metrics), **figures["folds"][str(fold)], "all_folds": mean}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_card(
    checkpoint: Path,
    student: Student,
    classes: list[str],
    info: dict,
    params: Params,
    metrics: Path | None,
    parity: float,
) -> dict:
    return {
        "model": "LiSER student, supervised path (CNN-LSTM of Table 1, Pendyala et al., Interspeech 2025)",
        "checkpoint": {"file": checkpoint.name, "sha256": _sha256(checkpoint)},
        "classes": list(classes),
        "input": front_end(params.features),
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(classes)],
            "dtype": "float32",
            "value": "supervised-head logits of each 3 s window, in the order of `classes`",
        },
        "file_level": {
            "stride_s": params.evaluate.stride_s,
            "rule": "windows every stride_s (the last one flush with the end), logits averaged over the "
            "windows, then softmax; the evaluation stage's procedure (liser.evaluate.utterance_logits)",
        },
        "training": {
            "corpus": info.get("corpus"),
            "fold": info.get("fold"),
            "best_epoch": info.get("best_epoch"),
            "test": {"uar": info.get("test_uar"), "war": info.get("test_war")},
        },
        "metrics": _fold_metrics(metrics, info.get("fold")) if metrics else None,
        "parameters": {
            "student": sum(p.numel() for p in student.parameters()),
            "exported": supervised_parameters(student),
        },
        "export": {
            "opset": OPSET,
            "torch": torch.__version__.split("+")[0],
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "parity_max_abs_diff": parity,
            "parity_tolerance": PARITY_TOLERANCE,
        },
    }


def _metric(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def card_markdown(card: dict, onnx_name: str) -> str:
    spec, training, export = card["input"], card["training"], card["export"]
    lines = [
        f"# {onnx_name}",
        "",
        card["model"] + ".",
        "",
        "## Classes (output order)",
        "",
        "| index | class |",
        "|---|---|",
        *(f"| {i} | {name} |" for i, name in enumerate(card["classes"])),
        "",
        "## Input",
        "",
        f"`{spec['name']}`: float32 `(batch, 1, {spec['n_mels']}, {spec['crop_frames']})`, "
        f"{spec['crop_s']:g} s of audio per window, batch axis dynamic.",
        "",
        "| setting | value |",
        "|---|---|",
        *(
            f"| {key} | {spec[key]} |"
            for key in (
                "sample_rate",
                "channels",
                "n_mels",
                "window_s",
                "hop_s",
                "n_fft",
                "hop_length",
                "stft",
                "mel_filters",
                "log_floor",
                "value",
                "crop_s",
                "crop_frames",
                "pad_value",
                "padding",
            )
        ),
        "",
        "## Output",
        "",
        f"`{card['output']['name']}`: float32 `(batch, {len(card['classes'])})`, {card['output']['value']}.",
        "",
        f"Whole file: {card['file_level']['rule']}; stride_s = {card['file_level']['stride_s']:g}.",
        "",
        "## Training",
        "",
        "| corpus | fold | best epoch | test UAR | test WAR |",
        "|---|---|---|---|---|",
        f"| {training['corpus']} | {training['fold']} | {training['best_epoch']} | "
        f"{_metric(training['test']['uar'])} | {_metric(training['test']['war'])} |",
    ]
    if card["metrics"]:
        lines += [
            "",
            f"Fold metrics (`{card['metrics']['file']}`):",
            "",
            "```json",
            json.dumps({k: v for k, v in card["metrics"].items() if k != "file"}, indent=2),
            "```",
        ]
    lines += [
        "",
        "## Size and export",
        "",
        f"- parameters: {card['parameters']['exported']:,} exported "
        f"({card['parameters']['student']:,} in the student with its distillation heads)",
        f"- ONNX opset {export['opset']}; torch {export['torch']}, onnx {export['onnx']}, "
        f"onnxruntime {export['onnxruntime']}",
        f"- parity: ONNX Runtime vs PyTorch max |diff| = {export['parity_max_abs_diff']:.2e} "
        f"(tolerance {export['parity_tolerance']:g})",
        f"- checkpoint: `{card['checkpoint']['file']}`, sha256 {card['checkpoint']['sha256']}",
        "",
    ]
    return "\n".join(lines)


def export_student(checkpoint: str | Path, out: str | Path, params: Params, metrics: str | Path | None = None) -> dict:
    """Write ``out`` (.onnx) and its card (``out`` with .json and .md); return the card."""
    checkpoint, out = Path(checkpoint), Path(out)
    if not checkpoint.is_file():
        raise ValueError(f"{checkpoint}: not a file; export takes one fold's student.safetensors")
    if out.suffix != ".onnx":
        raise ValueError(f"{out}: the exported model's name should end in .onnx (its card gets .json and .md)")
    student, classes, info = load_student(checkpoint)
    if student.config.n_mels != params.features.n_mels:
        raise ValueError(
            f"{checkpoint}: trained on {student.config.n_mels} Mel bands, params.yaml has "
            f"features.n_mels = {params.features.n_mels}"
        )
    model = to_onnx(student, params.features)
    parity = check_parity(student, OnnxStudent(model.SerializeToString()), parity_inputs(params.features))
    metrics = Path(metrics) if metrics else metrics_path_for(checkpoint)
    card = model_card(checkpoint, student, classes, info, params, metrics, parity)
    onnx.helper.set_model_props(model, {CARD_KEY: json.dumps(card, sort_keys=True)})

    write_json(out.with_suffix(".json"), card)
    write_text(out.with_suffix(".md"), card_markdown(card, out.name))
    with atomic_path(out) as tmp:  # last, so a model on disk always has its card beside it
        tmp.write_bytes(model.SerializeToString())
    return card
