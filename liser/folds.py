"""Speaker-independent k-fold cross-validation.

Speakers are dealt into k groups, women and men in turn, after a seeded shuffle, so
each group is as gender-balanced as the corpus allows.  Fold i tests on group i,
validates on group i+1 (mod k) and trains on the rest: the three sets are disjoint and
every speaker is tested exactly once.  With k = 2 there is no third group, so a third of
the other group validates and the rest trains.

With ``by_session`` the groups are the corpus's sessions instead (IEMOCAP's leave-one-session-out
protocol): each session's speakers are tested together, so k must be the number of sessions.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from liser.logs import UserError

__all__ = ["ROLES", "FoldsError", "speaker_folds", "fold_utterances", "check_folds", "labeled_share"]

ROLES = ("train", "validation", "test")


class FoldsError(UserError, ValueError):
    """Folds that cannot be made from a corpus (too few speakers, sessions that do not match cv.folds) or a folds
    file that does not fit the fold asked for."""


def _speaker_groups(speakers: pd.DataFrame, n_folds: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    groups: list[list[str]] = [[] for _ in range(n_folds)]
    dealt = 0
    for gender in sorted(speakers["gender"].unique()):
        members = sorted(speakers.loc[speakers["gender"] == gender, "speaker"])
        for speaker in rng.permutation(members):
            groups[dealt % n_folds].append(str(speaker))
            dealt += 1
    return groups


def _session_groups(utterances: pd.DataFrame, n_folds: int) -> list[list[str]]:
    sessions_of = utterances.groupby("speaker")["session"].unique()
    several = [f"{speaker} ({', '.join(s)})" for speaker, s in sessions_of.items() if len(s) > 1]
    if several:
        raise FoldsError(f"folds by session: speakers in more than one session: {'; '.join(several)}")
    session = {speaker: s[0] for speaker, s in sessions_of.items()}
    names = sorted(set(session.values()))
    if "" in names:
        raise FoldsError("folds by session: some utterances have no session (folds_by: speaker does not need one)")
    if len(names) != n_folds:
        raise FoldsError(
            f"folds by session: the corpus has {len(names)} sessions ({', '.join(names)}) but cv.folds has "
            f"{n_folds} folds; set cv.folds to {list(range(len(names)))} or the corpus's folds_by to speaker"
        )
    return [sorted(speaker for speaker, s in session.items() if s == name) for name in names]


def speaker_folds(utterances: pd.DataFrame, n_folds: int, seed: int, by_session: bool = False) -> pd.DataFrame:
    """One row per (fold, speaker): its role (train / validation / test) and gender."""
    speakers = utterances[["speaker", "gender"]].drop_duplicates("speaker")
    needed = 4 if n_folds == 2 else n_folds
    if len(speakers) < needed:
        raise FoldsError(
            f"{len(speakers)} speakers cannot make {n_folds} speaker-independent folds (need at least {needed})"
        )
    groups = _session_groups(utterances, n_folds) if by_session else _speaker_groups(speakers, n_folds, seed)
    gender = dict(zip(speakers["speaker"], speakers["gender"]))
    rows = []
    for fold in range(n_folds):
        following = groups[(fold + 1) % n_folds]
        validation = set(following[::3] if n_folds == 2 else following)
        for group_index, group in enumerate(groups):
            for speaker in group:
                role = "test" if group_index == fold else "validation" if speaker in validation else "train"
                rows.append({"fold": fold, "speaker": speaker, "gender": gender[speaker], "role": role})
    table = pd.DataFrame(rows)
    check_folds(table)
    return table.sort_values(["fold", "role", "speaker"], ignore_index=True)


def check_folds(folds: pd.DataFrame) -> None:
    """Raise if any fold shares a speaker between roles or a speaker is not tested exactly once."""
    for fold, members in folds.groupby("fold"):
        by_role = {role: set(members.loc[members["role"] == role, "speaker"]) for role in ROLES}
        if any(not by_role[role] for role in ROLES):
            raise ValueError(f"fold {fold}: every role needs at least one speaker")
        if sum(len(s) for s in by_role.values()) != len(set().union(*by_role.values())):
            raise ValueError(f"fold {fold}: a speaker has more than one role")
    tested = folds.loc[folds["role"] == "test", "speaker"].value_counts()
    if set(tested.unique()) != {1} or set(tested.index) != set(folds["speaker"]):
        raise ValueError("every speaker must be in exactly one test set")


def fold_utterances(utterances: pd.DataFrame, folds: pd.DataFrame, fold: int, role: str) -> pd.DataFrame:
    """The utterances of ``role`` speakers in ``fold``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    members = folds.loc[(folds["fold"] == fold) & (folds["role"] == role), "speaker"]
    if members.empty:
        raise FoldsError(f"fold {fold} has no {role} speakers (folds file written for fewer folds? dvc repro folds)")
    return utterances[utterances["speaker"].isin(set(members))].reset_index(drop=True)


def labeled_share(utterances: pd.DataFrame, percent: int, seed: int) -> pd.DataFrame:
    """``percent`` % of the utterances of each class (rounded up, at least one), drawn with ``seed``: the labeled
    training utterances of Figure 2's runs, the same for a share's students and its speech teachers."""
    if percent == 100:
        return utterances
    rng = np.random.default_rng(seed)
    kept = []
    for _, members in utterances.groupby("label", sort=True):
        count = max(1, math.ceil(len(members) * percent / 100))
        kept.extend(members.index[np.sort(rng.permutation(len(members))[:count])])
    return utterances.loc[sorted(kept)].reset_index(drop=True)
