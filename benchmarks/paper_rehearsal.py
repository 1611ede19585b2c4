"""The paper profile end to end at the published models' sizes, on a small subset: time, peak memory and device of
every stage, printed as a table and saved to benchmarks/results/paper_rehearsal.json.

In a fresh copy of the project (the venv is reused), with nothing downloaded:
- stand-in weights written locally in the published formats: a hubert-base-ls960-sized HuBERT (768 wide, 12
  layers, random weights) as `pytorch_model.bin` with a `preprocessor_config.json`, in a Hugging Face cache as
  `hf download` leaves it at the pinned commit, fetched by stage `speech_base` with HF_HUB_OFFLINE=1; a full S2D
  (ViT-B/16 at 224 px) saved as the published checkpoints are (`{'model', 'optimizer', 'epoch', 'scaler', 'args'}`
  with an `argparse.Namespace`) and a MobileFaceNet file (`{'state_dict'}`), put in data/weights/s2d with their
  SHA-256 (and the landmark file's git blob) pinned in params;
- RAVDESS and CREMA-D trees in their distributed layouts (the demo's generated speech, a few utterances per actor),
  and a few MSP-Face videos as local files;
- `profile: paper`, with the sizes cut for a CPU: 2 folds, 1 epoch, lambda grid [1], one label-efficiency share.

Then `dvc repro` runs every stage to the report.  Peak memory is the largest resident set of the stage's processes
together, sampled every 0.2 s.

    python benchmarks/paper_rehearsal.py [--keep DIR] [--utterances 4] [--videos 2] [--target STAGE ...]

`--target` runs only those stages and what they need (tests/test_paper_rehearsal.py runs one student this way).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch
import yaml
from demo_wall_time import copy_sources
from transformers import HubertConfig, HubertModel

from liser.demo.labeled import write_crema_d, write_ravdess
from liser.demo.mspface import write_mspface_demo
from liser.files import write_json
from liser.models.s2d import S2DConfig
from liser.runtime import describe_machine, resolve_device
from liser.teachers.fetching import git_blob_of, sha256_of
from liser.teachers.video_model import build_video_teacher
from liser.teachers.video_weights import MOBILEFACENET_FILE, S2D_FILE

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "paper_rehearsal.json"
COMMIT = "dba3bb02fda4248b6e082697eee756de8fe8aa8a"  # hubert-base-ls960's, as the paper profile pins it
# what hubert-base-ls960 has beside config.json (no safetensors): a feature extractor's settings and a pickle
PREPROCESSOR = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0,
    "return_attention_mask": False,
    "sampling_rate": 16000,
}


def keep_first(folder: Path, per_speaker: int, speaker_of) -> None:
    """Delete all but the first ``per_speaker`` wav files of each speaker under ``folder``."""
    seen: dict[str, int] = {}
    for path in sorted(folder.rglob("*.wav")):
        speaker = speaker_of(path)
        seen[speaker] = seen.get(speaker, 0) + 1
        if seen[speaker] > per_speaker:
            path.unlink()


def write_inputs(project: Path, hf_home: Path, utterances: int, videos: int) -> dict:
    corpora = project / "data" / "corpora"
    write_ravdess(corpora / "RAVDESS", actors=10, seed=0, broken_files=False)
    keep_first(corpora / "RAVDESS", utterances, lambda p: p.parent.name)
    write_crema_d(corpora / "CREMA-D", actors=10, seed=0, broken_files=False)
    keep_first(corpora / "CREMA-D", utterances, lambda p: p.name.split("_")[0])
    write_mspface_demo(corpora / "MSP-Face", seed=0, n_speakers=videos, n_videos=videos, failures=False)

    snapshot = hf_home / "hub" / "models--facebook--hubert-base-ls960" / "snapshots" / COMMIT
    torch.manual_seed(0)
    hubert = HubertModel(HubertConfig())  # HubertConfig() is hubert-base's architecture
    snapshot.mkdir(parents=True)
    hubert.config.save_pretrained(snapshot)
    torch.save(hubert.state_dict(), snapshot / "pytorch_model.bin")
    (snapshot / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2) + "\n")
    (snapshot.parents[1] / "refs").mkdir(parents=True, exist_ok=True)
    (snapshot.parents[1] / "refs" / "main").write_text(COMMIT)

    weights = project / "data" / "weights" / "s2d"
    weights.mkdir(parents=True)
    s2d = build_video_teacher(S2DConfig.full(), seed=0)
    published = {
        "model": s2d.state_dict(),
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
        "epoch": 99,
        "scaler": {"scale": 65536.0},
        "args": argparse.Namespace(model="s2d", nb_classes=7, input_size=224, num_frames=16),
    }
    torch.save(published, weights / S2D_FILE)
    torch.save({"state_dict": s2d.landmark.state_dict()}, weights / MOBILEFACENET_FILE)
    parameters = sum(p.numel() for p in s2d.parameters())
    return {
        "hubert_parameters": sum(p.numel() for p in hubert.parameters()),
        "s2d_parameters": parameters,
        "s2d_sha256": sha256_of(weights / S2D_FILE),
        "mobilefacenet_sha256": sha256_of(weights / MOBILEFACENET_FILE),
        "mobilefacenet_git_blob": git_blob_of(weights / MOBILEFACENET_FILE),
    }


def paper_params(project: Path, inputs: dict) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["profile"] = "paper"
    params["cv"]["folds"] = [0, 1]
    params["train"]["epochs"] = {"demo": 10, "paper": 1}
    params["speech_teacher"]["epochs"] = {"demo": 15, "paper": 1}
    params["loss"]["lambda_grid"] = [1]
    params["label_efficiency"]["percents"] = [50]
    params["mspface"].update(lists={"demo": "data/demo/mspface", "paper": "data/corpora/MSP-Face"})
    params["mspface"].update(allow_local_files={"demo": True, "paper": True}, sleep_s=0, max_sleep_s=None)
    params["video_weights"]["s2d"]["sha256"] = inputs["s2d_sha256"]
    params["video_weights"]["mobilefacenet"]["sha256"] = inputs["mobilefacenet_sha256"]
    params["video_weights"]["mobilefacenet"]["git_blob"] = inputs["mobilefacenet_git_blob"]
    path.write_text(yaml.safe_dump(params, sort_keys=False))


class PeakSampler(threading.Thread):
    """The largest total resident memory of ``root``'s descendants, per stage named by ``current``."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.current, self.peaks, self.running = psutil.Process(root), None, {}, True

    def run(self) -> None:
        while self.running:
            total = 0
            for process in self.root.children(recursive=True):
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            if self.current is not None:
                self.peaks[self.current] = max(self.peaks.get(self.current, 0), total)
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    parser.add_argument("--utterances", type=int, default=4, help="labeled utterances kept per actor")
    parser.add_argument("--videos", type=int, default=2, help="MSP-Face videos")
    parser.add_argument("--target", nargs="*", default=[], help="stages to reproduce (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the figures go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = args.keep.resolve() if args.keep else Path(folder) / "liser"
        if project.exists():
            raise SystemExit(f"{project} exists; give a new folder to --keep")
        copy_sources(project)
        hf_home = project / ".hf"
        inputs = write_inputs(project, hf_home, args.utterances, args.videos)
        paper_params(project, inputs)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(hf_home),
            "PYTHONPATH": str(project),  # the copy's own liser
        }
        start = current_start = time.perf_counter()
        seconds: dict[str, float] = {}
        process = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro", "--no-run-cache", *args.target],
            cwd=project,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        sampler = PeakSampler(process.pid)
        sampler.start()
        log = []
        for line in process.stdout:
            log.append(line)
            if line.startswith("Running stage"):
                now = time.perf_counter()
                if sampler.current is not None:
                    seconds[sampler.current] = now - current_start
                sampler.current, current_start = line.split("'")[1], now
                print(f"{now - start:7.1f} s  {sampler.current}", flush=True)
        status = process.wait()
        if sampler.current is not None:
            seconds[sampler.current] = time.perf_counter() - current_start
        sampler.running = False
        if status != 0:
            print("".join(log[-60:]))
            raise SystemExit("dvc repro failed in the paper profile")
    device = str(resolve_device("auto"))
    stages = {
        name: {
            "seconds": round(seconds[name], 1),
            "peak_mb": round(sampler.peaks.get(name, 0) / 2**20),
            "device": device,
        }
        for name in seconds
    }
    figures = {"machine": describe_machine(), "inputs": inputs, "total_s": sum(seconds.values()), "stages": stages}
    print(f"\n{figures['machine']}")
    print(f"HuBERT {inputs['hubert_parameters'] / 1e6:.1f} M parameters, S2D {inputs['s2d_parameters'] / 1e6:.1f} M")
    print(f"{'stage':34s} {'seconds':>8s} {'peak MB':>8s}  device")
    for name, row in stages.items():
        print(f"{name:34s} {row['seconds']:8.1f} {row['peak_mb']:8d}  {row['device']}")
    print(f"{'total':34s} {figures['total_s']:8.1f}")
    write_json(args.results, figures)
    print(f"saved to {args.results}")


if __name__ == "__main__":
    main()
