"""EmoBox's per-corpus data lists (``reader: emobox``), read as they are.

A list is JSON lines, one utterance a line: ``{"key": ..., "wav": ..., "emo": ..., "length": ..., "sample_rate":
...}``.  It names no speaker, so ``corpora.<name>.speaker_pattern`` (a regular expression with one group) finds it
in the key (``speaker_from: key``) or the wav path (``speaker_from: path``); e.g. ``'(Ses\\d\\d[MF])'`` for IEMOCAP.
``length`` and ``sample_rate`` are not trusted: every file is probed as the other corpora's are.

Lists are often made on another machine, with absolute paths.  ``list_prefix`` (that machine's folder) is replaced
by ``root``; without it an absolute path must lie under ``root`` and a relative one is taken from ``root`` (by
default the list's folder).  A path that leaves ``root`` is a rejected line, never a file that is read.  The
classes are ``emotions`` in params, or the sorted set of the ``emo`` values the list holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from liser.corpora.manifest import inside, listed_emotions, listed_file, read_rows
from liser.corpora.table import CorpusTable, build_table
from liser.params import CorpusParams

__all__ = ["read", "classes", "audio_path"]


def classes(corpus: CorpusParams) -> tuple[str, ...]:
    return listed_emotions(corpus, column="emo")


def audio_path(wav: str, root: Path, prefix: str | None) -> Path | str:
    """Where a listed ``wav`` is under ``root``, or why it is not used."""
    listed = PurePosixPath(wav)
    if prefix is not None:
        start = prefix.rstrip("/") + "/"
        if not wav.startswith(start):
            return f"wav path {wav!r} does not start with list_prefix {prefix!r}"
        return inside(root, wav[len(start) :])
    if listed.is_absolute():
        try:
            relative = listed.relative_to(PurePosixPath(root.absolute().as_posix()))
        except ValueError:
            return f"absolute path {wav!r} is not under {root}; set list_prefix to the folder the list was made in"
        return inside(root, relative.as_posix())
    return inside(root, wav)


def _fields(row: dict, root: Path, corpus: CorpusParams, pattern: re.Pattern) -> tuple[Path | str, dict | str]:
    path, reason = listed_file(row.get("wav", ""), audio_path(row.get("wav", ""), root, corpus.list_prefix))
    if reason is not None:
        return path, reason
    source = row.get("key", "") if corpus.speaker_from == "key" else row.get("wav", "")
    found = pattern.search(source)
    if not row.get("key"):
        return path, "no key"
    if not row.get("emo"):
        return path, "no emotion (emo)"
    if found is None or not found.group(1):
        return path, f"speaker_pattern {pattern.pattern!r} finds no speaker in the {corpus.speaker_from} {source!r}"
    return path, {
        "utterance": row["key"],
        "speaker": found.group(1),
        "gender": "unknown",
        "emotion": row["emo"],
        "statement": "",
        "intensity": "",
    }


def _parsed(table: Path, root: Path, corpus: CorpusParams) -> Iterator[tuple[Path | str, dict | str]]:
    pattern = re.compile(corpus.speaker_pattern)
    for number, row in read_rows(table):
        yield (f"{table}:{number}", row) if isinstance(row, str) else _fields(row, root, corpus, pattern)


def read(name: str, corpus: CorpusParams, classes: tuple[str, ...]) -> CorpusTable:
    table = Path(corpus.table)
    root = Path(corpus.root) if corpus.root is not None else table.parent
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder of the listed audio not found (set corpora.{name}.root)")
    return build_table(name, classes, root, _parsed(table, root, corpus), corpus.min_seconds)
