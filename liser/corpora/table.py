"""The table every corpus reader produces."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from liser.corpora.audio_check import UnusableAudio, check_audio
from liser.files import write_csv, write_json, write_parquet

__all__ = ["COLUMNS", "CorpusTable", "NothingUsable", "build_table"]

COLUMNS = (
    "utterance",  # file stem, unique within a corpus
    "path",  # the audio file as found under the corpus root
    "corpus",
    "speaker",
    "gender",  # "male" | "female"
    "emotion",  # the corpus's own class name
    "label",  # index of emotion in the reader's EMOTIONS
    "statement",  # sentence / statement code
    "intensity",  # intensity level as the corpus codes it
    "duration",  # seconds
    "sample_rate",
)


class NothingUsable(RuntimeError):
    """A corpus folder in which no file could be used."""


@dataclass(frozen=True)
class CorpusTable:
    utterances: pd.DataFrame
    problems: pd.DataFrame  # path, reason

    def summary(self) -> dict:
        utterances = self.utterances
        speakers = utterances.drop_duplicates("speaker")
        return {
            "files_usable": len(utterances),
            "files_rejected": len(self.problems),
            "speakers": len(speakers),
            "speakers_female": int((speakers["gender"] == "female").sum()),
            "hours": float(utterances["duration"].sum() / 3600),
        }

    def write(self, manifest: str | Path, rejected: str | Path, metrics: str | Path) -> None:
        """The table (Parquet), the rejected files with reasons (CSV) and a summary (JSON metric)."""
        write_parquet(manifest, self.utterances)
        write_csv(rejected, self.problems)
        write_json(metrics, self.summary())


def build_table(
    corpus: str, classes: tuple[str, ...], root: Path, parsed: Iterable[tuple[Path, dict | str]]
) -> CorpusTable:
    """Probe each parsed file; ``parsed`` yields (path, fields) or (path, reason it was rejected)."""
    rows, problems = [], []
    for path, fields in parsed:
        if isinstance(fields, str):
            problems.append({"path": str(path), "reason": fields})
            continue
        try:
            info = check_audio(path)
        except UnusableAudio as exc:
            problems.append({"path": str(path), "reason": str(exc)})
            continue
        rows.append(
            {
                "utterance": path.stem,
                "path": str(path),
                "corpus": corpus,
                **fields,
                "label": classes.index(fields["emotion"]),
                "duration": info.duration,
                "sample_rate": info.sample_rate,
            }
        )
    if not rows:
        raise NothingUsable(
            f"{root}: no usable {corpus} audio found ({len(problems)} files rejected); "
            f"check corpora.{corpus}.root in params.yaml"
        )
    utterances = pd.DataFrame(rows, columns=list(COLUMNS)).sort_values("utterance", ignore_index=True)
    return CorpusTable(utterances, pd.DataFrame(problems, columns=["path", "reason"]))
