"""The unlabeled corpus's stages on a real Ray cluster of two nodes on this machine (ray.cluster_utils.Cluster),
on the loopback interface only: the same bytes as on this machine's processes, a worker killed mid-stage, the
driver killed and run again, an undecodable video among good ones."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skimage import data

from liser.cluster import LOOPBACK_ONLY, ON_THIS_MACHINE, Resources, run_jobs
from liser.ffmpeg import write_video
from liser.params import RuntimeParams
from liser.unlabeled.acquire import AcquireOptions, acquire, prepare_files
from liser.unlabeled.face_crops import crop_segments
from liser.unlabeled.faces import CropOptions

from .helpers import REPO, write_tone

LOCAL = ON_THIS_MACHINE


@pytest.fixture(scope="module")
def cluster():
    os.environ.update(LOOPBACK_ONLY)  # before Ray is imported: this machine's Ray on 127.0.0.1 only
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address, logging_level="WARNING", log_to_driver=False)
    nodes.wait_for_nodes()
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def on_ray(cluster):
    return RuntimeParams(cluster="ray", ray_address=cluster.address, shared_root=None)


def _descendants(root: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grown = bool(more)
    return found - {root}


def _listening(pids: set[int]) -> list[str]:
    """The local addresses of the TCP sockets ``pids`` listen on, as /proc/net gives them (hex)."""
    inodes = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                addresses.append(fields[1].split(":")[0])
    return addresses


LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def test_the_test_cluster_listens_and_talks_on_loopback_only(cluster):
    import ray

    assert len(ray.nodes()) == 2
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    listening = _listening(_descendants(os.getpid()))
    assert listening and set(listening) <= LOOPBACK_HEX


def _double(value):
    return 2 * value


def test_jobs_come_back_once_each_with_declared_resources(on_ray):
    results = dict(run_jobs(_double, list(range(20)), on_ray, workers=1, resources=Resources(cpus=1, memory_mb=64)))
    assert results == {index: 2 * index for index in range(20)}
    limited = dict(
        run_jobs(_double, list(range(6)), on_ray, workers=1, group_of=lambda index: index % 2, group_limit=1)
    )
    assert limited == {index: 2 * index for index in range(6)}


# --- faces ----------------------------------------------------------------------------------------------------


def moving_photo(frames):
    photo = data.astronaut()
    return [photo[t // 2 : t // 2 + 256, 70 + 2 * t : 70 + 2 * t + 256] for t in range(frames)]


@pytest.fixture(scope="module")
def segment_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segments")
    face = folder / "seg_00.mp4"
    write_video(face, moving_photo(40), 30, preset="ultrafast", crf=18)
    for k in range(1, 6):
        shutil.copyfile(face, folder / f"seg_{k:02d}.mp4")
    (folder / "seg_06.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    videos = sorted(folder.glob("*.mp4"))
    return pd.DataFrame({"segment": [v.stem for v in videos], "video_file": [str(v) for v in videos], "speaker": "s"})


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def faces_here(segment_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("faces_here")
    report = crop_segments(segment_videos, out, CropOptions(detect_every=2), workers=1)
    return out, report


def test_faces_on_ray_write_the_bytes_they_write_here(segment_videos, faces_here, on_ray, tmp_path):
    here, report = faces_here
    assert report["segments_kept"] == 6 and "unreadable video" in report["dropped"][0]["reason"]  # the broken one
    on_cluster = crop_segments(segment_videos, tmp_path, CropOptions(detect_every=2), runtime=on_ray)  # bytes sent
    assert on_cluster == report
    assert files_of(tmp_path) == files_of(here)


def _ray_worker_running_a_task() -> int | None:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"ray::_call"):
                return int(cmdline.parent.name)
        except OSError:
            continue
    return None


def test_a_worker_killed_mid_stage_has_its_task_retried_and_no_row_twice_or_lost(
    segment_videos, faces_here, on_ray, tmp_path
):
    killed = []

    def kill_one_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            pid = _ray_worker_running_a_task()
            if pid is not None:
                time.sleep(0.3)  # into its task
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    report = crop_segments(segment_videos, tmp_path, CropOptions(detect_every=2), runtime=on_ray)
    killer.join()
    assert killed, "no Ray worker was seen running a task"
    here, expected = faces_here
    assert report == expected
    coverage = pd.read_csv(tmp_path / "coverage.csv")
    assert sorted(coverage["segment"]) == sorted(segment_videos["segment"])  # each once
    assert files_of(tmp_path) == files_of(here)


DRIVER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from liser.params import RuntimeParams
    from liser.unlabeled.face_crops import crop_segments
    from liser.unlabeled.faces import CropOptions

    segments = pd.read_parquet(sys.argv[1])
    runtime = RuntimeParams(cluster="ray", ray_address=sys.argv[3], shared_root=None)
    crop_segments(segments, sys.argv[2], CropOptions(detect_every=2), runtime=runtime)
    """
)


def test_a_killed_driver_is_resumed_by_running_it_again(segment_videos, faces_here, cluster, tmp_path):
    table = tmp_path / "segments.parquet"
    segment_videos.to_parquet(table)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    out = tmp_path / "faces"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(script), str(table), str(out), cluster.address]
    driver = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "tracks").glob("*.npz"))) < 2:
        time.sleep(0.1)
    driver.kill()
    driver.wait()
    done = len(list((out / "tracks").glob("*.npz")))
    assert 2 <= done < 6, "the driver was not stopped part way"
    subprocess.run(command, env=env, check=True, stderr=subprocess.DEVNULL)
    here, _ = faces_here
    assert files_of(out) == files_of(here)


# --- acquisition ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vox_tree(tmp_path_factory):
    """A VoxCeleb2-layout tree of three 25 fps clips with sound and one clip that is not a video."""
    root = tmp_path_factory.mktemp("VoxCeleb2")
    sound = write_tone(root.parent / "tone.wav", seconds=1.0)
    for speaker, video, clip in (("id00012", "21Uxsk56VDQ", "00001"), ("id00012", "21Uxsk56VDQ", "00002")) + (
        ("id00015", "0fijmz4vTVU", "00001"),
    ):
        path = root / "dev" / "mp4" / speaker / video / f"{clip}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, moving_photo(25), 25, preset="ultrafast", audio=sound)
    broken = root / "dev" / "mp4" / "id00015" / "0fijmz4vTVU" / "00002.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    from liser.corpora.voxceleb2 import read_corpus

    return read_corpus(root).segments


def test_a_corpus_of_files_is_obtained_alike_here_and_on_ray_and_the_bad_file_is_rejected(vox_tree, on_ray, tmp_path):
    here = prepare_files(vox_tree, tmp_path / "here", workers=2)
    there = prepare_files(vox_tree, tmp_path / "ray", workers=2, runtime=on_ray)
    assert here["segments_ok"] == 3 and here["segments_failed"] == 1
    (failure,) = here["failures"]
    assert failure["id"] == "id00015_0fijmz4vTVU_00002" and "unreadable video" in failure["reason"]
    assert str(tmp_path) not in failure["reason"]
    here.pop("this_run"), there.pop("this_run")
    assert here == there
    here_files, ray_files = files_of(tmp_path / "here"), files_of(tmp_path / "ray")
    assert sorted(here_files) == ["report.json", "segments.parquet"] + [
        f"segments/{s}.wav" for s in sorted(vox_tree["segment"])[:3]
    ]
    assert {k: v for k, v in here_files.items() if k != "segments.parquet"} == {
        k: v for k, v in ray_files.items() if k != "segments.parquet"
    }
    tables = [pd.read_parquet(tmp_path / side / "segments.parquet") for side in ("here", "ray")]
    assert tables[0].drop(columns="audio_file").equals(tables[1].drop(columns="audio_file"))


def test_downloads_on_ray_give_the_segments_they_give_here(vox_tree, on_ray, tmp_path):
    source = Path(vox_tree["source"].iloc[0])
    videos = pd.DataFrame(
        {"video": ["VID_A", "VID_B"], "url": [source.as_uri(), (tmp_path / "gone.mp4").as_uri()], "listed": ["a", "b"]}
    )
    segments = pd.DataFrame(
        {
            "segment": ["VID_A_0001", "VID_A_0002", "VID_B_0001"],
            "video": ["VID_A", "VID_A", "VID_B"],
            "start": [0.0, 0.5, 0.0],
            "end": [0.5, 1.0, 1.0],
            "speaker": ["p", "p", "q"],
        }
    )
    options = AcquireOptions(retries=0, backoff_s=0, allow_local_files=True)
    here = acquire(segments, videos, tmp_path / "here", options=options)
    there = acquire(segments, videos, tmp_path / "ray", options=options, runtime=on_ray)
    reason = here["failures"][0]["reason"]
    assert here["segments_ok"] == 2 and "No such file or directory: 'b'" in reason and str(tmp_path) not in reason
    here.pop("this_run"), there.pop("this_run")
    assert here == there
    for name in ("VID_A_0001.mp4", "VID_A_0001.wav", "VID_A_0002.mp4", "VID_A_0002.wav"):
        assert (tmp_path / "here/segments" / name).read_bytes() == (tmp_path / "ray/segments" / name).read_bytes()
    assert not (tmp_path / "ray" / "videos").exists()  # on Ray without a shared folder, the download is not kept


# --- the teachers' window scoring through Ray Data -----------------------------------------------------------------


@pytest.fixture(scope="module")
def scored_faces(segment_videos, tmp_path_factory):
    """The same segments' faces kept losslessly, and not kept (tracks only), and their window table."""
    from liser.unlabeled.windows import cut_windows

    kept, streamed = tmp_path_factory.mktemp("kept"), tmp_path_factory.mktemp("streamed")
    crop_segments(segment_videos, kept, CropOptions(detect_every=2, crf=0))
    crop_segments(segment_videos, streamed, CropOptions(detect_every=2, crf=0), keep_crops=False)
    windows = kept / "windows.parquet"
    cut_windows(kept / "face_masks.parquet", 16, 30.0, windows, kept / "manifest.parquet")
    return kept, streamed, windows


@pytest.fixture(scope="module")
def video_teacher():
    import torch

    from liser.models.s2d import S2DConfig
    from liser.teachers.video_model import build_video_teacher

    model = build_video_teacher(S2DConfig.small(), seed=4)
    with torch.no_grad():
        model.head.fc_cls.weight.normal_(0, 0.1)
    return model.eval()


def test_video_scoring_on_ray_and_from_streamed_faces_writes_the_same_table(
    scored_faces, video_teacher, on_ray, tmp_path
):
    from liser.teachers.video_windows import window_softmaxes
    from liser.window_tables import read_window_table

    kept, streamed, windows = scored_faces
    table = read_window_table(windows)
    assert len(table) == 12  # 6 kept segments of 40 frames, 2 windows each
    runs = {
        "kept, here": (kept, LOCAL),
        "streamed, here": (streamed, LOCAL),
        "kept, on Ray": (kept, on_ray),
        "streamed, on Ray": (streamed, on_ray),  # tracks and videos sent with the tasks
    }
    written = {}
    for name, (faces, runtime) in runs.items():
        out = tmp_path / f"{name}.parquet"
        window_softmaxes(video_teacher, table, faces, 3, device="cpu", out=out, runtime=runtime, threads=1)
        written[name] = out.read_bytes()
    assert len(set(written.values())) == 1, "the four ways give different tables"


@pytest.fixture(scope="module")
def speech_teacher(tmp_path_factory):
    import soundfile as sf

    from liser.teachers.speech_model import build_speech_teacher, save_speech_teacher
    from liser.unlabeled.windows import segment_windows

    from .helpers import section
    from .teacher_fixtures import tiny_base

    folder = tmp_path_factory.mktemp("speech")
    base = tiny_base(folder / "base")
    model = build_speech_teacher(base, 3, section("speech_teacher", lora_rank=2, lora_alpha=4.0), seed=0)
    save_speech_teacher(folder / "teachers" / "fold0", model, ["low", "middle", "high"])
    rng = np.random.default_rng(0)
    rows, tables = [], []
    for i, frames in enumerate((70, 40, 48, 90, 33)):
        path = folder / f"seg_{i}.wav"
        sf.write(path, (0.1 * rng.normal(size=int(frames / 30 * 16000) - 400 * (i == 2))).astype(np.float32), 16000)
        rows.append({"utterance": f"seg_{i}", "path": str(path)})
        tables.append(segment_windows(f"seg_{i}", "s", np.ones(frames, bool), 16, 30.0))
    pd.DataFrame(rows).to_parquet(folder / "manifest.parquet")
    from liser.window_tables import write_window_table

    write_window_table(folder / "windows.parquet", pd.concat(tables, ignore_index=True))
    return folder, base


def test_speech_scoring_on_ray_writes_the_same_table(speech_teacher, on_ray, tmp_path):
    from liser.teachers.speech_windows import speech_window_softmaxes

    folder, base = speech_teacher
    common = (folder / "teachers", [0], base, folder / "manifest.parquet", folder / "windows.parquet")
    speech_window_softmaxes(*common, tmp_path / "here", 3, 1)
    speech_window_softmaxes(*common, tmp_path / "ray", 3, 1, runtime=on_ray)
    here, there = (tmp_path / side / "fold0.parquet" for side in ("here", "ray"))
    assert pd.read_parquet(here).shape == (16, 8)  # 4 + 2 + 3 + 5 + 2 windows
    assert here.read_bytes() == there.read_bytes()
