"""IEMOCAP, as distributed (``reader: iemocap``): ``root`` is ``IEMOCAP_full_release``, holding ``Session1`` ...
``Session5``, each with ``sentences/wav/<dialog>/<utterance>.wav`` and the labels in
``dialog/EmoEvaluation/<dialog>.txt`` (a line ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5, ...]``
per utterance).

The usual 4-class setup: neutral (neu), happy (hap and exc, merged), angry (ang), sad (sad).  Utterances of the
other labels (fru, sur, fea, dis, oth, and xxx where the annotators did not agree) are rejected with the label as
the reason, so the rejected table counts them.  ``emotions`` in params may reorder the classes or add others by
their names here (``frustrated``, ``surprised``, ...).  The speaker is the session and the gender of the letter
after the utterance id's last ``_`` (``Ses01M_script01_1_F012`` is ``Ses01F``, a woman); ``folds_by: session``
gives the common leave-one-session-out protocol.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from liser.corpora.table import CorpusTable, build_table
from liser.params import CorpusParams

__all__ = ["EMOTIONS", "LABELS", "read", "parse_evaluation"]

EMOTIONS = ("neutral", "happy", "angry", "sad")
LABELS = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "happy",
    "ang": "angry",
    "sad": "sad",
    "fru": "frustrated",
    "sur": "surprised",
    "fea": "fearful",
    "dis": "disgust",
    "oth": "other",
}
SESSION = re.compile(r"^Session([1-9])$")
LINE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s+(\S+)\s+(\S+)")
UTTERANCE = re.compile(r"^(Ses(\d\d)[FM]_\w+?)_([FM])\d+$")


def parse_evaluation(text: str) -> list[tuple[str, str]]:
    """(utterance id, label code) of each utterance line of an EmoEvaluation file."""
    return [match.groups() for match in map(LINE.match, text.splitlines()) if match]


def _fields(utterance: str, code: str, session: int, classes: tuple[str, ...]) -> dict | str:
    match = UTTERANCE.match(utterance)
    if not match:
        return f"utterance id {utterance!r} does not follow SesNN[FM]_<dialog>_[FM]NNN"
    dialog, number, letter = match.groups()
    if int(number) != session:
        return f"utterance {utterance} of session {int(number)} is labeled in Session{session}"
    if code == "xxx":
        return "label xxx (the annotators did not agree): excluded"
    emotion = LABELS.get(code)
    if emotion is None:
        return f"unknown label {code!r}"
    if emotion not in classes:
        return f"label {code} ({emotion}): excluded, not one of the classes {', '.join(classes)}"
    return {
        "utterance": utterance,
        "speaker": f"Ses{number}{letter}",
        "gender": "female" if letter == "F" else "male",
        "emotion": emotion,
        "statement": dialog,
        "intensity": "",
        "session": f"Session{session}",
    }


def _session_files(folder: Path, session: int, classes: tuple[str, ...]) -> Iterator[tuple[Path, dict | str]]:
    wav = folder / "sentences" / "wav"
    evaluations = folder / "dialog" / "EmoEvaluation"
    if not evaluations.is_dir():
        yield evaluations, "no dialog/EmoEvaluation folder: no labels for this session"
        return
    labeled = set()
    for evaluation in sorted(p for p in evaluations.glob("*.txt") if not p.name.startswith(".")):
        for utterance, code in parse_evaluation(evaluation.read_text(encoding="utf-8", errors="replace")):
            dialog = utterance.rpartition("_")[0]
            path = wav / dialog / f"{utterance}.wav"
            labeled.add(path)
            if dialog != evaluation.stem:
                yield path, f"utterance {utterance} is labeled in {evaluation.name}, not {dialog}.txt"
            elif not path.is_file():
                yield path, f"labeled in {evaluation.name}, but the file is missing"
            else:
                yield path, _fields(utterance, code, session, classes)
    unlabeled = sorted(p for p in wav.glob("*/*.wav") if not p.name.startswith(".") and p not in labeled)
    for path in unlabeled:
        yield path, "no label in dialog/EmoEvaluation"


def _parsed(root: Path, classes: tuple[str, ...]) -> Iterator[tuple[Path, dict | str]]:
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and SESSION.match(p.name)):
        yield from _session_files(folder, int(SESSION.match(folder.name).group(1)), classes)


def read(name: str, corpus: CorpusParams, classes: tuple[str, ...]) -> CorpusTable:
    root = Path(corpus.root)
    if not root.is_dir() or not any(SESSION.match(p.name) for p in root.iterdir()):
        raise FileNotFoundError(
            f"{root}: no IEMOCAP Session1 ... Session5 folders (set corpora.{name}.root to IEMOCAP_full_release)"
        )
    return build_table(name, classes, root, _parsed(root, classes), corpus.min_seconds)
