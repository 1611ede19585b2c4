"""The student with its front end inside: one ONNX graph from 16 kHz mono samples to the utterance's emotions.

The graph does what ``liser predict`` does after decoding (``LogMel``, then ``evaluate.utterance_logits``):

1. STFT with centred frames: the samples zero-padded by n_fft/2 at both ends, a periodic Hann window
   (ONNX's ``HannWindow``), ONNX's ``STFT`` op (no DFT basis stored: a dense one for n_fft = 2048 would take
   ~17 MB), power = re² + im²;
2. the Slaney mel filterbank, log(mel + log_floor).  The (n_fft/2 + 1) x n_mels matrix (262,400 bytes for 64
   bands) is not stored either: the graph computes it, in float64 as librosa does, from the n_mels + 2 band
   edges (528 bytes), and ONNX Runtime folds it into a constant when the session loads;
3. the log-Mel padded on the right to one window with the value of silence, windows at the evaluation stride
   (rounded to frames, a last one flush with the end), the student's supervised logits for each, computed
   ``evaluate.eval_batch_size`` windows at a time in an ONNX ``Loop``: the student's activations (~3 MB a window)
   do not grow with the recording, only the windows themselves (24 KB each, 14 MB a minute at a 0.1 s stride);
4. ``logits``: their mean over the windows; ``probabilities``: its softmax; ``window_probabilities``: each
   window's softmax; ``window_start_s``: where each window starts.

Decoding, channel mixing and resampling to 16 kHz stay outside: the caller's (soundfile and soxr in Python, the
browser's decoder in the web page).
"""

from __future__ import annotations

import librosa
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from liser.features import LogMel
from liser.params import EvaluateParams, FeatureParams

__all__ = [
    "FRONT_END_OUTPUT",
    "WAVEFORM_INPUT",
    "WAVEFORM_OUTPUTS",
    "front_end_model",
    "mel_filterbank_model",
    "waveform_model",
]

WAVEFORM_INPUT = "waveform"
WAVEFORM_OUTPUTS = ("probabilities", "logits", "window_probabilities", "window_start_s")
FRONT_END_OUTPUT = "windows"  # the front end's output: (windows, 1, n_mels, crop_frames)
_STUDENT_PREFIX = "student/"


def _constant(name: str, value: np.ndarray | float | int, dtype: type | None = None) -> onnx.NodeProto:
    array = np.asarray(value, dtype=dtype)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


class _Graph:
    """Nodes added in order, each named after its first output."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []

    def const(self, name: str, value: np.ndarray | float | int, dtype: type | None = None) -> str:
        self.nodes.append(_constant(name, value, dtype))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attributes: object) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output


def _mel_filterbank(g: _Graph, features: FeatureParams) -> str:
    """(n_fft/2 + 1, n_mels) float32 Slaney mel filterbank, computed as ``librosa.filters.mel`` computes it."""
    n_mels, n_fft, sr = features.n_mels, features.n_fft, features.sample_rate
    edges = librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=sr / 2, htk=False)  # float64, the band edges
    mel_f = g.const("mel_edges_hz", edges, np.float64)
    # np.fft.rfftfreq: the bins' indices times 1 / (n * d)
    bins = g.op(
        "Range",
        [g.const("zero_i", 0, np.int64), g.const("bins_n", n_fft // 2 + 1, np.int64), g.const("one_i", 1, np.int64)],
        "fft_bins",
    )
    hz_per_bin = g.const("hz_per_bin", 1.0 / (n_fft * (1.0 / sr)), np.float64)
    fftfreqs = g.op("Mul", [g.op("Cast", [bins], "fft_bins_f64", to=TensorProto.DOUBLE), hz_per_bin], "fftfreqs")

    def rows(first: int, stop: int, name: str) -> str:
        return g.op(
            "Slice", [mel_f, g.const(f"{name}_from", [first], np.int64), g.const(f"{name}_to", [stop], np.int64)], name
        )

    def column(vector: str) -> str:
        return g.op("Unsqueeze", [vector, g.const(f"{vector}_axis", [1], np.int64)], f"{vector}_column")

    fdiff = g.op("Sub", [rows(1, n_mels + 2, "edges_hi"), rows(0, n_mels + 1, "edges_lo")], "fdiff")
    ramps = g.op(
        "Sub",
        [column(mel_f), g.op("Unsqueeze", [fftfreqs, g.const("row_axis", [0], np.int64)], "fftfreqs_row")],
        "ramps",
    )

    def ramp_rows(first: int, name: str) -> str:
        return g.op(
            "Slice",
            [ramps, g.const(f"{name}_from", [first], np.int64), g.const(f"{name}_to", [first + n_mels], np.int64)],
            name,
        )

    def fdiff_rows(first: int, name: str) -> str:
        sliced = g.op(
            "Slice",
            [fdiff, g.const(f"{name}_from", [first], np.int64), g.const(f"{name}_to", [first + n_mels], np.int64)],
            name,
        )
        return column(sliced)

    lower = g.op("Div", [g.op("Neg", [ramp_rows(0, "ramps_lo")], "ramps_lo_neg"), fdiff_rows(0, "fdiff_lo")], "lower")
    upper = g.op("Div", [ramp_rows(2, "ramps_hi"), fdiff_rows(1, "fdiff_hi")], "upper")
    triangles = g.op("Max", [g.const("zero_f64", 0.0, np.float64), g.op("Min", [lower, upper], "lower_upper")], "tri")
    # librosa stores the triangles in float32, then scales them by the Slaney norm in float64
    triangles = g.op(
        "Cast", [g.op("Cast", [triangles], "tri_f32", to=TensorProto.FLOAT)], "tri_f32_f64", to=TensorProto.DOUBLE
    )
    widths = g.op("Sub", [rows(2, n_mels + 2, "edges_top"), rows(0, n_mels, "edges_bottom")], "band_widths")
    enorm = g.op("Div", [g.const("two_f64", 2.0, np.float64), widths], "enorm")
    weights = g.op("Mul", [triangles, column(enorm)], "mel_weights_f64")
    weights = g.op("Cast", [weights], "mel_weights", to=TensorProto.FLOAT)  # (n_mels, bins)
    return g.op("Transpose", [weights], "mel_basis_t", perm=[1, 0])


def _front_end_graph(g: _Graph, features: FeatureParams, evaluate: EvaluateParams) -> None:
    """``waveform`` (samples,) -> ``windows`` (windows, 1, n_mels, crop_frames) and ``window_start_s``."""
    n_fft, hop, frames_per_window = features.n_fft, features.hop_length, features.crop_frames
    i64 = np.int64
    signal = g.op("Unsqueeze", [WAVEFORM_INPUT, g.const("signal_axes", [0, 2], i64)], "signal")  # (1, samples, 1)
    half = n_fft // 2
    padded = g.op("Pad", [signal, g.const("centre_pads", [0, half, 0, 0, half, 0], i64)], "signal_centred")
    window = g.op("HannWindow", [g.const("n_fft", n_fft, i64)], "hann", periodic=1)
    spectrum = g.op(
        "STFT",
        [padded, g.const("hop_length", hop, i64), window, g.const("frame_length", n_fft, i64)],
        "stft",
        onesided=1,
    )  # (1, frames, bins, 2)
    power = g.op("ReduceSumSquare", [spectrum, g.const("complex_axis", [3], i64)], "power", keepdims=0)
    mel = g.op("MatMul", [power, _mel_filterbank(g, features)], "mel")  # (1, frames, n_mels)
    mel = g.op("Squeeze", [mel, g.const("batch_axis", [0], i64)], "mel_frames")
    floor = g.const("log_floor", features.log_floor, np.float32)
    logmel = g.op("Log", [g.op("Add", [mel, floor], "mel_floored")], "logmel")  # (frames, n_mels)

    # right-padded with the log-Mel of silence to at least one window (``crops.pad_to``)
    frames = g.op("Gather", [g.op("Shape", [logmel], "logmel_shape"), g.const("frames_index", 0, i64)], "frames")
    short_by = g.op("Sub", [g.const("window_frames", frames_per_window, i64), frames], "short_by")
    missing = g.op("Max", [short_by, g.const("zero_frames", 0, i64)], "missing_frames")
    pads = g.op(
        "Concat",
        [
            g.const("pads_before", [0, 0], i64),
            g.op("Unsqueeze", [missing, g.const("missing_axis", [0], i64)], "missing_1d"),
            g.const("pads_after", [0], i64),
        ],
        "frame_pads",
        axis=0,
    )
    silence = g.const("silence", LogMel.silence_of(features), np.float32)
    logmel = g.op("Pad", [logmel, pads, silence], "logmel_padded")

    # window starts (``crops.window_starts``): round(k * stride) for k * stride <= last, then last itself
    total = g.op("Gather", [g.op("Shape", [logmel], "padded_shape"), g.const("padded_index", 0, i64)], "padded_frames")
    last = g.op("Sub", [total, g.const("window_frames_again", frames_per_window, i64)], "last_start")
    limit = g.op(
        "Add",
        [g.op("Cast", [last], "last_f64", to=TensorProto.DOUBLE), g.const("arange_margin", 1e-9, np.float64)],
        "starts_limit",
    )
    stride = g.const("stride_frames", evaluate.stride_s / features.hop_s, np.float64)
    steps = g.op("Range", [g.const("zero_f64_start", 0.0, np.float64), limit, stride], "steps")
    rounded = g.op("Cast", [g.op("Round", [steps], "steps_rounded")], "starts_rounded", to=TensorProto.INT64)
    with_last = g.op(
        "Concat",
        [rounded, g.op("Unsqueeze", [last, g.const("last_axis", [0], i64)], "last_1d")],
        "starts_with_last",
        axis=0,
    )
    starts = g.op("Unique", [with_last], "starts", sorted=1)  # sorted, and no repeats when the stride is < 1 frame

    offsets = g.op(
        "Range",
        [g.const("zero_offset", 0, i64), g.const("window_len", frames_per_window, i64), g.const("one_offset", 1, i64)],
        "window_offsets",
    )
    index = g.op(
        "Add",
        [g.op("Unsqueeze", [starts, g.const("starts_axis", [1], i64)], "starts_column"), offsets],
        "window_frames_index",
    )
    windows = g.op("Gather", [logmel, index], "windows_tf", axis=0)  # (windows, frames, n_mels)
    windows = g.op("Transpose", [windows], "windows_ft", perm=[0, 2, 1])
    g.op("Unsqueeze", [windows, g.const("channel_axis", [1], i64)], FRONT_END_OUTPUT)
    g.op(
        "Mul",
        [g.op("Cast", [starts], "starts_f32", to=TensorProto.FLOAT), g.const("hop_s", features.hop_s, np.float32)],
        "window_start_s",
    )


def _head_graph(g: _Graph, logits: str) -> None:
    """Per-window logits (windows, K) -> the utterance's mean logits and softmaxes."""
    g.op("Softmax", [logits], "window_probabilities", axis=-1)
    g.op("ReduceMean", [logits, g.const("windows_axis", [0], np.int64)], "logits", keepdims=0)
    g.op("Softmax", ["logits"], "probabilities", axis=-1)


def _tensor(name: str, dtype: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def _like(student: onnx.ModelProto, graph: onnx.GraphProto) -> onnx.ModelProto:
    return helper.make_model(graph, opset_imports=list(student.opset_import), ir_version=student.ir_version)


def front_end_model(features: FeatureParams, evaluate: EvaluateParams, like: onnx.ModelProto) -> onnx.ModelProto:
    """The front end alone: ``waveform`` -> ``windows`` and ``window_start_s`` (for checks and for composing)."""
    g = _Graph()
    _front_end_graph(g, features, evaluate)
    graph = helper.make_graph(
        g.nodes,
        "liser_front_end",
        [_tensor(WAVEFORM_INPUT, TensorProto.FLOAT, ["samples"])],
        [
            _tensor(FRONT_END_OUTPUT, TensorProto.FLOAT, ["windows", 1, features.n_mels, features.crop_frames]),
            _tensor("window_start_s", TensorProto.FLOAT, ["windows"]),
        ],
    )
    return _like(like, graph)


def mel_filterbank_model(features: FeatureParams) -> onnx.ModelProto:
    """The graph's mel filterbank as a model of its own (no input): to compare with librosa's matrix."""
    g = _Graph()
    basis = _mel_filterbank(g, features)
    n_bins = features.n_fft // 2 + 1
    graph = helper.make_graph(g.nodes, "mel_filterbank", [], [_tensor(basis, TensorProto.FLOAT, [n_bins, None])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def _batched_student(g: _Graph, student: onnx.ModelProto, windows: str, batch: int) -> None:
    """Nodes running ``student`` on ``windows`` ``batch`` at a time in an ONNX ``Loop`` (as ``utterance_logits``
    runs it), so that its activations do not grow with the number of windows: ``window_logits`` (windows, K).

    The student's weights are the loop body's own initializers: ONNX Runtime's fusions (batch norm into the
    convolutions, QDQ into integer kernels) need them constant, and weights read from the outer graph are not,
    for a subgraph (the int8 graph ran 2.5x slower so)."""
    prefixed = onnx.compose.add_prefix(student, _STUDENT_PREFIX)
    (student_input,), (student_output,) = prefixed.graph.input, prefixed.graph.output
    classes = student_output.type.tensor_type.shape.dim[-1].dim_value
    if not classes:
        raise ValueError("the student graph's logits have no fixed number of classes")
    i64 = np.int64
    count = g.op("Gather", [g.op("Shape", [windows], "windows_shape"), g.const("count_index", 0, i64)], "window_count")

    def ceil_div(a: str, b: str, name: str) -> str:
        one_less = g.op("Sub", [b, g.const(f"{name}_one", 1, i64)], f"{name}_less")
        return g.op("Div", [g.op("Add", [a, one_less], f"{name}_up"), b], name)

    # as few batches of at most ``batch`` as can hold them, all of one size (a loop's outputs are stacked), so that
    # at most (batches - 1) windows are padding: one window is one batch of one
    batches = ceil_div(count, g.const("batch_most", batch, i64), "batches")
    size = ceil_div(count, batches, "batch_size")
    pad_by = g.op("Sub", [g.op("Mul", [batches, size], "padded_count"), count], "batch_padding")
    pads = g.op(
        "Concat",
        [
            g.const("window_pads_before", [0, 0, 0, 0], i64),
            g.op("Unsqueeze", [pad_by, g.const("pad_axis", [0], i64)], "batch_padding_1d"),
            g.const("window_pads_after", [0, 0, 0], i64),
        ],
        "window_pads",
        axis=0,
    )
    padded = g.op("Pad", [windows, pads], "windows_whole_batches")  # the last batch filled up with zeros

    body = _Graph()
    first = body.op(
        "Unsqueeze",
        [
            body.op("Mul", ["batch_index", size], "batch_first"),
            body.const("body_axis", [0], i64),
        ],
        "batch_first_1d",
    )
    last = body.op("Add", [first, size], "batch_last_1d")
    body.op("Slice", [padded, first, last, body.const("body_window_axis", [0], i64)], student_input.name)
    body.nodes += prefixed.graph.node
    body.op("Identity", ["batch_condition"], "batch_condition_out")
    body_graph = helper.make_graph(
        body.nodes,
        "student_batch",
        [_tensor("batch_index", TensorProto.INT64, []), _tensor("batch_condition", TensorProto.BOOL, [])],
        [
            _tensor("batch_condition_out", TensorProto.BOOL, []),
            _tensor(student_output.name, TensorProto.FLOAT, [None, classes]),
        ],
        initializer=prefixed.graph.initializer,
    )
    g.nodes.append(helper.make_node("Loop", [batches, ""], ["batched_logits"], name="batched_student", body=body_graph))
    flat = g.op("Reshape", ["batched_logits", g.const("flat_shape", [-1, classes], i64)], "padded_logits")
    g.op(
        "Slice",
        [
            flat,
            g.const("logits_from", [0], i64),
            g.op("Unsqueeze", [count, g.const("count_axis", [0], i64)], "window_count_1d"),
            g.const("logits_axis", [0], i64),
        ],
        "window_logits",
    )


def waveform_model(
    student: onnx.ModelProto, features: FeatureParams, evaluate: EvaluateParams, batch: int | None = None
) -> onnx.ModelProto:
    """``student`` (log-Mel windows ``logmel`` -> ``logits``, float32 or quantised) with the front end before it,
    run on ``batch`` windows at a time (default ``evaluate.eval_batch_size``), and the utterance's averaging after
    it."""
    (student_output,) = student.graph.output
    g = _Graph()
    _front_end_graph(g, features, evaluate)
    _batched_student(g, student, FRONT_END_OUTPUT, batch or evaluate.eval_batch_size)
    _head_graph(g, "window_logits")
    classes = student_output.type.tensor_type.shape.dim[-1].dim_value
    graph = helper.make_graph(
        g.nodes,
        "liser_waveform_student",
        [_tensor(WAVEFORM_INPUT, TensorProto.FLOAT, ["samples"])],
        [
            _tensor("probabilities", TensorProto.FLOAT, [classes]),
            _tensor("logits", TensorProto.FLOAT, [classes]),
            _tensor("window_probabilities", TensorProto.FLOAT, ["windows", classes]),
            _tensor("window_start_s", TensorProto.FLOAT, ["windows"]),
        ],
    )
    model = _like(student, graph)
    onnx.checker.check_model(model)
    return model
