"""The teachers' published weights as pipeline inputs: fetched once, checked, and one clear message when offline.

No test reaches a network: the Hugging Face cache is filled beforehand, files are put in place beforehand, and URL
fetching is served from a local HTTP server.
"""

import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from transformers import HubertConfig, HubertModel

from liser.files import PLACEHOLDER, read_json
from liser.params import load_params, parse_params
from liser.teachers.fetching import (
    RECORD_FILE,
    ChecksumMismatch,
    Pins,
    UnsafeWeights,
    WeightsUnavailable,
    fetch_url_file,
)
from liser.teachers.speech_base import provide_speech_base
from liser.teachers.speech_input import WaveformInput, waveform_input
from liser.teachers.speech_model import build_speech_teacher
from liser.teachers.video_weights import MOBILEFACENET_FILE, S2D_FILE, fetch_video_weights, published_files

from .helpers import REPO, copy_project, section

TINY_HUBERT = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16,) * 7,
    "num_conv_pos_embeddings": 8,
    "num_conv_pos_embedding_groups": 2,
}
COMMIT = "dba3bb02fda4248b6e082697eee756de8fe8aa8a"  # hubert-base-ls960's, as the paper profile pins it


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob(data: bytes) -> str:
    """What `git hash-object` prints for a file of these bytes."""
    return (
        subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True)
        .stdout.strip()
        .decode()
    )


def tiny_hubert(folder: Path) -> Path:
    HubertModel(HubertConfig(**TINY_HUBERT)).save_pretrained(folder)
    return folder


def fill_hub_cache(hf_home: Path, repo: str) -> Path:
    """The Hugging Face cache as `hf download` leaves it: refs/main naming a commit, whose snapshot holds the files."""
    storage = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    tiny_hubert(storage / "snapshots" / COMMIT)
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(COMMIT)
    return storage


def paper_project(tmp_path: Path, edit=None) -> Path:
    """A folder with the project's params.yaml switched to the paper profile (and ``edit`` applied)."""
    project = tmp_path / "project"
    project.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profile"] = "paper"
    if edit:
        edit(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def run_stage(script: str, *args: str, cwd: Path, hf_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home), "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / script), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def assert_one_message(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    message = result.stderr[result.stderr.index("error: ") :]
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{message}"


# --- the speech base -------------------------------------------------------------------------------------


def test_a_cached_hub_snapshot_becomes_the_speech_base_offline(tmp_path):
    fill_hub_cache(tmp_path / "hf", "facebook/hubert-base-ls960")
    project = paper_project(tmp_path)
    result = run_stage(
        "speech_base.py", "--pool", "pool", "--out", "base", "--metrics", "m.json", cwd=project, hf_home=tmp_path / "hf"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_json(project / "base" / RECORD_FILE)
    assert record["source"] == "facebook/hubert-base-ls960" and record["revision"] == record["commit"] == COMMIT
    assert {"config.json", "model.safetensors"} <= set(record["files"])
    assert read_json(project / "m.json") == record
    assert [p.name for p in (project / "pool").iterdir()] == [PLACEHOLDER]  # nothing pretrained
    # the speech teacher's code path reads the copied base (not the cache)
    teacher = build_speech_teacher(project / "base", 4, section("speech_teacher"), seed=0)
    assert teacher.base_model.model.config.hidden_size == 32


def test_offline_without_the_speech_base_is_one_message_saying_how_to_get_it(tmp_path):
    project = paper_project(tmp_path)
    started = time.perf_counter()
    result = run_stage(
        "speech_base.py", "--pool", "pool", "--out", "base", "--metrics", "m.json", cwd=project, hf_home=tmp_path / "hf"
    )
    assert time.perf_counter() - started < 60
    assert_one_message(
        result,
        "facebook/hubert-base-ls960",
        f"hf download facebook/hubert-base-ls960 --revision {COMMIT}",
        str(tmp_path / "hf" / "hub" / "models--facebook--hubert-base-ls960"),
    )
    assert not (project / "base").exists() and not (project / "m.json").exists()


def folder_base(source) -> object:
    return section("speech_base", source=str(source), revision=None)


def test_a_folder_source_is_copied_with_each_files_checksum(tmp_path):
    source = tiny_hubert(tmp_path / "my-hubert")
    record = provide_speech_base(folder_base(source), tmp_path / "base")
    for name, digest in record["files"].items():
        assert sha256((tmp_path / "base" / name).read_bytes()) == digest
        assert (tmp_path / "base" / name).read_bytes() == (source / name).read_bytes()
    assert record["source"] == str(source) and record["commit"] is None  # the source as params give it
    with pytest.raises(WeightsUnavailable, match="no such folder"):
        provide_speech_base(folder_base(tmp_path / "nowhere" / "hubert"), tmp_path / "other")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsUnavailable, match="no config.json"):
        provide_speech_base(folder_base(tmp_path / "empty"), tmp_path / "other")
    assert not (tmp_path / "other").exists()


# hubert-base-ls960 at that commit has no safetensors: config.json, a 213-byte preprocessor_config.json and a
# pickle pytorch_model.bin (378 MB).  This file's content is a stand-in of the same form (wav2vec2's convention).
HUBERT_BASE_PREPROCESSOR = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0,
    "return_attention_mask": False,
    "sampling_rate": 16000,
}


def test_a_hubert_base_sized_pickle_checkpoint_goes_from_the_hub_cache_to_a_teacher(tmp_path):
    """The paper's path: a hubert-base-sized model (HubertConfig's defaults, random weights) as pytorch_model.bin in
    the offline Hugging Face cache at the pinned commit; stage speech_base copies it; the teacher reads it with
    torch.load(weights_only=True), every tensor as saved."""
    snapshot = tmp_path / "hf" / "hub" / "models--facebook--hubert-base-ls960" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    torch.manual_seed(0)
    published = HubertModel(HubertConfig())
    assert 94_000_000 < sum(p.numel() for p in published.parameters()) < 96_000_000
    published.config.save_pretrained(snapshot)
    torch.save(published.state_dict(), snapshot / "pytorch_model.bin")
    preprocessor = json.dumps(HUBERT_BASE_PREPROCESSOR, indent=2) + "\n"
    assert len(preprocessor) == 213
    (snapshot / "preprocessor_config.json").write_text(preprocessor)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(COMMIT)

    project = paper_project(tmp_path)
    result = run_stage(
        "speech_base.py", "--pool", "pool", "--out", "base", "--metrics", "m.json", cwd=project, hf_home=tmp_path / "hf"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_json(project / "base" / RECORD_FILE)
    assert sorted(record["files"]) == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    assert record["commit"] == COMMIT

    teacher = build_speech_teacher(project / "base", 4, section("speech_teacher", normalize="checkpoint"), seed=0)
    loaded = teacher.get_base_model().hubert.state_dict()
    plain = {name.replace(".base_layer.", "."): tensor for name, tensor in loaded.items() if "lora_" not in name}
    for name, tensor in published.state_dict().items():
        assert torch.equal(plain[name], tensor), name
    assert read_json(project / "base" / "preprocessor_config.json") == HUBERT_BASE_PREPROCESSOR
    assert waveform_input(teacher) == WaveformInput("checkpoint", do_normalize=True, return_attention_mask=False)


class _RunsCode:
    """Unpickled, it would run a command: what a pytorch_model.bin from an untrusted source may hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_checkpoint_that_would_run_code_is_refused(tmp_path):
    base = tiny_hubert(tmp_path / "base")
    (base / "model.safetensors").unlink()
    torch.save({"weight": _RunsCode(tmp_path / "ran")}, base / "pytorch_model.bin")
    with pytest.raises(UnsafeWeights, match="weights_only=True"):
        build_speech_teacher(base, 3, section("speech_teacher"), seed=0)
    assert not (tmp_path / "ran").exists()


# --- S2D's files -----------------------------------------------------------------------------------------

S2D_BYTES = b"stand-in for the S2D FERV39k checkpoint"
MOBILEFACENET_BYTES = b"stand-in for MobileFaceNet's landmark weights"


def pinned(s2d: str, mobilefacenet: str, mobilefacenet_blob: str | None = None):
    """Params pinning the stand-ins (the landmark file's git blob pin dropped unless given)."""

    def edit(params):
        params["video_weights"]["s2d"]["sha256"] = s2d
        params["video_weights"]["mobilefacenet"]["sha256"] = mobilefacenet
        params["video_weights"]["mobilefacenet"]["git_blob"] = mobilefacenet_blob

    return edit


def test_files_in_place_with_the_right_checksums_are_not_fetched(tmp_path):
    project = paper_project(tmp_path, pinned(sha256(S2D_BYTES), sha256(MOBILEFACENET_BYTES)))
    weights = project / "data" / "weights" / "s2d"
    weights.mkdir(parents=True)
    (weights / S2D_FILE).write_bytes(S2D_BYTES)
    (weights / MOBILEFACENET_FILE).write_bytes(MOBILEFACENET_BYTES)
    result = run_stage("video_weights.py", "--out", str(weights), cwd=project, hf_home=tmp_path / "hf")
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_json(weights / RECORD_FILE)
    assert record["published"] is True and record["params"]["s2d"]["sha256"] == sha256(S2D_BYTES)
    assert record["s2d"] == {"file": S2D_FILE, "sha256": sha256(S2D_BYTES), "git_blob": git_blob(S2D_BYTES)}
    assert record["mobilefacenet"]["sha256"] == sha256(MOBILEFACENET_BYTES)


def test_a_wrong_checksum_names_the_file_both_hashes_and_what_to_do(tmp_path):
    project = paper_project(tmp_path, pinned(sha256(b"the published file"), sha256(MOBILEFACENET_BYTES)))
    weights = project / "data" / "weights" / "s2d"
    weights.mkdir(parents=True)
    (weights / S2D_FILE).write_bytes(S2D_BYTES)
    (weights / MOBILEFACENET_FILE).write_bytes(MOBILEFACENET_BYTES)
    result = run_stage("video_weights.py", "--out", str(weights), cwd=project, hf_home=tmp_path / "hf")
    assert_one_message(
        result,
        str(weights / S2D_FILE),
        sha256(S2D_BYTES),
        sha256(b"the published file"),
        "delete it",
        "video_weights.s2d.sha256",
    )


def test_offline_with_nothing_in_place_names_both_files_and_how_to_fetch_them(tmp_path):
    project = paper_project(tmp_path)
    weights = project / "data" / "weights" / "s2d"
    result = run_stage("video_weights.py", "--out", str(weights), cwd=project, hf_home=tmp_path / "hf")
    assert_one_message(
        result,
        "hf download cyinen/S2D --revision main",
        str(weights / S2D_FILE),
        "curl -L -o mobilefacenet_model_best.pth.tar https://github.com/MSA-LMC/S2D/raw/e1b5e5d",
        str(weights / MOBILEFACENET_FILE),
    )
    assert not (weights / RECORD_FILE).exists()


def test_the_video_teacher_says_which_published_file_is_missing(tmp_path):
    project = paper_project(tmp_path)
    result = run_stage(
        "train_video_teacher.py", "--weights", "w", "--out", "t", "--metrics", "m.json", cwd=project, hf_home=tmp_path
    )
    assert_one_message(result, str(Path("w") / RECORD_FILE), "is missing", "dvc repro video_weights")


def test_the_video_teacher_refuses_files_fetched_for_other_params(tmp_path):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**raw, "profile": "paper"}))
    paper = load_params(tmp_path / "params.yaml")
    weights = tmp_path / "s2d"
    weights.mkdir()
    (weights / S2D_FILE).write_bytes(S2D_BYTES)
    (weights / MOBILEFACENET_FILE).write_bytes(MOBILEFACENET_BYTES)
    with pytest.raises(ChecksumMismatch):  # the stand-in is not the pinned landmark file
        fetch_video_weights(paper.video_weights, True, weights)
    landmark = paper.video_weights.mobilefacenet.model_copy(update={"git_blob": git_blob(MOBILEFACENET_BYTES)})
    fetched_for = paper.video_weights.model_copy(update={"mobilefacenet": landmark})
    fetch_video_weights(fetched_for, True, weights)
    assert published_files(weights, fetched_for)["published"]
    with pytest.raises(WeightsUnavailable) as refused:
        published_files(weights, paper.video_weights)
    assert git_blob(MOBILEFACENET_BYTES) in str(refused.value) and "3f7d78be085b" in str(refused.value)
    demo = load_params(REPO / "params.yaml")
    fetch_video_weights(demo.video_weights, False, tmp_path / "demo")
    with pytest.raises(WeightsUnavailable, match="says none were"):
        published_files(tmp_path / "demo", demo.video_weights)


def test_the_demo_fetches_nothing_and_records_it(tmp_path):
    params = load_params(REPO / "params.yaml")
    assert params.video_teacher.source == "train"
    record = fetch_video_weights(params.video_weights, False, tmp_path / "s2d")
    assert record == {"published": False, "params": None}
    assert [p.name for p in (tmp_path / "s2d").iterdir()] == [RECORD_FILE]


@pytest.fixture
def served(tmp_path):
    """A local HTTP server over ``tmp_path / "site"``: the URL of the landmark file on it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / MOBILEFACENET_FILE).write_bytes(MOBILEFACENET_BYTES)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{MOBILEFACENET_FILE}"
    server.shutdown()


LANDMARK = "video_weights.mobilefacenet"


def test_a_url_is_fetched_checked_and_not_fetched_again(served, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    out = tmp_path / "weights" / MOBILEFACENET_FILE
    with pytest.raises(ChecksumMismatch, match=sha256(MOBILEFACENET_BYTES)):
        fetch_url_file([served], Pins("0" * 64, None, LANDMARK), out)
    assert not out.exists() and not list(out.parent.iterdir())  # nothing half-written left
    with pytest.raises(ChecksumMismatch, match=f"{LANDMARK}.git_blob says {'1' * 40}"):
        fetch_url_file([served], Pins(None, "1" * 40, LANDMARK), out)
    pinned_both = Pins(sha256(MOBILEFACENET_BYTES), git_blob(MOBILEFACENET_BYTES), LANDMARK)
    record = fetch_url_file([served], pinned_both, out)
    assert record == {"file": MOBILEFACENET_FILE, "sha256": pinned_both.sha256, "git_blob": pinned_both.git_blob}
    assert out.read_bytes() == MOBILEFACENET_BYTES and oct(out.stat().st_mode & 0o777) == "0o644"
    (tmp_path / "site" / MOBILEFACENET_FILE).unlink()  # a second fetch would now fail
    assert fetch_url_file([served], pinned_both, out) == record  # in place: checked, the same record
    with pytest.raises(WeightsUnavailable, match="could not be fetched"):
        fetch_url_file([served], Pins(None, None, LANDMARK), tmp_path / "elsewhere" / MOBILEFACENET_FILE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match="HF_HUB_OFFLINE"):
        fetch_url_file([served], Pins(None, None, LANDMARK), tmp_path / "offline" / MOBILEFACENET_FILE)


def test_the_fallback_url_serves_the_same_blob_when_the_first_fails(served, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    gone = served.rsplit("/", 1)[0] + "/moved/" + MOBILEFACENET_FILE
    pins = Pins(None, git_blob(MOBILEFACENET_BYTES), LANDMARK)
    record = fetch_url_file([gone, served], pins, tmp_path / MOBILEFACENET_FILE)
    assert record["git_blob"] == pins.git_blob and (tmp_path / MOBILEFACENET_FILE).read_bytes() == MOBILEFACENET_BYTES
    with pytest.raises(WeightsUnavailable) as both_failed:
        fetch_url_file([gone, gone + "2"], pins, tmp_path / "nothing" / MOBILEFACENET_FILE)
    assert gone in str(both_failed.value) and gone + "2" in str(both_failed.value)


def test_the_paper_profile_pins_the_speech_base_and_the_landmark_file():
    params = parse_params({**yaml.safe_load((REPO / "params.yaml").read_text()), "profile": "paper"})
    assert params.speech_base.revision == COMMIT
    landmark = params.video_weights.mobilefacenet
    assert landmark.git_blob == "3f7d78be085b0dc33ec914bc1d70fc991ba04bfa"
    assert "/MSA-LMC/S2D/raw/e1b5e5d" in landmark.url and landmark.url.endswith("landmark/" + MOBILEFACENET_FILE)
    assert "/cunjian/pytorch_face_landmark/raw/" in landmark.fallback_url
    assert landmark.fallback_url.endswith("checkpoint/" + MOBILEFACENET_FILE)


# --- no demo work in the paper profile --------------------------------------------------------------------


def test_the_paper_profile_generates_no_demo(tmp_path):
    project = paper_project(tmp_path)
    started = time.perf_counter()
    result = run_stage("make_demo.py", "--out", "data/demo", cwd=project, hf_home=tmp_path / "hf")
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    files = [p for p in (project / "data" / "demo").rglob("*") if p.is_file() and p.parent.name != "manifests"]
    assert sorted(p.parent.name for p in files) == ["crema_d", "ferv39k", "mspface", "ravdess"]
    assert all(p.name == PLACEHOLDER for p in files) and sum(p.stat().st_size for p in files) < 4096
    manifest = (project / "data" / "demo" / "manifests" / "ferv39k.tsv").read_text()
    assert manifest.startswith(f"{PLACEHOLDER}\t")
    assert seconds < 60  # the imports; the demo itself takes minutes


@pytest.mark.slow
def test_with_the_papers_inputs_in_place_no_demo_stage_needs_work(tmp_path):
    """profile paper: `dvc repro` of the stages that make the demo and the teachers' start points does no demo
    work, and afterwards `dvc status` lists none of them."""
    project = copy_project(tmp_path / "project")
    base = tiny_hubert(tmp_path / "hubert-base")

    def paper(params):
        params["profile"] = "paper"
        params["speech_base"]["source"] = str(base)
        pinned(sha256(S2D_BYTES), sha256(MOBILEFACENET_BYTES))(params)

    params = yaml.safe_load((project / "params.yaml").read_text())
    paper(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    weights = project / "data" / "weights" / "s2d"
    weights.mkdir(parents=True)
    (weights / S2D_FILE).write_bytes(S2D_BYTES)
    (weights / MOBILEFACENET_FILE).write_bytes(MOBILEFACENET_BYTES)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"

    def dvc(*args):
        result = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    stages = ["demo", "speech_base", "video_weights"]
    started = time.perf_counter()
    dvc("repro", "--single-item", *stages)
    assert time.perf_counter() - started < 120  # the demo alone takes minutes on two cores
    made = [
        p for folder in ("data/demo", "data/speech_base_pool") for p in (project / folder).rglob("*") if p.is_file()
    ]
    assert made and all(p.name == PLACEHOLDER for p in made if p.parent.name != "manifests")
    assert read_json(project / "data" / "speech_base" / RECORD_FILE)["source"] == str(base)
    assert dvc("status", "--json", *stages).strip() in ("{}", "")
    needing_work = json.loads(dvc("status", "--json") or "{}")
    assert not set(needing_work) & set(stages), needing_work
