"""The unlabeled corpus's stage scripts as DVC runs them: stopped by SIGTERM to ``dvc repro`` within two seconds
with nothing left behind, and one ``error:`` line (exit status 2) when a stage obtains nothing usable."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from skimage import data

from liser.ffmpeg import write_video

from .helpers import REPO


def project(folder: Path, **sections) -> Path:
    """A folder holding the stage scripts and params.yaml, with ``sections`` updated."""
    shutil.copytree(REPO / "stages", folder / "stages")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, values in sections.items():
        params[name].update(values)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def environment() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def face_video(path: Path, frames: int = 90) -> Path:
    photo = data.astronaut()
    write_video(path, [photo[t // 2 : t // 2 + 256, 70 + t : 70 + t + 256] for t in range(frames)], 30, crf=18)
    return path


def descendants(root: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found, grown = found | more, bool(more)
    return found - {root}


def alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_sigterm_to_dvc_repro_stops_the_faces_stage_and_its_workers_within_two_seconds(tmp_path):
    root = project(tmp_path / "p", faces={"workers": 2, "detect_every": 1})
    videos = root / "videos"
    videos.mkdir()
    face_video(videos / "seg_00.mp4")
    for k in range(1, 10):
        shutil.copyfile(videos / "seg_00.mp4", videos / f"seg_{k:02d}.mp4")
    names = [f"seg_{k:02d}" for k in range(10)]
    pd.DataFrame({"segment": names, "video_file": [f"videos/{n}.mp4" for n in names], "speaker": "s"}).to_parquet(
        root / "segments.parquet"
    )
    (root / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "faces": {
                        "cmd": "python stages/crop_faces.py --segments segments.parquet --out faces --metrics m.json",
                        "deps": ["segments.parquet"],
                        "outs": [{"faces": {"persist": True, "cache": False}}],
                    }
                }
            }
        )
    )
    env = {**environment(), "SHELL": "/bin/sh"}  # dvc runs the stage with $SHELL -c: dash stays in between
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, env=env)
    dvc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "faces"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((root / "faces" / "tracks").glob("*.npz")):
        time.sleep(0.05)
    assert list((root / "faces" / "tracks").glob("*.npz")), "the stage made no track"
    stage = descendants(dvc.pid)
    assert len(stage) >= 3  # the stage and its two workers (and their tools)
    dvc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    dvc.wait(timeout=30)
    while time.monotonic() - stopped < 2 and any(alive(pid) for pid in stage):
        time.sleep(0.05)
    outlived = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in stage if alive(pid)}
    assert not outlived, f"processes of the stage outlived it by 2 s: {outlived}"
    left = snapshot(root / "faces")
    assert not [name for name in left if name.endswith(".tmp")]
    assert len(list((root / "faces" / "tracks").glob("*.npz"))) < 10  # stopped part way
    time.sleep(3)
    assert snapshot(root / "faces") == left  # nothing written after the end


def run_stage(root: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *arguments], cwd=root, env=environment(), capture_output=True, text=True, timeout=300
    )


def test_an_acquisition_that_obtains_nothing_stops_with_one_line(tmp_path):
    corpus = tmp_path / "p" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    root = project(tmp_path / "p", unlabeled={"reader": "folder", "root": "corpus"})
    result = run_stage(root, "stages/acquire_mspface.py", "--out", "acquired", "--metrics", "m.json")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no segment obtained of 1 selected" in lines[0] and "Traceback" not in result.stderr
    assert "unreadable video" in (root / "acquired" / "failures.csv").read_text()
    assert not (root / "m.json").exists()


def test_faces_and_windows_that_keep_nothing_stop_with_one_line(tmp_path):
    root = project(tmp_path / "p")
    coffee = np.asarray(data.coffee()[:256, :256])
    write_video(root / "coffee.mp4", [np.roll(coffee, t, axis=1) for t in range(20)], 30)
    pd.DataFrame({"segment": ["coffee"], "video_file": ["coffee.mp4"], "speaker": ["s"]}).to_parquet(
        root / "segments.parquet"
    )
    faces = run_stage(
        root, "stages/crop_faces.py", "--segments", "segments.parquet", "--out", "faces", "--metrics", "f"
    )
    assert faces.returncode == 2 and "error: " in faces.stderr and "no segment kept a face" in faces.stderr
    assert "Traceback" not in faces.stderr and (root / "faces" / "coverage.csv").is_file()

    short = root / "short"
    short.mkdir()
    pd.DataFrame(
        {"segment": ["a"], "frames": [10], "face": ["1" * 10], "speaker": ["s"], "gender": ["male"]}
        | {"duration": [0.33], "audio_file": ["a.wav"]}
    ).to_parquet(short / "face_masks.parquet")
    windows = run_stage(
        root, "stages/cut_windows.py", "--faces", "short", "--windows", "w", "--manifest", "m", "--metrics", "w.json"
    )
    assert windows.returncode == 2 and windows.stderr.count("error: ") == 1 and "one window" in windows.stderr
    assert "Traceback" not in windows.stderr


def test_sigterm_stops_an_acquisition_and_its_ffmpeg_within_two_seconds(tmp_path):
    """The acquisition's videos are handled by threads, each running ffmpeg: SIGTERM kills the tools and ends the
    stage without waiting for them, and leaves no temporary cut behind."""
    from .helpers import write_tone
    from .test_mspface import write_lists

    root = project(tmp_path / "p", mspface={"lists": "lists", "workers": 2, "retries": 0, "allow_local_files": True})
    sound = write_tone(root / "tone.wav", seconds=40.0)
    photo = data.astronaut()
    source = root / "lists" / "online" / "long.mp4"
    source.parent.mkdir(parents=True)
    write_video(source, (photo[t % 200 : t % 200 + 240, :320] for t in range(1200)), 30, audio=sound)
    videos = [f"MSP-FACE_000{v}.mp4\tonline/long.mp4" for v in (1, 2)]
    segments = [f"{5 * s}.0\t{5 * s + 5}.0\tMSP-FACE_000{v}_000{s + 1}.mp4" for v in (1, 2) for s in range(6)]
    speakers = [f"MSP-FACE_000{v}_000{s + 1}.mp4,Speaker_{v}" for v in (1, 2) for s in range(6)]
    write_lists(root / "lists", videos, segments, speakers, ["Speaker_1,Female", "Speaker_2,Male"])
    command = [sys.executable, "stages/acquire_mspface.py", "--out", "acquired", "--metrics", "m.json"]
    stage = subprocess.Popen(command, cwd=root, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((root / "acquired" / "segments").glob("*.wav")):
        time.sleep(0.05)
    tools = descendants(stage.pid)
    assert tools, "no ffmpeg under way"
    stopped = time.monotonic()
    stage.send_signal(signal.SIGTERM)
    assert stage.wait(timeout=10) == 128 + signal.SIGTERM
    assert time.monotonic() - stopped < 2
    time.sleep(0.3)
    assert not [pid for pid in tools if alive(pid)]
    left = snapshot(root / "acquired")
    assert not [name for name in left if name.endswith(".tmp")]
    assert len([name for name in left if name.endswith(".wav")]) < 12  # stopped part way
    time.sleep(3)
    assert snapshot(root / "acquired") == left
