"""A static web page that runs a student in the browser: the waveform graph, ONNX Runtime Web and a page to drop
an audio file on or speak into, in one folder that works offline.

The page (``liser/webpage/``) decodes audio with the browser at 16 kHz, runs ``model.onnx`` (the waveform export,
float32 or int8) in ONNX Runtime Web's WebAssembly backend on one thread, and plots each window's emotion
probabilities over time beside the whole recording's.  ONNX Runtime Web comes from the npm registry: ``web/``
pins it (``package.json``, ``package-lock.json``; ``npm ci --prefix web`` installs it, ``./run.sh`` does), and
its WebAssembly build is copied into the page, so nothing is fetched from a CDN.

Serve the folder with any static server (a browser will not run WebAssembly from ``file://``), e.g.
``python3 -m http.server --directory DIR --bind 127.0.0.1 8000``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from liser.export import export_student
from liser.files import atomic_directory
from liser.params import EvaluateParams, FeatureParams

__all__ = ["DEFAULT_ONNXRUNTIME_WEB", "ORT_FILES", "PAGE_FILES", "export_web", "onnxruntime_web_files"]

PAGE = Path(__file__).resolve().parents[1] / "webpage"
PAGE_FILES = ("index.html", "app.js", "recorder.js", "style.css")
# ONNX Runtime Web's WebAssembly-only build: the ES module, its Emscripten loader and the SIMD binary
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
WEB_PROJECT = Path(__file__).resolve().parents[2] / "web"
DEFAULT_ONNXRUNTIME_WEB = WEB_PROJECT / "node_modules" / "onnxruntime-web"


def onnxruntime_web_files(package: Path = DEFAULT_ONNXRUNTIME_WEB) -> tuple[list[Path], str]:
    """The files of ONNX Runtime Web the page needs, and its version; a clear error when it is not installed."""
    files = [package / "dist" / name for name in ORT_FILES]
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise ValueError(
            f"{package}: ONNX Runtime Web is not installed there ({', '.join(missing)} missing): run "
            f"`npm ci --prefix {WEB_PROJECT}` (./run.sh does it), or name the package with --onnxruntime-web"
        )
    version = json.loads((package / "package.json").read_text()).get("version", "unknown")
    return files, version


def _is_page(folder: Path) -> bool:
    """A folder this module wrote: the page's files and a LiSER card."""
    try:
        card = json.loads((folder / "model.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(card, dict) and "classes" in card and all((folder / name).is_file() for name in PAGE_FILES)


def export_web(
    checkpoint: str | Path,
    folder: str | Path,
    features: FeatureParams,
    evaluate: EvaluateParams,
    int8: bool = False,
    data: str | Path = "data",
    metrics: str | Path | None = None,
    onnxruntime_web: Path = DEFAULT_ONNXRUNTIME_WEB,
) -> tuple[dict, str]:
    """Write the page into ``folder`` (a new one, or a page written before, which is replaced whole); return the
    model's card and ONNX Runtime Web's version."""
    folder = Path(folder)
    ort_files, version = onnxruntime_web_files(Path(onnxruntime_web))
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--web: {folder} is a file; give a folder for the page")
    if folder.is_dir() and any(folder.iterdir()) and not _is_page(folder):
        raise ValueError(f"--web: {folder} holds other files; give a new folder (or a page written before)")
    with atomic_directory(folder) as staging:
        card = export_student(
            checkpoint,
            staging / "model.onnx",
            features,
            evaluate,
            metrics=metrics,
            waveform=True,
            int8=int8,
            data=data,
        )
        for name in PAGE_FILES:
            shutil.copyfile(PAGE / name, staging / name)
        (staging / "ort").mkdir()
        for path in ort_files:
            shutil.copyfile(path, staging / "ort" / path.name)
    return card, version
