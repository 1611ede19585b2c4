"""Labeled speech corpora, each read from its distributed layout (or a table of its files) into one table.

A corpus is defined under ``corpora:`` in params.yaml by its reader (:data:`READERS`) and where it is
(:class:`liser.params.CorpusParams`).  Every reader returns a :class:`CorpusTable`: ``utterances`` with
:data:`COLUMNS` and ``problems`` (path, reason) for every file or row it skipped.
"""

from __future__ import annotations

from pathlib import Path

from liser.corpora import cremad, emobox, iemocap, manifest, ravdess
from liser.corpora.table import COLUMNS, CorpusTable, NothingUsable
from liser.params import CorporaParams, CorpusParams

__all__ = [
    "COLUMNS",
    "CorpusTable",
    "NothingUsable",
    "READERS",
    "classes_of",
    "corpus_classes",
    "corpus_title",
    "read_corpus",
]

READERS = {"ravdess": ravdess, "crema_d": cremad, "manifest": manifest, "emobox": emobox, "iemocap": iemocap}
TITLES = {"ravdess": "RAVDESS", "crema_d": "CREMA-D"}  # the paper's corpora, by their names in the paper


def classes_of(name: str, corpus: CorpusParams) -> tuple[str, ...]:
    """Class names in label order: ``emotions`` when given, else the reader's own classes (ravdess, crema_d,
    iemocap) or the sorted set of the emotions a manifest or EmoBox list holds."""
    if corpus.emotions is not None:
        return tuple(corpus.emotions)
    reader = READERS[corpus.reader_for(name)]
    return reader.classes(corpus) if reader in (manifest, emobox) else reader.EMOTIONS


def corpus_classes(corpora: CorporaParams, name: str) -> tuple[str, ...]:
    """The classes of corpus ``name`` of params.yaml's ``corpora``, in label order."""
    return classes_of(name, corpora.corpus(name))


def corpus_title(name: str) -> str:
    """How reports name a corpus: the paper's name for RAVDESS and CREMA-D, else its name in params.yaml."""
    return TITLES.get(name, name)


def read_corpus(name: str, corpus: CorpusParams | str | Path) -> CorpusTable:
    """Read corpus ``name`` as its params entry defines it; a folder stands for ``{root: folder}``, read by the
    reader of the corpus's own name (ravdess, crema_d)."""
    entry = corpus if isinstance(corpus, CorpusParams) else CorpusParams(root=Path(corpus))
    entry.check(name)
    return READERS[entry.reader_for(name)].read(name, entry, classes_of(name, entry))
