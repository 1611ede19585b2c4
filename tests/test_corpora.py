import pandas as pd
import pytest

from liser.corpora.audio_check import UnusableAudio, check_audio
from liser.corpora.labeled import read_corpus
from liser.corpora.table import NothingUsable
from liser.manifests import COLUMNS

from .helpers import write_tone


def reasons(table) -> dict[str, str]:
    return {path.rsplit("/", 1)[-1]: reason for path, reason in zip(table.problems.path, table.problems.reason)}


@pytest.fixture
def ravdess_root(tmp_path):
    root = tmp_path / "RAVDESS"
    write_tone(root / "Actor_12" / "03-01-06-01-02-01-12.wav", sample_rate=48000)  # fearful, "Dogs...", female
    write_tone(root / "Actor_01" / "03-01-01-01-01-01-01.wav", sample_rate=48000)  # neutral, male
    write_tone(root / "Actor_01" / "03-01-05-02-01-02-01.wav", sample_rate=48000, seconds=2.0)  # angry, strong
    write_tone(root / "Actor_01" / "03-02-05-01-01-01-01.wav", sample_rate=48000)  # song
    write_tone(root / "Actor_01" / "01-01-05-01-01-01-01.wav", sample_rate=48000)  # audio-video modality
    write_tone(root / "Actor_01" / "03-01-09-01-01-01-01.wav", sample_rate=48000)  # no emotion 09
    write_tone(root / "Actor_01" / "03-01-01-02-01-01-01.wav", sample_rate=48000)  # strong neutral
    write_tone(root / "Actor_01" / "03-01-03-01-01-01-02.wav", sample_rate=48000)  # actor 02 in Actor_01
    write_tone(root / "Actor_01" / "03-01-03-01-01-01-01 (1).wav", sample_rate=48000)
    (root / "Actor_01" / "03-01-04-01-01-01-01.wav").write_bytes(b"")
    (root / "Actor_01" / "03-01-04-01-02-01-01.wav").write_bytes(b"RIFF not really a wav file at all")
    truncated = write_tone(root / "Actor_01" / "03-01-04-02-02-01-01.wav", sample_rate=48000)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    write_tone(root / "misc" / "03-01-04-02-02-01-05.wav", sample_rate=48000)
    return root


def test_ravdess_reads_real_names(ravdess_root):
    table = read_corpus("ravdess", ravdess_root)
    rows = table.utterances.set_index("utterance")
    assert list(table.utterances.columns) == list(COLUMNS)
    assert set(rows.index) == {"03-01-06-01-02-01-12", "03-01-01-01-01-01-01", "03-01-05-02-01-02-01"}
    fearful = rows.loc["03-01-06-01-02-01-12"]
    assert (fearful.speaker, fearful.gender, fearful.emotion, fearful.statement, fearful.intensity) == (
        "Actor_12",
        "female",
        "fearful",
        "02",
        "01",
    )
    assert fearful.label == 5 and fearful.sample_rate == 48000
    assert rows.loc["03-01-05-02-01-02-01"].duration == pytest.approx(2.0)
    assert rows.loc["03-01-01-01-01-01-01"].gender == "male"


def test_ravdess_reports_every_skipped_file_with_its_reason(ravdess_root):
    why = reasons(read_corpus("ravdess", ravdess_root))
    assert "not speech" in why["03-02-05-01-01-01-01.wav"]
    assert "not audio-only" in why["01-01-05-01-01-01-01.wav"]
    assert "unknown emotion" in why["03-01-09-01-01-01-01.wav"]
    assert "invalid intensity" in why["03-01-01-02-01-01-01.wav"]
    assert "Actor_01" in why["03-01-03-01-01-01-02.wav"]
    assert "does not follow" in why["03-01-03-01-01-01-01 (1).wav"]
    assert "empty" in why["03-01-04-01-01-01-01.wav"]
    assert "unreadable" in why["03-01-04-01-02-01-01.wav"]
    assert "truncated" in why["03-01-04-02-02-01-01.wav"]
    assert "Actor_XX" in why["03-01-04-02-02-01-05.wav"]
    assert len(why) == 10


@pytest.fixture
def crema_root(tmp_path):
    root = tmp_path / "CREMA-D"
    root.mkdir()
    pd.DataFrame(
        {
            "ActorID": [1001, 1002, 1003],
            "Age": [51, 21, 30],
            "Sex": ["Male", "Female", "Male"],
            "Race": ["Caucasian"] * 3,
            "Ethnicity": ["Not Hispanic"] * 3,
        }
    ).to_csv(root / "VideoDemographics.csv", index=False)
    audio = root / "AudioWAV"
    write_tone(audio / "1001_DFA_ANG_XX.wav")
    write_tone(audio / "1002_IEO_HAP_HI.wav", seconds=2.5)
    write_tone(audio / "1003_TSI_NEU_XX.wav", channels=2)
    write_tone(audio / "1004_DFA_ANG_XX.wav")  # not in the demographics
    write_tone(audio / "1001_ABC_ANG_XX.wav")  # no such sentence
    write_tone(audio / "1001_DFA_XYZ_XX.wav")  # no such emotion
    write_tone(audio / "1001_DFA_ANG_QQ.wav")  # no such level
    write_tone(audio / "0999_DFA_ANG_XX.wav")  # actor out of range
    write_tone(audio / "1001-DFA-ANG-XX.wav")
    (audio / "1001_MTI_SAD_XX.wav").write_bytes(b"")
    return root


def test_crema_d_reads_genders_from_demographics(crema_root):
    table = read_corpus("crema_d", crema_root)
    rows = table.utterances.set_index("utterance")
    assert set(rows.index) == {"1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1003_TSI_NEU_XX"}
    assert rows.loc["1001_DFA_ANG_XX", "gender"] == "male"
    assert rows.loc["1002_IEO_HAP_HI", "gender"] == "female"
    assert rows.loc["1002_IEO_HAP_HI", "emotion"] == "happy"
    assert rows.loc["1002_IEO_HAP_HI", "intensity"] == "HI"
    assert rows.loc["1001_DFA_ANG_XX", "label"] == 0
    assert rows.loc["1003_TSI_NEU_XX", "statement"] == "TSI"


def test_crema_d_reports_bad_names_and_files(crema_root):
    why = reasons(read_corpus("crema_d", crema_root))
    assert "VideoDemographics.csv" in why["1004_DFA_ANG_XX.wav"]
    assert "sentence" in why["1001_ABC_ANG_XX.wav"]
    assert "emotion" in why["1001_DFA_XYZ_XX.wav"]
    assert "level" in why["1001_DFA_ANG_QQ.wav"]
    assert "outside" in why["0999_DFA_ANG_XX.wav"]
    assert "does not follow" in why["1001-DFA-ANG-XX.wav"]
    assert "empty" in why["1001_MTI_SAD_XX.wav"]


def test_nothing_usable_stops_with_the_folder_named(tmp_path):
    root = tmp_path / "RAVDESS"
    (root / "Actor_01").mkdir(parents=True)
    (root / "Actor_01" / "03-01-04-01-01-01-01.wav").write_bytes(b"")
    with pytest.raises(NothingUsable, match=str(root)):
        read_corpus("ravdess", root)


def test_missing_corpus_folder_names_the_parameter(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpora.crema_d.root"):
        read_corpus("crema_d", tmp_path / "nowhere")


def test_check_audio_on_a_good_file(tmp_path):
    info = check_audio(write_tone(tmp_path / "a.wav", seconds=0.5, sample_rate=48000, channels=2))
    assert (info.sample_rate, info.channels, info.duration) == (48000, 2, pytest.approx(0.5))
    (tmp_path / "b.wav").write_bytes(b"")
    with pytest.raises(UnusableAudio, match="empty"):
        check_audio(tmp_path / "b.wav")


def test_a_link_out_of_the_corpus_folder_is_rejected_with_its_reason(ravdess_root, tmp_path):
    secret = write_tone(tmp_path / "elsewhere" / "03-01-03-01-01-01-01.wav", sample_rate=48000)
    (ravdess_root / "Actor_01" / "03-01-03-01-01-01-01.wav").symlink_to(secret)  # a file link out
    folder = write_tone(tmp_path / "another" / "03-01-03-01-01-01-05.wav", sample_rate=48000).parent
    (ravdess_root / "Actor_05").symlink_to(folder, target_is_directory=True)  # a folder link out
    inside = ravdess_root / "Actor_01" / "03-01-05-01-01-01-01.wav"
    inside.symlink_to(ravdess_root / "Actor_12" / "03-01-06-01-02-01-12.wav")  # a link within the corpus is fine
    table = read_corpus("ravdess", ravdess_root)
    why = reasons(table)
    assert why["03-01-03-01-01-01-01.wav"].startswith("a link out of the corpus folder")
    assert why["03-01-03-01-01-01-05.wav"].startswith("a link out of the corpus folder")
    assert "03-01-05-01-01-01-01" in set(table.utterances["utterance"])
    assert not any("elsewhere" in reason or "another" in reason for reason in table.problems.reason)  # no target
