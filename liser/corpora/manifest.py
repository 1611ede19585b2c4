"""Any labeled speech corpus, from a plain table of its files (``reader: manifest``).

The table is a CSV (``.csv``; ``.tsv`` tab-separated) or JSON lines (``.jsonl``, ``.json``: one object a line)
with the columns

- ``path``: the audio file, relative to the table's folder (``Actor_01/01.wav``); absolute paths and ``..`` are
  rejected, so a table cannot point outside its folder;
- ``emotion``: the class name;
- ``speaker``: the speaker's id; no speaker is in two folds;
- ``gender`` (optional): male / female (or m / f); empty or absent is "unknown";
- ``session`` or ``split`` (optional): a group of speakers that ``folds_by: session`` keeps in one test fold (a
  recording session, or a fold of a published protocol).

The utterance id is the path without its suffix.  Every row either becomes an utterance or is rejected with its
reason (no such file, no speaker, an emotion outside ``corpora.<name>.emotions``, unreadable or too short audio).
Without ``emotions`` in params the classes are the sorted set of the emotions the table lists.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pandas as pd

from liser.corpora.table import CorpusError, CorpusTable, build_table
from liser.params import CorpusParams

__all__ = ["REQUIRED", "classes", "read", "read_rows", "inside", "listed_file", "listed_emotions"]

log = logging.getLogger(__name__)

REQUIRED = ("path", "emotion", "speaker")
OPTIONAL = ("gender", "session", "split")
GENDERS = {"male": "male", "m": "male", "female": "female", "f": "female", "": "unknown"}


def read_rows(table: Path) -> Iterator[tuple[int, dict | str]]:
    """(row number, the row as strings) of a CSV / TSV / JSON-lines table, or (line, why it cannot be read)."""
    if not table.is_file():
        raise FileNotFoundError(f"{table}: corpus table not found")
    if table.suffix.lower() in (".jsonl", ".json"):
        for number, line in enumerate(table.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"line {number} is not JSON: {exc.msg}"
                continue
            if not isinstance(row, dict):
                yield number, f"line {number} is not a JSON object"
                continue
            yield number, {str(k): "" if v is None else str(v).strip() for k, v in row.items()}
        return
    if table.suffix.lower() not in (".csv", ".tsv"):
        raise CorpusError(f"{table}: a corpus table is .csv, .tsv or JSON lines (.jsonl)")
    frame = pd.read_csv(table, sep="\t" if table.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
    for number, row in enumerate(frame.to_dict("records"), start=2):  # line 1 is the header
        yield number, {str(k).strip(): str(v).strip() for k, v in row.items()}


def inside(folder: Path, listed: str) -> Path | str:
    """``folder / listed`` when ``listed`` is a relative path that stays in ``folder``, else the reason it is not."""
    if not listed:
        return "no path"
    relative = PurePosixPath(listed.replace("\\", "/"))
    if relative.is_absolute() or (relative.parts and relative.parts[0].endswith(":")):
        return f"absolute path {listed!r}: paths are relative to {folder}"
    if ".." in relative.parts:
        return f"path {listed!r} leaves {folder} ('..')"
    return folder / relative


def _checked_columns(table: Path) -> set[str]:
    """The table's columns; raise CorpusError when a required one is missing."""
    columns = next((set(row) for _, row in read_rows(table) if isinstance(row, dict)), set())
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise CorpusError(f"{table}: missing column(s) {', '.join(missing)}; a manifest has {', '.join(REQUIRED)}")
    if {"session", "split"} <= columns:
        raise CorpusError(f"{table}: give the speakers' groups in one column, session or split, not both")
    return columns


def classes(corpus: CorpusParams) -> tuple[str, ...]:
    _checked_columns(Path(corpus.table))
    return listed_emotions(corpus)


def listed_emotions(corpus: CorpusParams, column: str = "emotion") -> tuple[str, ...]:
    """The sorted set of the emotions a table lists: the classes when params give none."""
    table = Path(corpus.table)
    found = {row.get(column, "") for _, row in read_rows(table) if isinstance(row, dict)}
    found.discard("")
    if not found:
        raise CorpusError(f"{table}: no row names an emotion (column {column!r})")
    return tuple(sorted(found))


def listed_file(listed: str, found: Path | str) -> tuple[Path | str, str | None]:
    """The row's path (where ``found``, as :func:`inside` gives it, is usable, else as listed) and why the row cannot
    be read, or None."""
    if isinstance(found, str):
        return listed, found
    if not found.is_file():
        return found, "listed file not found" if not found.exists() else "listed path is not a file"
    return found, None


def _fields(row: dict, folder: Path, first_seen: dict[str, dict]) -> tuple[Path | str, dict | str]:
    path, reason = listed_file(row.get("path", ""), inside(folder, row.get("path", "")))
    if reason is not None:
        return path, reason
    gender = GENDERS.get(row.get("gender", "").lower())
    session = row.get("session") or row.get("split", "")
    if not row.get("speaker"):
        return path, "no speaker"
    if not row.get("emotion"):
        return path, "no emotion"
    if gender is None:
        return path, f"gender {row['gender']!r} is not male, female (m, f) or empty"
    earlier = first_seen.setdefault(row["speaker"], {"gender": gender, "session": session})
    for key, value in (("gender", gender), ("session", session)):
        if earlier[key] != value:
            return path, f"speaker {row['speaker']} has {key} {earlier[key]!r} in an earlier row, {value!r} here"
    return path, {
        "utterance": PurePosixPath(row["path"].replace("\\", "/")).with_suffix("").as_posix(),
        "speaker": row["speaker"],
        "gender": gender,
        "emotion": row["emotion"],
        "statement": "",
        "intensity": "",
        "session": session,
    }


def _parsed(table: Path) -> Iterator[tuple[Path | str, dict | str]]:
    folder = table.parent
    first_seen: dict[str, dict] = {}
    for number, row in read_rows(table):
        if isinstance(row, str):
            yield f"{table}:{number}", row
        else:
            yield _fields(row, folder, first_seen)


def read(name: str, corpus: CorpusParams, classes: tuple[str, ...]) -> CorpusTable:
    table = Path(corpus.table)
    columns = _checked_columns(table)
    ignored = sorted(columns - set(REQUIRED) - set(OPTIONAL))
    if ignored:
        log.info("%s: column(s) %s not used", table, ", ".join(ignored))
    return build_table(name, classes, table.parent, _parsed(table), corpus.min_seconds)
