"""A labeled speech corpus, read from its distributed layout (or a table of its files) into one table.

A corpus is defined under ``corpora:`` in params.yaml by its reader (:data:`READERS`) and where it is
(:class:`liser.params.CorpusParams`).  Every reader returns a :class:`liser.corpora.table.CorpusTable`: the
utterance table (:mod:`liser.manifests`) and ``problems`` (path, reason) for every file or row it skipped.
"""

from __future__ import annotations

from pathlib import Path

from liser.corpora import cremad, emobox, iemocap, manifest, ravdess
from liser.corpora.table import CorpusTable
from liser.params import CorporaParams, CorpusParams

__all__ = ["READERS", "classes_of", "corpus_classes", "read_corpus"]

READERS = {"ravdess": ravdess, "crema_d": cremad, "manifest": manifest, "emobox": emobox, "iemocap": iemocap}


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


def read_corpus(name: str, corpus: CorpusParams | str | Path) -> CorpusTable:
    """Read corpus ``name`` as its params entry defines it; a folder stands for ``{root: folder}``, read by the
    reader of the corpus's own name (ravdess, crema_d)."""
    entry = corpus if isinstance(corpus, CorpusParams) else CorpusParams(root=Path(corpus))
    entry.check(name)
    return READERS[entry.reader_for(name)].read(name, entry, classes_of(name, entry))
