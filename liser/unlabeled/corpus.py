"""The unlabeled audio-visual corpus that params.yaml's ``unlabeled`` section names, read by its reader."""

from __future__ import annotations

from pathlib import Path

from liser.corpora import avspeech, folder, mspface, voxceleb2
from liser.corpora.audiovisual import AudioVisualCorpus
from liser.params import UnlabeledParams

__all__ = ["read_unlabeled"]


def read_unlabeled(unlabeled: UnlabeledParams, mspface_lists: str | Path) -> AudioVisualCorpus:
    """The corpus of ``unlabeled.reader`` (MSP-Face from ``mspface_lists``), without ``exclude_speakers``."""
    if unlabeled.reader == "mspface":
        corpus = mspface.read_corpus(mspface_lists)
    elif unlabeled.reader == "voxceleb2":
        corpus = voxceleb2.read_corpus(unlabeled.root, unlabeled.sets)
    elif unlabeled.reader == "avspeech":
        corpus = avspeech.read_corpus(unlabeled.table)
    else:
        corpus = folder.read_corpus(unlabeled.root, unlabeled.table)
    return corpus.without_speakers(unlabeled.exclude_speakers)
