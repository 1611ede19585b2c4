"""The student as an ONNX model: export of its supervised path, a parity check, a model card, and
loading the exported model back to run in ONNX Runtime.

``export_student`` writes ``model.onnx`` with ``model.json`` and ``model.md`` beside it.  By default the model
takes a batch of 3 s log-Mel windows, (N, 1, 64, 94) float32 with a dynamic batch axis, and returns the
supervised head's logits (N, K_S): what evaluation averages over an utterance's windows.  ``waveform=True`` puts
the front end and the averaging inside the graph (``liser.deploy.waveform``): 16 kHz samples in, the utterance's
probabilities out.  ``int8=True`` quantises the student (``liser.deploy.int8``), calibrated on the training crops
of the checkpoint's fold, and measures what that costs on the fold's test speakers.  The JSON card is also
embedded in the ONNX file's metadata, so the .onnx alone says which classes and which front end it expects.

Nothing is written unless ONNX Runtime reproduces PyTorch's logits within ``PARITY_TOLERANCE`` on the same
inputs, at batch sizes 1 and more, and a waveform graph reproduces ``LogMel`` and ``utterance_logits``'s
probabilities within the same tolerance.
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

from liser.deploy import int8 as quantization
from liser.deploy.waveform import FRONT_END_OUTPUT, WAVEFORM_INPUT, WAVEFORM_OUTPUTS, front_end_model, waveform_model
from liser.features import LogMel
from liser.files import atomic_path, read_json, write_json, write_text
from liser.models.student import Student
from liser.params import EvaluateParams, FeatureParams
from liser.students.checkpoints import load_student
from liser.students.crops import sliding_windows
from liser.students.evaluate import windowing

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
    "to_onnx",
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
# Seconds of audio the waveform graph is checked on: shorter than a window, one window, one window and a bit, several.
WAVEFORM_PARITY_SECONDS = (0.6, 3.0, 3.05, 7.3)


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


def waveform_input(features: FeatureParams) -> dict:
    return {
        "name": WAVEFORM_INPUT,
        "shape": ["samples"],
        "dtype": "float32",
        "sample_rate": features.sample_rate,
        "channels": "average the channels and resample to sample_rate before",
        "value": "samples in [-1, 1] (16-bit PCM / 32768), the whole utterance",
        "minimum_s": 0.5,
    }


def waveform_outputs(classes: list[str]) -> dict:
    k = len(classes)
    return {
        "probabilities": f"({k},) softmax of `logits`: the utterance's emotions, in the order of `classes`",
        "logits": f"({k},) supervised-head logits averaged over the windows",
        "window_probabilities": f"(windows, {k}) softmax of each window's logits",
        "window_start_s": "(windows,) where each 3 s window starts, in seconds",
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
    """The exported student (log-Mel windows in, float32 or int8), its class names in output order, and its card."""
    try:
        runtime = OnnxStudent(path, threads)
        card = runtime.card
    except (*_ONNXRUNTIME_ERRORS, RuntimeError, json.JSONDecodeError) as problem:
        raise ValueError(f"{path}: not a readable ONNX model ({_first_line(problem)})") from None
    if card is None:
        raise ValueError(f"{path}: not a LiSER export (no {CARD_KEY!r} entry in its metadata)")
    if card.get("kind") == "waveform":
        raise ValueError(
            f"{path}: a waveform model (16 kHz samples in, the utterance's probabilities out): run it in ONNX Runtime "
            "or the web page; predict and stream take a student.safetensors or a log-Mel export"
        )
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
    model = program.model_proto
    # The exporter annotates every node and value with its source: stack traces with this machine's absolute
    # paths, 7 % of the float32 file and more of an int8 one.  A model file says what it computes, not where.
    for item in (*model.graph.node, *model.graph.input, *model.graph.output, *model.graph.value_info):
        del item.metadata_props[:]
    return model


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


def waveform_parity_inputs(features: FeatureParams, seed: int = 0) -> list[np.ndarray]:
    """Gliding tones in noise of ``WAVEFORM_PARITY_SECONDS``, and a second of digital silence."""
    rng = np.random.default_rng(seed)
    signals = []
    for seconds in WAVEFORM_PARITY_SECONDS:
        t = np.arange(round(seconds * features.sample_rate)) / features.sample_rate
        pitch = rng.uniform(100, 250)
        voice = 0.3 * np.sin(2 * np.pi * (pitch + 40 * t) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        signals.append((voice + rng.normal(0, 0.02, len(t))).astype(np.float32))
    signals.append(np.zeros(features.sample_rate, dtype=np.float32))
    return signals


def logmel_windows(features: FeatureParams, evaluate: EvaluateParams):
    """signal -> (windows, 1, n_mels, crop_frames) as ``predict`` makes them: ``LogMel``, then the sliding windows."""
    extractor, windows = LogMel(features), windowing(features, evaluate)

    def of(signal: np.ndarray) -> np.ndarray:
        logmel = extractor(signal)
        return sliding_windows(logmel, windows.window_frames, windows.stride_frames, windows.pad_value)[:, None]

    return of


def graph_windows(features: FeatureParams, evaluate: EvaluateParams, like: onnx.ModelProto):
    """signal -> the windows the waveform graph's own front end makes."""
    model = front_end_model(features, evaluate, like).SerializeToString()
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return lambda signal: session.run([FRONT_END_OUTPUT], {WAVEFORM_INPUT: signal})[0]


def waveform_difference(classifier: object, model: bytes, signals: list[np.ndarray], windows_of) -> float:
    """Largest |graph - expected| probability, the utterance's and each window's, over ``signals``; expected: the
    ``classifier``'s logits of ``windows_of(signal)``, averaged then softmax (``utterance_logits``'s rule)."""
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    difference = 0.0
    for signal in signals:
        got = dict(zip(WAVEFORM_OUTPUTS, session.run(list(WAVEFORM_OUTPUTS), {WAVEFORM_INPUT: signal})))
        with torch.inference_mode():
            logits = classifier.classify(torch.from_numpy(windows_of(signal))).double()
        expected = {
            "probabilities": torch.softmax(logits.mean(dim=0), dim=0).float().numpy(),
            "window_probabilities": torch.softmax(logits, dim=1).float().numpy(),
        }
        for name, value in expected.items():
            if got[name].shape != value.shape:
                raise ParityError(f"the waveform graph's {name} has shape {got[name].shape}, expected {value.shape}")
            difference = max(difference, float(np.abs(got[name] - value).max()))
    return difference


def check_waveform_parity(
    student: Student,
    int8_student: OnnxStudent | None,
    model: onnx.ModelProto,
    features: FeatureParams,
    evaluate: EvaluateParams,
) -> dict:
    """The waveform graph against ``LogMel`` + ``utterance_logits`` with the float32 student, within
    ``PARITY_TOLERANCE``.  An int8 graph is held to its own front end with the int8 student (the composition must be
    exact), and how far LogMel's windows move it is recorded: a quantised activation that lands on the other side
    of a rounding step moves it by a step, well above float32's differences."""
    signals, serialized = waveform_parity_inputs(features), model.SerializeToString()
    if int8_student is None:
        difference = waveform_difference(student, serialized, signals, logmel_windows(features, evaluate))
        reference = "LogMel + utterance_logits with the float32 student"
        figures = {}
    else:
        own = graph_windows(features, evaluate, model)
        difference = waveform_difference(int8_student, serialized, signals, own)
        reference = "the graph's own front end + the int8 student graph"
        logmel = waveform_difference(int8_student, serialized, signals, logmel_windows(features, evaluate))
        figures = {"waveform_vs_logmel_int8_max_abs_diff": logmel}
    if not difference <= PARITY_TOLERANCE:  # also catches NaN
        raise ParityError(
            f"the waveform graph's probabilities differ from {reference}'s by up to {difference:.3g} "
            f"(tolerance {PARITY_TOLERANCE:g}); the export was not written"
        )
    return {"waveform_parity_max_abs_diff": difference, "waveform_parity_reference": reference, **figures}


def metrics_path_for(checkpoint: Path) -> Path | None:
    """The configuration's results where the pipeline puts them, if they are there:
    ``outputs/students/<corpus>/<config>/fold<k>/[seed<s>/]student.safetensors`` has every fold's figures in
    ``outputs/students/<corpus>/<config>/results.json``, under ``folds``."""
    for folder in checkpoint.parents[1:3]:
        if (folder / "results.json").is_file():
            return folder / "results.json"
    return None


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
    features: FeatureParams,
    evaluate: EvaluateParams,
    metrics: Path | None,
    export: dict,
    waveform: bool = False,
    quantized: dict | None = None,
) -> dict:
    """What the exported graph is, what it was trained and checked on; ``export`` holds the parity and size
    figures, ``quantized`` the int8 calibration and its cost on the test speakers."""
    averaging = (
        "windows every stride_s (the last one flush with the end), logits averaged over the windows, then softmax: "
        "the evaluation stage's procedure (liser.students.evaluate.utterance_logits)"
    )
    if waveform:
        inputs, outputs = waveform_input(features), waveform_outputs(classes)
        rule = f"inside the graph: front_end (ONNX STFT, the Slaney mel filterbank, log), then {averaging}"
    else:
        inputs = front_end(features)
        outputs = {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(classes)],
            "dtype": "float32",
            "value": "supervised-head logits of each 3 s window, in the order of `classes`",
        }
        rule = averaging
    return {
        "model": "LiSER student, supervised path (CNN-LSTM of Table 1, Pendyala et al., Interspeech 2025)",
        "kind": "waveform" if waveform else "logmel",
        "precision": "int8" if quantized else "float32",
        "checkpoint": {"file": checkpoint.name, "sha256": _sha256(checkpoint)},
        "classes": list(classes),
        "input": inputs,
        **({"front_end": front_end(features)} if waveform else {}),
        "output": outputs,
        "file_level": {
            "stride_s": evaluate.stride_s,
            "rule": rule,
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
            "parity_tolerance": PARITY_TOLERANCE,
            **export,
        },
        "quantization": quantized,
    }


def _metric(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


_FRONT_END_ROWS = (
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


def _settings(spec: dict) -> list[str]:
    return ["| setting | value |", "|---|---|", *(f"| {key} | {spec[key]} |" for key in _FRONT_END_ROWS)]


def _input_section(card: dict) -> list[str]:
    spec = card["input"]
    if card.get("kind") == "waveform":
        front = card["front_end"]
        return [
            f"`{spec['name']}`: float32 `(samples,)`, {spec['sample_rate']} Hz mono ({spec['channels']}): "
            f"{spec['value']}; at least {spec['minimum_s']:g} s.",
            "",
            f"The front end is inside the graph, equal to the features stage's (`liser.features.LogMel`), and makes "
            f"{front['crop_s']:g} s windows of `(1, {front['n_mels']}, {front['crop_frames']})` log-Mel:",
            "",
            *_settings(front),
        ]
    return [
        f"`{spec['name']}`: float32 `(batch, 1, {spec['n_mels']}, {spec['crop_frames']})`, "
        f"{spec['crop_s']:g} s of audio per window, batch axis dynamic.",
        "",
        *_settings(spec),
    ]


def _output_section(card: dict) -> list[str]:
    if card.get("kind") == "waveform":
        return [f"- `{name}`: {meaning}" for name, meaning in card["output"].items()]
    return [f"`{card['output']['name']}`: float32 `(batch, {len(card['classes'])})`, {card['output']['value']}."]


def _quantization_section(card: dict) -> list[str]:
    quantized = card.get("quantization")
    if not quantized:
        return []
    test, calibration = quantized["test"], quantized["calibration"]
    return [
        "",
        "## int8",
        "",
        f"{quantized['method']}.",
        "",
        f"Calibration: {calibration['crops']} random 3 s crops (seed {calibration['seed']}) of the training "
        f"utterances of {calibration['corpus']} fold {calibration['fold']}.",
        "",
        f"On that fold's {test['test_utterances']} test utterances (windows every {card['file_level']['stride_s']:g} "
        "s, as the evaluation stage scores them):",
        "",
        "| graph | test UAR | test WAR |",
        "|---|---|---|",
        f"| float32 | {_metric(test['float32']['uar'])} | {_metric(test['float32']['war'])} |",
        f"| int8 | {_metric(test['int8']['uar'])} | {_metric(test['int8']['war'])} |",
        "",
        f"UAR drop {test['uar_drop_points']:+.2f} points (float32 - int8); the same label for "
        f"{test['labels_agreeing']} of {test['test_utterances']} utterances; probabilities at most "
        f"{test['max_abs_probability_diff']:.4f} apart.",
    ]


def card_markdown(card: dict, onnx_name: str) -> str:
    training, export = card["training"], card["export"]
    lines = [
        f"# {onnx_name}",
        "",
        f"{card['model']}; {card.get('kind', 'logmel')} input, {card.get('precision', 'float32')}.",
        "",
        "## Classes (output order)",
        "",
        "| index | class |",
        "|---|---|",
        *(f"| {i} | {name} |" for i, name in enumerate(card["classes"])),
        "",
        "## Input",
        "",
        *_input_section(card),
        "",
        "## Output",
        "",
        *_output_section(card),
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
    lines += _quantization_section(card)
    lines += [
        "",
        "## Size and export",
        "",
        f"- parameters: {card['parameters']['exported']:,} exported "
        f"({card['parameters']['student']:,} in the student with its distillation heads)",
        f"- graph: {export['graph_bytes']:,} bytes without this card "
        f"({export['student_graph_bytes']:,} of them the student's log-Mel-to-logits graph)",
    ]
    if "waveform_parity_max_abs_diff" in export:
        lines.append(f"- front end: {export['front_end']}")
    lines += [
        f"- ONNX opset {export['opset']}; torch {export['torch']}, onnx {export['onnx']}, "
        f"onnxruntime {export['onnxruntime']}",
        f"- parity: ONNX Runtime vs PyTorch max |logit diff| = {export['parity_max_abs_diff']:.2e} "
        f"(float32 student graph; tolerance {export['parity_tolerance']:g})",
    ]
    if "waveform_parity_max_abs_diff" in export:
        lines.append(
            f"- waveform parity: graph vs {export['waveform_parity_reference']}, max |probability diff| = "
            f"{export['waveform_parity_max_abs_diff']:.2e} (tolerance {export['parity_tolerance']:g})"
        )
    if "waveform_vs_logmel_int8_max_abs_diff" in export:
        lines.append(
            f"- int8 graph vs LogMel + utterance_logits with the int8 student: max |probability diff| = "
            f"{export['waveform_vs_logmel_int8_max_abs_diff']:.2e} (the front ends' float32 differences, ~1e-6, "
            "can move a quantised activation by one step)"
        )
    lines += [f"- checkpoint: `{card['checkpoint']['file']}`, sha256 {card['checkpoint']['sha256']}", ""]
    return "\n".join(lines)


FRONT_END_SIZE_NOTE = (
    "no weight tensor for the DFT (ONNX's STFT op; a dense DFT basis for n_fft = {n_fft} would be {dft:,} bytes) "
    "nor for the mel filterbank (computed in the graph from its {edges} band edges, {edge_bytes} bytes; stored "
    "dense it would be {mel:,} bytes)"
)


def _front_end_note(features: FeatureParams) -> str:
    bins = features.n_fft // 2 + 1
    return FRONT_END_SIZE_NOTE.format(
        n_fft=features.n_fft,
        dft=2 * bins * features.n_fft * 4,
        edges=features.n_mels + 2,
        edge_bytes=(features.n_mels + 2) * 8,
        mel=bins * features.n_mels * 4,
    )


def _quantize(
    model: onnx.ModelProto, info: dict, checkpoint: Path, features: FeatureParams, evaluate: EvaluateParams, data: Path
) -> tuple[onnx.ModelProto, dict]:
    corpus, fold = info.get("corpus"), info.get("fold")
    if not isinstance(corpus, str) or not isinstance(fold, int):
        raise ValueError(f"{checkpoint}: its metadata names no corpus and fold, which --int8 calibrates on")
    fold_data = quantization.fold_data(quantization.CorpusFiles.under(data, corpus), fold)
    crops = quantization.calibration_crops(fold_data.train, features)
    quantized = quantization.quantize_student(model, crops)
    test = quantization.compare_on_test(
        OnnxStudent(model.SerializeToString(), threads=1),
        OnnxStudent(quantized.SerializeToString(), threads=1),
        fold_data,
        windowing(features, evaluate),
    )
    return quantized, {
        "method": quantization.METHOD,
        "calibration": {"corpus": corpus, "fold": fold, "crops": len(crops), "seed": quantization.CALIBRATION_SEED},
        "test": test,
    }


def export_student(
    checkpoint: str | Path,
    out: str | Path,
    features: FeatureParams,
    evaluate: EvaluateParams,
    metrics: str | Path | None = None,
    waveform: bool = False,
    int8: bool = False,
    data: str | Path = "data",
) -> dict:
    """Write ``out`` (.onnx) and its card (``out`` with .json and .md); return the card.

    ``waveform``: the graph takes 16 kHz samples (``liser.deploy.waveform``); ``int8``: the student is quantised,
    calibrated on the training crops of the checkpoint's corpus and fold, read under ``data`` (the pipeline's
    ``data/`` folder: manifests, folds, features)."""
    checkpoint, out = Path(checkpoint), Path(out)
    if not checkpoint.is_file():
        raise ValueError(f"{checkpoint}: not a file; export takes one fold's student.safetensors")
    if out.suffix != ".onnx":
        raise ValueError(f"{out}: the exported model's name should end in .onnx (its card gets .json and .md)")
    student, classes, info = load_student(checkpoint)
    if student.config.n_mels != features.n_mels:
        raise ValueError(
            f"{checkpoint}: trained on {student.config.n_mels} Mel bands, params.yaml has "
            f"features.n_mels = {features.n_mels}"
        )
    model = to_onnx(student, features)
    figures = {
        "parity_max_abs_diff": check_parity(student, OnnxStudent(model.SerializeToString()), parity_inputs(features))
    }
    quantized = None
    if int8:
        model, quantized = _quantize(model, info, checkpoint, features, evaluate, Path(data))
    figures["student_graph_bytes"] = model.ByteSize()
    if waveform:
        int8_student = OnnxStudent(model.SerializeToString()) if int8 else None
        model = waveform_model(model, features, evaluate)
        figures |= check_waveform_parity(student, int8_student, model, features, evaluate)
        figures["front_end"] = _front_end_note(features)
    figures["graph_bytes"] = model.ByteSize()
    metrics = Path(metrics) if metrics else metrics_path_for(checkpoint)
    card = model_card(checkpoint, student, classes, info, features, evaluate, metrics, figures, waveform, quantized)
    onnx.helper.set_model_props(model, {CARD_KEY: json.dumps(card, sort_keys=True)})

    write_json(out.with_suffix(".json"), card)
    write_text(out.with_suffix(".md"), card_markdown(card, out.name))
    with atomic_path(out) as tmp:  # last, so a model on disk always has its card beside it
        tmp.write_bytes(model.SerializeToString())
    return card
