"""Labeled speech corpora, each read from its distributed layout into one table.

Every reader returns a :class:`CorpusTable`: ``utterances`` with :data:`COLUMNS` and
``problems`` (path, reason) for every file it skipped.
"""

from __future__ import annotations

from pathlib import Path

from liser.corpora import cremad, ravdess
from liser.corpora.table import COLUMNS, CorpusTable, NothingUsable

__all__ = ["COLUMNS", "CorpusTable", "NothingUsable", "EMOTIONS", "read_corpus"]

READERS = {"ravdess": ravdess, "crema_d": cremad}

# Class names in label order, per corpus.
EMOTIONS: dict[str, tuple[str, ...]] = {name: reader.EMOTIONS for name, reader in READERS.items()}


def read_corpus(corpus: str, root: str | Path) -> CorpusTable:
    if corpus not in READERS:
        raise ValueError(f"unknown corpus {corpus!r}; known: {', '.join(READERS)}")
    return READERS[corpus].read(Path(root))
