import copy

import pytest
import yaml

from liser.params import ParamsError, load_params, parse_params

from .helpers import REPO


@pytest.fixture
def raw():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def error_for(raw, edit) -> str:
    changed = copy.deepcopy(raw)
    edit(changed)
    with pytest.raises(ParamsError) as caught:
        parse_params(changed)
    return str(caught.value)


def test_repository_params_load_as_demo(repo_params):
    assert repo_params.profile == "demo"
    assert repo_params.corpora.use == ["ravdess", "crema_d"]
    assert repo_params.features.crop_frames == 94
    assert repo_params.features.n_fft == 2048 and repo_params.features.hop_length == 512


def test_profile_switch_gives_the_papers_settings(raw):
    raw["profile"] = "paper"
    params = parse_params(raw)
    assert params.train.optimizer == "adamw"
    assert params.train.lr == pytest.approx(1e-4)
    assert params.train.batch_size == 25
    assert params.train.epochs == 50
    assert params.train.precision == params.train.device == "auto"
    assert params.loss.lambda_sd == params.loss.lambda_vd == "auto"  # chosen on validation, as section 3.6
    assert params.evaluate.stride_s == params.evaluate.validation_stride_s == pytest.approx(0.1)
    assert params.cv.n_folds == 5
    assert params.loss.lambda_grid == [0.1, 0.5, 1, 5, 10]
    assert str(params.corpora.root("ravdess")) == "data/corpora/RAVDESS"


def test_distillation_weight_names_are_the_users(raw):
    params = parse_params(raw)
    assert params.loss.lambda_sd >= 0 and params.loss.lambda_vd >= 0


def test_negative_lambda_names_the_key(raw):
    message = error_for(raw, lambda r: r["loss"].update(lambda_vd=-1))
    assert "loss.lambda_vd" in message and "greater than or equal to 0" in message and "-1" in message


def test_undefined_corpus_lists_the_defined_ones(raw):
    message = error_for(raw, lambda r: r["corpora"].update(use=["ravdess", "iemocap"]))
    assert "corpora.use" in message and "'iemocap' is not defined" in message and "ravdess, crema_d" in message


def test_fewer_than_two_folds(raw):
    message = error_for(raw, lambda r: r["cv"].update(folds=[0]))
    assert "cv.folds" in message and "k >= 2" in message


def test_folds_must_be_numbered_from_zero(raw):
    assert "cv.folds" in error_for(raw, lambda r: r["cv"].update(folds=[1, 2, 3]))


def test_window_longer_than_segment(raw):
    message = error_for(raw, lambda r: r["features"].update(window_s=4.0))
    assert "features.window_s" in message and "crop_s" in message


def test_unknown_profile(raw):
    message = error_for(raw, lambda r: r.update(profile="fast"))
    assert "profile" in message and "demo, paper" in message


def test_per_profile_value_needs_both(raw):
    message = error_for(raw, lambda r: r["train"].update(epochs={"demo": 3}))
    assert "train.epochs" in message and "paper" in message


def test_unknown_precision_names_the_choices(raw):
    message = error_for(raw, lambda p: p["train"].update(precision="float16"))
    assert "train.precision" in message and "bfloat16" in message


def test_misspelt_key(raw):
    message = error_for(raw, lambda r: r["train"].update(epoch=3))
    assert "train.epoch" in message and "unknown key" in message


def test_non_positive_learning_rate(raw):
    message = error_for(raw, lambda r: r["train"].update(lr=0))
    assert "train.lr" in message and "greater than 0" in message


def test_missing_file_says_where(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_paper_profile_uses_the_published_teachers(raw):
    raw["profile"] = "paper"
    params = parse_params(raw)
    assert params.speech_base.source == "facebook/hubert-base-ls960" and params.speech_base.revision
    assert params.speech_teacher.lr == pytest.approx(1e-4)
    assert params.speech_teacher.epochs == 50 and params.speech_teacher.training_fraction == 0.8
    assert params.video_teacher.size == "full" and params.video_teacher.source == "published"
    assert params.video_weights.s2d.repo == "cyinen/S2D"
    assert (
        "e1b5e5dfb57ab15f70103c933b346bfa62943159" in params.video_weights.mobilefacenet.url
    )  # a commit, not a branch
    demo = parse_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert demo.video_teacher.source == "train" and demo.video_teacher.size == "small"
    assert demo.speech_base.source == "pretrain"


def test_teacher_and_study_settings_are_checked(raw):
    def no_weights(p):
        p["video_teacher"].update(source="train", corpus=None)

    assert "needs a FERV39k-layout corpus" in error_for(raw, no_weights)
    assert "published checkpoint is the full-size" in error_for(
        raw, lambda p: p["video_teacher"].update(source="published", size="small")
    )
    assert "video_weights.s2d.sha256" in error_for(raw, lambda p: p["video_weights"]["s2d"].update(sha256="abc"))
    assert "video_weights.mobilefacenet.url" in error_for(
        raw, lambda p: p["video_weights"]["mobilefacenet"].update(url="file:///etc/passwd")
    )
    assert "label_efficiency.percents" in error_for(raw, lambda p: p["label_efficiency"].update(percents=[25, 100]))
    assert "loss.class_reduction" in error_for(raw, lambda p: p["loss"].update(class_reduction="max"))
    assert "ferv39k_clips_per_class" in error_for(raw, lambda p: p["demo"].update(ferv39k_clips_per_class=3))


def test_a_lambda_is_a_number_or_auto(raw):
    assert "loss.lambda_vd" in error_for(raw, lambda p: p["loss"].update(lambda_vd="best"))
    assert "loss.lambda_sd" in error_for(raw, lambda p: p["loss"].update(lambda_sd=-1))
    assert "loss.lambda_sd" in error_for(raw, lambda p: p["loss"].update(lambda_sd=float("inf")))


def test_unknown_device_and_population_are_refused(raw):
    assert "train.device" in error_for(raw, lambda p: p["train"].update(device="tpu"))
    assert "train.population" in error_for(raw, lambda p: p["train"].update(population=0))


def test_true_is_not_a_number_and_infinity_is_not_a_rate(raw):
    assert "train.epochs: a number" in error_for(raw, lambda p: p["train"].update(epochs=True))
    assert "cv.seed" in error_for(raw, lambda p: p["cv"].update(seed=False))
    assert "train.lr" in error_for(raw, lambda p: p["train"].update(lr=float("inf")))
    assert "loss.lambda_grid" in error_for(raw, lambda p: p["loss"].update(lambda_grid=[1.0, float("nan")]))
    assert parse_params(raw).demo.broken_files is True  # where true/false is meant, it stays allowed


def test_a_missing_profile_value_is_reported_against_the_file_read(raw, tmp_path):
    raw["train"]["epochs"] = {"demo": 3}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=f"^{path}: train.epochs: a per-profile value needs both"):
        load_params(path)


def test_the_reading_picks_values_as_the_profile_does(raw):
    assert parse_params(raw).protocol.reading == "strict"
    literal = copy.deepcopy(raw)
    literal["protocol"]["reading"] = "literal"
    params = parse_params(literal)
    assert params.speech_teacher.split == "non_test" and params.label_efficiency.teacher == "all"
    assert params.windows.min_face_fraction == 0.0
    # nested either way round
    literal["windows"]["min_face_fraction"] = {
        "strict": {"demo": 0.5, "paper": 0.6},
        "literal": {"demo": 0.1, "paper": 0},
    }
    literal["train"]["epochs"] = {"demo": {"strict": 4, "literal": 5}, "paper": 50}
    params = parse_params(literal)
    assert params.windows.min_face_fraction == 0.1 and params.train.epochs == 5
    literal["protocol"]["reading"] = {"demo": "strict", "paper": "literal"}  # the reading may follow the profile
    assert parse_params(literal).train.epochs == 4


def test_a_reading_value_needs_both_and_switches_do_not_mix(raw):
    message = error_for(raw, lambda r: r["windows"].update(min_face_fraction={"literal": 0}))
    assert "windows.min_face_fraction: a per-reading value needs both strict and literal (missing strict)" in message
    message = error_for(raw, lambda r: r["windows"].update(min_face_fraction={"demo": 0.5, "literal": 0}))
    assert "windows.min_face_fraction: mixes the options of profile and reading" in message
    assert "protocol.reading: must be one of strict, literal (got 'loose')" in error_for(
        raw, lambda r: r["protocol"].update(reading="loose")
    )


def test_seeds_are_distinct_and_the_budget_named(raw):
    assert parse_params(raw).train.seeds == [0] and parse_params(raw).train.selection_budget == "matched"
    paper = copy.deepcopy(raw)
    paper["profile"] = "paper"
    assert parse_params(paper).train.seeds == [0, 1, 2]
    assert "train.seeds: each seed at most once" in error_for(raw, lambda r: r["train"].update(seeds=[1, 1]))
    assert "train.selection_budget" in error_for(raw, lambda r: r["train"].update(selection_budget="all"))
    assert "train.seed: unknown key" in error_for(raw, lambda r: r["train"].update(seed=0))


def test_every_setting_has_its_value_in_params_yaml_only(raw):
    """params.yaml is the one place a setting's value lives: leave any key out and loading names it as missing
    (a corpus entry's optional keys apart: each corpus says only what its reader needs)."""
    for section, values in raw.items():
        if section in ("profile", "corpora") or not isinstance(values, dict):
            continue
        for key in values:
            message = error_for(raw, lambda r, section=section, key=key: r[section].pop(key))
            assert f"{section}.{key}: missing" in message, message
        assert f"{section}: missing" in error_for(raw, lambda r, section=section: r.pop(section))
