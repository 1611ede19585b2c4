"""`liser stream`: one emotion distribution per hop as the audio arrives, the first after one window, in constant
memory; the whole stream's equals `liser predict --stride HOP`."""

import json
import queue
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest
import torch

from liser.cli import main
from liser.deploy.stream import EmotionStream, IncrementalLogMel, file_blocks, pcm_blocks, stream_emotions
from liser.features import LogMel, audio_blocks
from liser.predict import Predictor
from liser.students.checkpoints import save_student
from liser.students.crops import window_starts

from .audio_cases import demo_like_files, write_bad_audio_cases
from .helpers import REPO
from .test_export import random_student

CLASSES = ["anger", "disgust", "fear", "happy", "neutral", "sad"]
PARAMS_FILE = str(REPO / "params.yaml")
LISER = [sys.executable, "-c", "import sys; from liser.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "student.safetensors"
    save_student(path, random_student(11, len(CLASSES)), CLASSES, corpus="crema_d", fold=0)
    return path


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_incremental_front_end_is_logmels(repo_params, tmp_path):
    (path,) = demo_like_files(tmp_path, count=1)
    samples = np.concatenate(list(audio_blocks(path, 16000)))
    for block in (1, 511, 1600, 10_000):
        front_end = IncrementalLogMel(repo_params.features)
        parts = [front_end.push(samples[i : i + block]) for i in range(0, len(samples), block)]
        parts.append(front_end.finish())
        np.testing.assert_allclose(np.concatenate(parts, axis=1), LogMel(repo_params.features)(samples), atol=2e-5)


def test_each_window_and_the_whole_stream_are_what_predict_gives(student, tmp_path, repo_params):
    files = demo_like_files(tmp_path / "demo", count=3)
    cases = write_bad_audio_cases(tmp_path / "cases")
    files += [tmp_path / "cases" / name for name, problem in cases.items() if problem is None]
    features, hop_s = repo_params.features, 0.5
    predictor = Predictor.load(student, features, repo_params.evaluate, stride_s=hop_s)
    model = predictor.students[0]
    for path in files:
        blocks, _ = file_blocks(path, features.sample_rate)
        *windows, whole = stream_emotions(EmotionStream([model], features, hop_s), blocks)
        expected = predictor.predict(path)
        np.testing.assert_allclose(whole.probabilities, expected.probabilities, atol=1e-5, rtol=0, err_msg=path.name)
        assert whole.seconds == pytest.approx(expected.seconds)

        logmel = LogMel(features)(np.concatenate(list(audio_blocks(path, features.sample_rate))))
        padded = np.pad(logmel, ((0, 0), (0, max(0, 94 - logmel.shape[1]))), constant_values=np.log(1e-6))
        starts = window_starts(padded.shape[1], 94, hop_s / features.hop_s)
        assert [round(w.start_s / features.hop_s) for w in windows] == list(starts), path.name
        with torch.inference_mode():
            logits = model.classify(torch.from_numpy(np.stack([padded[:, s : s + 94] for s in starts])[:, None]))
        np.testing.assert_allclose(
            np.stack([w.probabilities for w in windows]), torch.softmax(logits, dim=1).numpy(), atol=1e-5, rtol=0
        )


def test_an_ensemble_streams_its_average(tmp_path, repo_params):
    for k in (0, 1):
        save_student(tmp_path / "config" / f"fold{k}" / "student.safetensors", random_student(k, 3), list("abc"))
    (path,) = demo_like_files(tmp_path, count=1)
    predictor = Predictor.load(tmp_path / "config", repo_params.features, repo_params.evaluate, stride_s=0.5)
    blocks, _ = file_blocks(path, 16000)
    *_, whole = stream_emotions(EmotionStream(predictor.students, repo_params.features, 0.5), blocks)
    np.testing.assert_allclose(whole.probabilities, predictor.predict(path).probabilities, atol=1e-5)
    assert whole.logits is None


def test_memory_does_not_grow_with_the_stream(student, repo_params):
    """Ten times the audio, the same memory: frames held, samples pending and the Python heap's peak."""
    features = repo_params.features
    model = Predictor.load(student, features, repo_params.evaluate).students[0]
    rng = np.random.default_rng(0)
    block = rng.normal(0, 0.1, 1600).astype(np.float32)  # 0.1 s
    peaks = {}
    for minutes in (0.5, 5):
        stream = EmotionStream([model], features, 0.5)
        tracemalloc.start()
        most_held = most_pending = 0
        for _ in range(int(minutes * 600)):
            stream.push(block)
            most_held = max(most_held, stream.held_frames)
            most_pending = max(most_pending, len(stream.front_end.pending))
        _, peaks[minutes] = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        _, whole = stream.finish()
        frames = 1 + int(minutes * 600) * 1600 // features.hop_length
        assert whole.windows == len(window_starts(frames, 94, 0.5 / features.hop_s))
        assert most_held <= features.crop_frames + 16 + 4  # one window, one hop, one block's frames
        assert most_pending <= features.n_fft + 1600
    assert peaks[5] < peaks[0.5] + 256 * 1024, peaks


def read_lines(process, lines):
    for line in process.stdout:
        lines.put(line)


def test_raw_pcm_on_stdin_gives_the_first_distribution_once_one_window_has_arrived(student):
    command = [*LISER, "stream", "-", "--student", str(student), "--params", PARAMS_FILE]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False
    )
    lines = queue.Queue()
    threading.Thread(target=read_lines, args=(process, lines), daemon=True).start()
    rng = np.random.default_rng(0)
    pcm = (rng.normal(0, 0.1, 16000 * 5) * 32767).astype("<i2").tobytes()
    try:
        header = lines.get(timeout=120)  # printed once the student is loaded
        assert header.split()[:2] == [b"seconds", b"emotion"]
        process.stdin.write(
            pcm[: 2 * 16000 * 3]
        )  # 3.0 s: the first window needs 3.04 s (its last frame's centre + 1024)
        process.stdin.flush()
        time.sleep(2.0)
        assert lines.empty()
        process.stdin.write(pcm[2 * 16000 * 3 : 2 * 48640])
        process.stdin.flush()
        first = lines.get(timeout=30)
        assert first.split()[0] == b"0.00-3.00"
        process.stdin.write(pcm[2 * 48640 : 2 * (48640 + 8192)])  # one hop (0.512 s) more: one more line
        process.stdin.flush()
        assert lines.get(timeout=30).split()[0] == b"0.51-3.51"
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    rest = [lines.get(timeout=5) for _ in range(lines.qsize())]
    assert (
        rest[-1].split()[:2] == [b"whole", b"0.00-3.55"] and len(rest) == 2
    )  # the window flush with the end, the whole


def test_json_lines_and_a_file(student, tmp_path, capsys, repo_params):
    path = demo_like_files(tmp_path, count=3)[2]  # three utterances, 9.7 s
    assert main(["stream", str(path), "--student", str(student), "--hop", "1", "--jsonl", "--params", PARAMS_FILE]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    *windows, whole = records
    assert whole["whole"] is True and whole["windows"] == len(windows)
    assert [w["start_s"] for w in windows[:2]] == [0.0, 0.992]  # 1 s hop: 31.25 frames, rounded
    assert set(whole["probabilities"]) == set(CLASSES) and whole["emotion"] in CLASSES
    predicted = Predictor.load(student, repo_params.features, repo_params.evaluate, stride_s=1.0).predict(path)
    np.testing.assert_allclose(list(whole["probabilities"].values()), predicted.probabilities, atol=1e-5)


def test_help_says_what_standard_input_takes(capsys):
    with pytest.raises(SystemExit):
        main(["stream", "--help"])
    shown = capsys.readouterr().out
    assert "s16le" in shown and "16 kHz" in shown and "mono" in shown and "--hop" in shown


def test_pcm_blocks_hand_on_whole_samples_whatever_the_reads(tmp_path):
    samples = np.arange(-300, 300, dtype="<i2")
    path = tmp_path / "raw.pcm"
    path.write_bytes(samples.tobytes())
    with open(path, "rb", buffering=0) as handle:  # raw reads of odd sizes split samples in two
        got = np.concatenate(list(pcm_blocks(handle, 16000, 0.0001)))
    np.testing.assert_array_equal(got, samples / 32768.0)


def test_what_cannot_be_streamed_is_one_line(student, tmp_path, capsys):
    cases = write_bad_audio_cases(tmp_path / "cases")
    run = ["--student", str(student), "--params", PARAMS_FILE]
    for name in ("silence.wav", "blip.wav", "notes.wav", "truncated.wav"):
        assert main(["stream", str(tmp_path / "cases" / name), *run]) == 1, name
        err = capsys.readouterr().err
        assert cases[name] in err and len(err.strip().splitlines()) == 1, err
    for args, problem in (
        ([str(tmp_path / "cases" / "missing.wav")], "no such file"),
        ([str(tmp_path / "cases" / "studio-48k.wav"), "--hop", "0.01"], "--hop must be at least one frame"),
        ([str(tmp_path / "cases" / "studio-48k.wav"), "--student", str(tmp_path)], "no student.safetensors"),
    ):
        assert main(["stream", args[0], *run, *args[1:]]) == 2, problem
        err = capsys.readouterr().err
        assert problem in err and err.startswith("liser stream: error:") and len(err.strip().splitlines()) == 1, err
    pcm_silence = subprocess.run([*LISER, "stream", "-", *run], input=bytes(32000), capture_output=True)
    assert pcm_silence.returncode == 1 and b"standard input: digital silence" in pcm_silence.stderr
