"""Corpora of your own: a manifest table, an EmoBox data list, IEMOCAP as distributed; their params and folds."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from liser.corpora.labeled import classes_of, corpus_classes, read_corpus
from liser.folds import speaker_folds
from liser.manifests import COLUMNS
from liser.params import CorpusParams, parse_params
from liser.results.report import corpus_title

from .helpers import REPO, copy_project, write_tone
from .test_params import error_for


def reasons(table) -> dict[str, str]:
    return {Path(path).name: reason for path, reason in zip(table.problems.path, table.problems.reason)}


# --- manifest ----------------------------------------------------------------------------------------------


@pytest.fixture
def manifest_folder(tmp_path):
    folder = tmp_path / "mine"
    for speaker in ("anna", "ben"):
        for emotion, freq in (("sad", 200.0), ("angry", 400.0)):
            write_tone(folder / speaker / f"{emotion}.wav", freq=freq)
    write_tone(folder / "ben" / "blip.wav", seconds=0.2)
    (folder / "ben" / "empty.wav").write_bytes(b"")
    write_tone(tmp_path / "outside.wav")
    rows = [
        ("anna/sad.wav", "sad", "anna", "F"),
        ("anna/angry.wav", "angry", "anna", "female"),
        ("ben/sad.wav", "sad", "ben", "m"),
        ("ben/angry.wav", "angry", "ben", ""),  # ben is male in an earlier row
        ("ben/gone.wav", "sad", "ben", "m"),
        ("ben/blip.wav", "sad", "ben", "m"),
        ("ben/empty.wav", "sad", "ben", "m"),
        ("../outside.wav", "sad", "ben", "m"),
        (str(tmp_path / "outside.wav"), "sad", "ben", "m"),
        ("anna/sad.wav", "bored", "anna", "F"),
        ("anna/angry.wav", "angry", "", "F"),
        ("ben/linked.wav", "sad", "ben", "m"),  # a link to a file outside the table's folder
    ]
    (folder / "ben" / "linked.wav").symlink_to(write_tone(tmp_path / "elsewhere.wav"))
    lines = ["path,emotion,speaker,gender,notes"] + [",".join(row) + ",x" for row in rows]
    (folder / "table.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_manifest_csv_reads_its_rows_and_rejects_each_bad_one_with_its_reason(manifest_folder):
    corpus = CorpusParams(reader="manifest", table=manifest_folder / "table.csv", min_seconds=0.5)
    table = read_corpus("mine", corpus)
    rows = table.utterances.set_index("utterance")
    assert list(table.utterances.columns) == list(COLUMNS)
    assert set(rows.index) == {"anna/sad", "anna/angry", "ben/sad"}
    assert classes_of("mine", corpus) == ("angry", "bored", "sad")  # sorted, every emotion the table lists
    assert rows.loc["anna/angry", "label"] == 0 and rows.loc["ben/sad", "label"] == 2
    assert (rows.loc["ben/sad", "gender"], rows.loc["anna/sad", "gender"]) == ("male", "female")
    assert set(rows["corpus"]) == {"mine"} and rows.loc["anna/sad", "duration"] == pytest.approx(1.0)
    why = list(table.problems.reason)
    assert len(why) == 9  # every row that is not an utterance is there, with its reason
    assert reasons(table)["linked.wav"].startswith("a link out of the corpus folder")
    assert any("gender 'male' in an earlier row" in r for r in why)
    assert reasons(table)["gone.wav"] == "listed file not found"
    assert reasons(table)["blip.wav"].startswith("too short: 0.20 s")
    assert "empty" in reasons(table)["empty.wav"]
    assert any("leaves" in r and "'..'" in r for r in why)
    assert any(r.startswith("absolute path") for r in why)
    assert any("already used" in r for r in why)  # anna/sad.wav listed twice: the second is rejected
    assert "no speaker" in why


def test_manifest_class_order_from_params_and_emotions_outside_it(manifest_folder):
    corpus = CorpusParams(reader="manifest", table=manifest_folder / "table.csv", emotions=["sad", "angry"])
    table = read_corpus("mine", corpus)
    rows = table.utterances.set_index("utterance")
    assert rows.loc["anna/sad", "label"] == 0 and rows.loc["anna/angry", "label"] == 1
    assert any("emotion 'bored' is not one of the classes (sad, angry" in r for r in table.problems.reason)


def test_manifest_json_lines_with_sessions(tmp_path):
    folder = tmp_path / "jsonl"
    lines = []
    for speaker, session in (("a", "s1"), ("b", "s1"), ("c", "s2")):
        for emotion in ("neutral", "happy"):
            write_tone(folder / "wav" / f"{speaker}_{emotion}.wav")
            lines.append(
                json.dumps(
                    {"path": f"wav/{speaker}_{emotion}.wav", "emotion": emotion, "speaker": speaker, "split": session}
                )
            )
    lines.append("{not json")
    (folder / "list.jsonl").write_text("\n".join(lines) + "\n")
    table = read_corpus("jsonl", CorpusParams(reader="manifest", table=folder / "list.jsonl"))
    assert len(table.utterances) == 6 and set(table.utterances.gender) == {"unknown"}
    assert dict(zip(table.utterances.speaker, table.utterances.session)) == {"a": "s1", "b": "s1", "c": "s2"}
    assert list(table.utterances.drop_duplicates("emotion").sort_values("label").emotion) == ["happy", "neutral"]
    assert table.problems.path.tolist() == [f"{folder / 'list.jsonl'}:7"] and "not JSON" in table.problems.reason[0]


def test_manifest_without_its_required_columns_stops(tmp_path):
    (tmp_path / "t.csv").write_text("file,label\na.wav,sad\n")
    with pytest.raises(ValueError, match="missing column"):
        read_corpus("t", CorpusParams(reader="manifest", table=tmp_path / "t.csv"))


# --- EmoBox data lists -------------------------------------------------------------------------------------


def test_emobox_list_made_elsewhere_is_read_through_list_prefix(tmp_path):
    root = tmp_path / "audio"
    listed = []
    for key, emo in (("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M001", "ang"), ("Ses02M_script01_1_F003", "sad")):
        write_tone(root / "wav" / f"{key}.wav")
        listed.append(
            {
                "key": key,
                "wav": f"/home/someone/EmoBox/iemocap/wav/{key}.wav",
                "emo": emo,
                "length": 1.0,
                "sample_rate": 16000,
            }
        )
    listed += [
        {"key": "Ses01F_x_F009", "wav": "/elsewhere/wav/Ses01F_x_F009.wav", "emo": "neu"},
        {"key": "Ses01F_x_F010", "wav": "/home/someone/EmoBox/iemocap/../secret.wav", "emo": "neu"},
        {"key": "nobody_0", "wav": "/home/someone/EmoBox/iemocap/wav/Ses01F_impro01_F000.wav", "emo": "neu"},
    ]
    (tmp_path / "iemocap.jsonl").write_text("".join(json.dumps(line) + "\n" for line in listed))
    corpus = CorpusParams(
        reader="emobox",
        table=tmp_path / "iemocap.jsonl",
        root=root,
        list_prefix="/home/someone/EmoBox/iemocap/",
        speaker_pattern=r"^(Ses\d\d[MF])",
    )
    table = read_corpus("box", corpus)
    rows = table.utterances.set_index("utterance")
    assert set(rows.index) == {"Ses01F_impro01_F000", "Ses01F_impro01_M001", "Ses02M_script01_1_F003"}
    assert rows.loc["Ses02M_script01_1_F003", "speaker"] == "Ses02M"
    assert rows.loc["Ses01F_impro01_F000", "path"] == str(root / "wav" / "Ses01F_impro01_F000.wav")
    assert list(rows.sort_values("label").emotion.unique()) == ["ang", "neu", "sad"]
    why = list(table.problems.reason)
    assert any("does not start with list_prefix" in r for r in why)
    assert any("leaves" in r for r in why)
    assert any("finds no speaker in the key 'nobody_0'" in r for r in why)


def test_emobox_absolute_paths_must_lie_under_root(tmp_path):
    root = tmp_path / "audio"
    write_tone(root / "spk1_a.wav")
    write_tone(tmp_path / "spk1_b.wav")
    listed = [
        {"key": "k1", "wav": str(root / "spk1_a.wav"), "emo": "sad"},
        {"key": "k2", "wav": str(tmp_path / "spk1_b.wav"), "emo": "sad"},
    ]
    (tmp_path / "list.jsonl").write_text("".join(json.dumps(line) + "\n" for line in listed))
    corpus = CorpusParams(
        reader="emobox", table=tmp_path / "list.jsonl", root=root, speaker_pattern=r"(spk\d)_", speaker_from="path"
    )
    table = read_corpus("box", corpus)
    assert table.utterances.utterance.tolist() == ["k1"] and table.utterances.speaker.tolist() == ["spk1"]
    assert "is not under" in table.problems.reason[0]


# --- IEMOCAP -----------------------------------------------------------------------------------------------


def write_iemocap(root: Path) -> None:
    """Five sessions of two dialogs each, every label IEMOCAP uses, one missing and one unlabeled file."""
    codes = ["neu", "hap", "exc", "ang", "sad", "fru", "xxx"]
    for session in range(1, 6):
        folder = root / f"Session{session}"
        evaluations = folder / "dialog" / "EmoEvaluation"
        evaluations.mkdir(parents=True)
        (evaluations / "Categorical").mkdir()
        for dialog in (f"Ses0{session}F_impro01", f"Ses0{session}M_script01_1"):
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            for i, code in enumerate(codes):
                for letter in "FM":
                    utterance = f"{dialog}_{letter}{i:03d}"
                    write_tone(folder / "sentences" / "wav" / dialog / f"{utterance}.wav", freq=200 + 20 * i)
                    lines += [f"[{i}.0000 - {i}.9000]\t{utterance}\t{code}\t[2.5000, 2.5000, 2.5000]", "C-E1:\t;\t()"]
            (evaluations / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
    (root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav").unlink()
    write_tone(root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F099.wav")


@pytest.fixture(scope="module")
def iemocap_table(tmp_path_factory):
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    write_iemocap(root)
    return read_corpus("iemocap", CorpusParams(reader="iemocap", root=root, folds_by="session"))


def test_iemocap_four_classes_with_excited_merged_into_happy(iemocap_table):
    rows = iemocap_table.utterances.set_index("utterance")
    assert list(iemocap_table.utterances.columns) == list(COLUMNS)
    assert len(rows) == 5 * 2 * 5 * 2 - 1  # neu hap exc ang sad, F and M, in 2 dialogs of 5 sessions; one missing
    assert rows.loc["Ses01F_impro01_F002", "emotion"] == "happy"  # exc
    assert rows.loc["Ses01F_impro01_M001", "emotion"] == "happy"  # hap
    assert rows.loc["Ses01F_impro01_M000", "label"] == 0  # neutral, happy, angry, sad
    speaker = rows.loc["Ses03M_script01_1_F004"]
    assert (speaker.speaker, speaker.gender, speaker.session, speaker.emotion) == (
        "Ses03F",
        "female",
        "Session3",
        "sad",
    )
    assert rows.loc["Ses01F_impro01_M003", ["speaker", "gender"]].tolist() == ["Ses01M", "male"]
    assert set(iemocap_table.utterances.speaker) == {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}


def test_iemocap_reports_excluded_labels_missing_and_unlabeled_files(iemocap_table):
    why = iemocap_table.problems.reason
    assert why.str.startswith("label fru (frustrated): excluded").sum() == 5 * 2 * 2
    assert why.str.startswith("label xxx").sum() == 5 * 2 * 2
    assert reasons(iemocap_table)["Ses01F_impro01_F000.wav"] == "labeled in Ses01F_impro01.txt, but the file is missing"
    assert reasons(iemocap_table)["Ses01F_impro01_F099.wav"] == "no label in dialog/EmoEvaluation"
    assert len(why) == 20 + 20 + 2


def test_iemocap_leave_one_session_out(iemocap_table):
    folds = speaker_folds(iemocap_table.utterances, 5, seed=0, by_session=True)
    test = folds[folds.role == "test"]
    assert {fold: sorted(members.speaker) for fold, members in test.groupby("fold")} == {
        k: [f"Ses0{k + 1}F", f"Ses0{k + 1}M"] for k in range(5)
    }
    with pytest.raises(ValueError, match="5 sessions .* but cv.folds has 2 folds"):
        speaker_folds(iemocap_table.utterances, 2, seed=0, by_session=True)


# --- params ------------------------------------------------------------------------------------------------


def repository_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_corpora_of_your_own_in_params():
    raw = repository_params()
    raw["corpora"].update(
        use=["ravdess", "mine", "iemocap"],
        mine={"reader": "manifest", "table": "data/mine/table.csv", "emotions": ["sad", "happy"]},
        iemocap={"reader": "iemocap", "root": "data/corpora/IEMOCAP_full_release", "folds_by": "session"},
    )
    params = parse_params(raw)
    assert corpus_classes(params.corpora, "mine") == ("sad", "happy")
    assert corpus_classes(params.corpora, "iemocap") == ("neutral", "happy", "angry", "sad")
    assert corpus_classes(params.corpora, "ravdess")[:2] == ("neutral", "calm")
    assert params.corpora.corpus("iemocap").folds_by == "session"
    assert [corpus_title(n) for n in params.corpora.use] == ["RAVDESS", "mine", "iemocap"]


@pytest.mark.parametrize(
    "corpora,expected",
    [
        ({"use": ["mine"]}, "corpora.use: 'mine' is not defined under corpora (defined: ravdess, crema_d)"),
        ({"mine": {"reader": "manifest"}}, "corpora.mine.table: missing"),
        ({"mine": {"root": "x"}}, "corpora.mine.reader: missing"),
        ({"mine": {"reader": "iemocap"}}, "corpora.mine.root: missing"),
        ({"mine": {"reader": "manifest", "table": "t.csv", "root": "x"}}, "corpora.mine.root: a manifest's paths"),
        ({"my/../corpus": {"reader": "manifest", "table": "t.csv"}}, "corpora.my/../corpus: a corpus name is"),
        ({"mine": {"reader": "emobox", "table": "t.jsonl"}}, "corpora.mine.speaker_pattern: missing"),
        ({"mine": {"reader": "emobox", "table": "t.jsonl", "speaker_pattern": "(a)(b)"}}, "exactly one group"),
        ({"mine": {"reader": "manifest", "table": "t", "speaker_pattern": "(a)"}}, "only an emobox corpus"),
        ({"ravdess": {"root": "x", "folds_by": "session"}}, "corpora.ravdess.folds_by: session needs sessions"),
        ({"mine": {"reader": "manifest", "table": "t", "emotions": ["sad", "sad"]}}, "corpora.mine.emotions"),
        ({"mine": {"reader": "wav2vec", "table": "t"}}, "corpora.mine.reader"),
    ],
)
def test_corpus_definitions_are_checked(corpora, expected):
    assert expected in error_for(repository_params(), lambda r: r["corpora"].update(corpora))


# --- the pipeline on two corpora of your own ---------------------------------------------------------------


def write_own_corpora(project: Path) -> None:
    """A manifest corpus (CSV) and an EmoBox-format one (absolute paths of another machine), six speakers each."""
    rows, listed = ["path,emotion,speaker,gender"], []
    for s in range(6):
        gender = "female" if s % 2 else "male"
        for e, emotion in enumerate(("angry", "happy", "sad")):
            for take in range(3):
                name = f"spk{s}_{emotion}_{take}.wav"
                write_tone(project / "corpora/mine" / f"spk{s}" / name, seconds=1.0 + 0.2 * take, freq=150 + 120 * e)
                rows.append(f"spk{s}/{name},{emotion},spk{s},{gender}")
                write_tone(project / "corpora/box/wav" / name, seconds=1.0, freq=150 + 120 * e + 10 * s)
                listed.append(
                    {
                        "key": name[:-4],
                        "wav": f"/mnt/emobox/wav/{name}",
                        "emo": emotion[:3],
                        "length": 1.0,
                        "sample_rate": 16000,
                    }
                )
    (project / "corpora/mine/table.csv").write_text("\n".join(rows) + "\n")
    (project / "corpora/box/box.jsonl").write_text("".join(json.dumps(line) + "\n" for line in listed))


@pytest.mark.slow
def test_pipeline_runs_on_a_manifest_and_an_emobox_corpus(tmp_path):
    from .test_pipeline import dvc, run, set_params

    project = copy_project(tmp_path / "project")
    write_own_corpora(project)
    (project / "data/demo/manifests").mkdir(parents=True)  # what stage `demo` leaves; not run here
    (project / "data/demo/manifests/ravdess.tsv").write_text("")

    def own(params):
        params["corpora"].update(
            use=["mine", "box"],
            mine={"reader": "manifest", "table": "corpora/mine/table.csv"},
            box={
                "reader": "emobox",
                "table": "corpora/box/box.jsonl",
                "root": "corpora/box",
                "list_prefix": "/mnt/emobox",
                "speaker_pattern": r"^(spk\d+)_",
                "emotions": ["sad", "hap", "ang"],
            },
        )
        params["cv"]["folds"] = [0, 1]
        params["train"].update(epochs=1, threads=1)

    set_params(project, own)
    git = ["git", "-c", "user.name=LiSER tests", "-c", "user.email=tests@liser.invalid"]
    run(["git", "add", "-A"], project)
    run([*git, "commit", "-q", "-m", "two corpora of our own"], project)  # DVCLive wants a commit to start from
    stages = [f"{stage}@{corpus}" for stage in ("corpus", "folds", "features", "no-dstl") for corpus in ("mine", "box")]
    dvc("repro", "--single-item", *stages, cwd=project)
    for corpus in ("mine", "box"):
        summary = json.loads((project / f"metrics/corpora/{corpus}.json").read_text())
        assert summary["files_usable"] == 54 and summary["files_rejected"] == 0 and summary["speakers"] == 6
        figures = json.loads((project / f"metrics/students/{corpus}/no-dstl.json").read_text())
        results = json.loads((project / f"outputs/students/{corpus}/no-dstl/results.json").read_text())
        assert set(results["folds"]) == {"0", "1"} and 0 <= figures["test"]["uar"] <= 1
    labels = pd.read_parquet(project / "data/manifests/box.parquet").drop_duplicates("emotion").set_index("emotion")
    assert labels["label"].to_dict() == {"sad": 0, "hap": 1, "ang": 2}
