"""Labeled speech corpora, each read from its distributed layout into one table.

Every reader returns a :class:`CorpusTable`: ``utterances`` with :data:`COLUMNS` and
``problems`` (path, reason) for every file it skipped.
"""

from __future__ import annotations

from pathlib import Path

from .table import COLUMNS, CorpusTable, NothingUsable

__all__ = ["COLUMNS", "CorpusTable", "NothingUsable", "EMOTIONS", "read_corpus"]


def _readers():
    from . import cremad, ravdess

    return {"ravdess": ravdess, "crema_d": cremad}


EMOTIONS: dict[str, tuple[str, ...]] = {
    "ravdess": ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    "crema_d": ("anger", "disgust", "fear", "happy", "neutral", "sad"),
}


def read_corpus(corpus: str, root: str | Path) -> CorpusTable:
    readers = _readers()
    if corpus not in readers:
        raise ValueError(f"unknown corpus {corpus!r}; known: {', '.join(readers)}")
    return readers[corpus].read(Path(root))
