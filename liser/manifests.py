"""The utterance table of a labeled corpus (stage ``corpus`` writes it; the folds, features, teacher and student
stages read it): one row per usable utterance with :data:`COLUMNS`, and the corpus's classes in label order in the
Parquet file's metadata.  The classes travel with the table, so a class added to ``corpora.<corpus>.emotions``
that no file has still changes the table, and every stage downstream reruns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from liser.files import parquet_described, write_parquet
from liser.logs import UserError

__all__ = ["COLUMNS", "Manifest", "ManifestError", "read_manifest", "write_manifest"]

CLASSES_KEY = b"liser_classes"

COLUMNS = (
    "utterance",  # file stem, unique within a corpus
    "path",  # the audio file as found under the corpus root
    "corpus",
    "speaker",
    "gender",  # "male" | "female" | "unknown" (a manifest or EmoBox list may not say)
    "emotion",  # the corpus's own class name
    "label",  # index of emotion in the corpus's classes
    "statement",  # sentence / statement code
    "intensity",  # intensity level as the corpus codes it
    "session",  # recording session (speakers of one session share a fold with folds_by: session); "" if none
    "duration",  # seconds
    "sample_rate",
)


class ManifestError(UserError, ValueError):
    """An utterance table that cannot be used, with the file in the message."""


@dataclass(frozen=True)
class Manifest:
    utterances: pd.DataFrame
    classes: tuple[str, ...]  # label i is classes[i]: what the teachers' and students' heads predict


def write_manifest(path: str | Path, manifest: Manifest) -> None:
    if len(set(manifest.classes)) != len(manifest.classes) or len(manifest.classes) < 2:
        raise ManifestError(f"{path}: at least two distinct class names are needed (got {list(manifest.classes)})")
    write_parquet(path, manifest.utterances, {CLASSES_KEY: list(manifest.classes)})


def read_manifest(path: str | Path) -> Manifest:
    """The utterance table and its classes; a table without a class list is refused, naming the file."""
    try:
        classes = parquet_described(path, CLASSES_KEY)
    except (OSError, pa.ArrowException) as problem:
        raise ManifestError(f"{path}: not a readable utterance table ({problem})") from None
    if classes is None:
        raise ManifestError(
            f"{path}: an utterance table without its class list (written by an older version): dvc repro -f corpus"
        )
    return Manifest(pd.read_parquet(path), tuple(classes))
