"""What every labeled corpus reader produces: the utterance table (:mod:`liser.manifests`), the files it skipped
and why, and a summary."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from liser.corpora.audio_check import UnusableAudio, check_audio
from liser.files import write_csv, write_json
from liser.logs import UserError
from liser.manifests import COLUMNS, Manifest, write_manifest

__all__ = ["CorpusError", "CorpusTable", "NothingUsable", "build_table", "outside"]


class NothingUsable(UserError, RuntimeError):
    """A corpus folder in which no file could be used."""


class CorpusError(UserError, ValueError):
    """A corpus definition or table that cannot be read, with the file in the message."""


def outside(path: Path, root: Path) -> str | None:
    """Why ``path`` is not inside ``root`` once links are followed (a link out of the corpus folder), or None."""
    if not path.resolve().is_relative_to(root.resolve()):
        return f"a link out of the corpus folder {root}: files are read only from inside it"
    return None


@dataclass(frozen=True)
class CorpusTable:
    utterances: pd.DataFrame
    problems: pd.DataFrame  # path, reason
    classes: tuple[str, ...]  # label i is classes[i]: what the teachers' and students' heads predict

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
        """The table (Parquet, with the class list in its metadata, so a class no file has still changes it), the
        rejected files with reasons (CSV) and a summary (JSON metric)."""
        write_manifest(manifest, Manifest(self.utterances, self.classes))
        write_csv(rejected, self.problems)
        write_json(metrics, self.summary())


def _rejection(fields: dict, classes: tuple[str, ...], seen: dict[str, Path], corpus: str) -> str | None:
    """Why parsed fields cannot make a row (an emotion outside the classes, an utterance id taken), or None."""
    if fields["emotion"] not in classes:
        return (
            f"emotion {fields['emotion']!r} is not one of the classes ({', '.join(classes)}; corpora.{corpus}.emotions)"
        )
    if fields["utterance"] in seen:
        return f"utterance id {fields['utterance']!r} is already used by {seen[fields['utterance']]}"
    return None


def build_table(
    corpus: str,
    classes: tuple[str, ...],
    root: Path,
    parsed: Iterable[tuple[Path, dict | str]],
    min_seconds: float = 0.0,
) -> CorpusTable:
    """Probe each parsed file; ``parsed`` yields (path, fields) or (path, reason it was rejected).

    ``fields`` hold speaker, gender, emotion, statement, intensity and optionally utterance (default: the file
    stem) and session (default: none).  Emotions outside ``classes``, repeated utterance ids and files shorter than
    ``min_seconds`` are rejected with their reasons, as are files that cannot be used."""
    rows, problems, seen = [], [], {}
    for path, fields in parsed:
        if isinstance(fields, str):
            problems.append({"path": str(path), "reason": fields})
            continue
        fields = {"utterance": path.stem, "session": "", **fields}
        reason = outside(path, root) or _rejection(fields, classes, seen, corpus)
        if reason is None:
            try:
                info = check_audio(path)
            except UnusableAudio as exc:
                reason = str(exc)
            else:
                if info.duration < min_seconds:
                    reason = f"too short: {info.duration:.2f} s (corpora.{corpus}.min_seconds is {min_seconds} s)"
        if reason is not None:
            problems.append({"path": str(path), "reason": reason})
            continue
        seen[fields["utterance"]] = path
        rows.append(
            {
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
            f"check corpora.{corpus} in params.yaml"
        )
    utterances = pd.DataFrame(rows, columns=list(COLUMNS)).sort_values("utterance", ignore_index=True)
    return CorpusTable(utterances, pd.DataFrame(problems, columns=["path", "reason"]), tuple(classes))
