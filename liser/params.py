"""One typed, validated view of ``params.yaml``.

``params.yaml`` has one section per stage.  A value that differs between the paper's
settings and the embedded demo is written as ``{demo: ..., paper: ...}``; the top-level
``profile`` key picks one, so switching the whole project between the two is one
parameter change (``dvc exp run -S profile=paper``).  In the same way a value that differs
between the two readings of the paper's protocol is written ``{strict: ..., literal: ...}``
and ``protocol.reading`` picks one (``dvc exp run -S protocol.reading=literal``); the two
may nest either way round.  Everything else is a plain value.

An invalid value stops with a message naming the key and what is allowed::

    params.yaml: train.lr: input should be greater than 0 (got -0.1)

Every section knows its key (``train``, ``corpora.ravdess``), so what a stage reads can be recorded
(:func:`recorded_reads`) and held against what its entry in ``dvc.yaml`` lists (tests/test_stage_params.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from liser.logs import UserError

__all__ = [
    "CORPORA",
    "CorporaParams",
    "CorpusParams",
    "PROFILES",
    "READINGS",
    "READERS",
    "UNLABELED_READERS",
    "Params",
    "ParamsError",
    "ProtocolParams",
    "load_params",
    "recorded_reads",
    "resolve_profile",
    "resolve_switches",
    "sections_in",
]

PROFILES = ("demo", "paper")
READINGS = ("strict", "literal")  # protocol.reading: how the paper's protocol is read (docs/paper-map.md)
CORPORA = ("ravdess", "crema_d")  # corpora whose reader is their own name: `ravdess: {root: ...}` is enough
READERS = ("ravdess", "crema_d", "manifest", "emobox", "iemocap")
CORPUS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")  # used in file and stage names: data/manifests/<name>.parquet


class ParamsError(UserError, ValueError):
    """A parameter file that cannot be used, with the offending key in the message."""


_READS: ContextVar[set[str] | None] = ContextVar("liser_params_reads", default=None)


class _Section(BaseModel):
    # no infinities or NaN (`lr: .inf`), and no true/false where a number is meant (`epochs: true` is not 1)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    _key: str = PrivateAttr("")  # where the section sits in params.yaml: "train", "corpora.ravdess"

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        reads = _READS.get()
        if reads is not None and name in type(self).model_fields and not isinstance(value, _Section):
            reads.add(_join(self._key, name))
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for name, value in values.items():
                field = cls.model_fields.get(name)
                if isinstance(value, bool) and field is not None and bool not in _types_in(field.annotation):
                    raise ValueError(f"{name}: a number or a name is meant here, not {str(value).lower()}")
        return values


def _types_in(annotation: Any) -> set[Any]:
    """The types a field's annotation admits (through Optional, unions, Annotated and lists)."""
    arguments = get_args(annotation)
    if not arguments:
        return {annotation}
    if get_origin(annotation) is Annotated:
        return _types_in(arguments[0])
    return {annotation, *(t for argument in arguments for t in _types_in(argument))}


class DemoParams(_Section):
    """The generated corpora in the real layouts (stage ``demo``).

    ``broken_files`` adds the damage real copies show: an empty, a truncated and a misnamed
    labeled file, and an MSP-Face video that is gone and one without a face.
    """

    seed: int
    ravdess_actors: int = Field(ge=10, le=24)
    crema_d_actors: int = Field(ge=10, le=91)
    mspface_speakers: int = Field(ge=1)
    mspface_videos: int = Field(ge=3)
    ferv39k_clips_per_class: int = Field(ge=2)
    ferv39k_identities: int = Field(ge=2)
    broken_files: bool

    @model_validator(mode="after")
    def _every_identity_shows_every_expression(self) -> DemoParams:
        if self.ferv39k_clips_per_class < self.ferv39k_identities:
            raise ValueError(
                f"ferv39k_clips_per_class: must be at least ferv39k_identities = {self.ferv39k_identities} "
                f"(got {self.ferv39k_clips_per_class})"
            )
        return self


class CorpusParams(_Section):
    """One labeled corpus under ``corpora:``: the reader that turns it into the utterance table, and where it is.

    ``emotions`` is the class order (label i is ``emotions[i]``); utterances of other emotions are rejected with a
    reason.  Without it: the reader's own classes (ravdess, crema_d, iemocap), or for a manifest or EmoBox list the
    sorted set of the emotions it lists.
    """

    reader: Literal["ravdess", "crema_d", "manifest", "emobox", "iemocap"] | None = None  # None: the corpus's name
    root: Path | None = None  # the corpus folder as distributed; emobox: where the listed audio lies
    table: Path | None = None  # manifest: a CSV or JSON-lines table; emobox: the data list (JSON lines)
    emotions: list[str] | None = None
    min_seconds: float = Field(0.0, ge=0)  # shorter files are rejected as too short
    folds_by: Literal["speaker", "session"] = "speaker"  # session: each session's speakers share one test fold
    speaker_pattern: str | None = None  # emobox: a regular expression with one group, the speaker, searched in
    speaker_from: Literal["key", "path"] = "key"  # the list's key or its wav path
    list_prefix: str | None = None  # emobox: the folder the list's wav paths start with (where it was made); root
    # replaces it.  Without it, absolute paths must lie under root and relative ones are taken from root

    def reader_for(self, name: str) -> str:
        return self.reader or name

    def check(self, name: str) -> None:
        """Raise ValueError naming the key when the entry does not suit its reader."""
        reader = self.reader_for(name)
        if reader not in READERS:
            raise ValueError(f"{name}.reader: missing; a corpus of your own needs one of {', '.join(READERS)}")
        needs_table = reader in ("manifest", "emobox")
        if needs_table and self.table is None:
            raise ValueError(f"{name}.table: missing; a {reader} corpus is read from a table file")
        if not needs_table and self.table is not None:
            raise ValueError(f"{name}.table: a {reader} corpus is read from its folder (root), not a table")
        if reader == "manifest" and self.root is not None:
            raise ValueError(f"{name}.root: a manifest's paths are relative to the table's folder; remove root")
        if reader in ("ravdess", "crema_d", "iemocap") and self.root is None:
            raise ValueError(f"{name}.root: missing; the folder of the {reader} corpus as distributed")
        if self.emotions is not None and (len(self.emotions) < 2 or len(set(self.emotions)) != len(self.emotions)):
            raise ValueError(f"{name}.emotions: at least two distinct class names (got {self.emotions})")
        if self.folds_by == "session" and reader not in ("iemocap", "manifest"):
            raise ValueError(f"{name}.folds_by: session needs sessions, which iemocap and manifest corpora have")
        emobox_only = {
            "speaker_pattern": self.speaker_pattern,
            "speaker_from": None if self.speaker_from == "key" else self.speaker_from,
            "list_prefix": self.list_prefix,
        }
        if reader != "emobox":
            for key, value in emobox_only.items():
                if value is not None:
                    raise ValueError(f"{name}.{key}: only an emobox corpus has this option")
        elif self.speaker_pattern is None:
            raise ValueError(
                f"{name}.speaker_pattern: missing; an EmoBox list names no speaker, e.g. '^(Ses\\d\\d[MF])'"
            )
        else:
            try:
                groups = re.compile(self.speaker_pattern).groups
            except re.error as exc:
                raise ValueError(f"{name}.speaker_pattern: not a regular expression: {exc}") from None
            if groups != 1:
                raise ValueError(f"{name}.speaker_pattern: needs exactly one group, the speaker (has {groups})")


class CorporaParams(_Section):
    """Which labeled corpora the project uses (``use``) and each corpus's definition (every other key, its name)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, CorpusParams] = Field(init=False)
    use: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _defined(self) -> CorporaParams:
        defined = self.model_extra or {}
        for name, entry in defined.items():
            if not CORPUS_NAME.fullmatch(name):
                raise ValueError(f"{name}: a corpus name is a letter then letters, digits or _ (it names files)")
            entry.check(name)
        if len(set(self.use)) != len(self.use):
            raise ValueError(f"use: each corpus at most once (got {self.use})")
        for name in self.use:
            if name not in defined:
                raise ValueError(
                    f"use: {name!r} is not defined under corpora (defined: {', '.join(defined) or 'none'})"
                )
        return self

    def corpus(self, name: str) -> CorpusParams:
        defined = self.model_extra or {}
        if name not in defined:
            raise KeyError(f"corpora.{name}: not defined in params.yaml (defined: {', '.join(defined)})")
        return defined[name]

    def sections(self) -> dict[str, _Section]:
        return dict(self.model_extra or {})

    def root(self, corpus: str) -> Path | None:
        return self.corpus(corpus).root


class RuntimeParams(_Section):
    """Where the unlabeled corpus's per-segment work and the teachers' window scoring run.

    ``cluster: local`` uses this machine's processes; ``ray`` runs the work as Ray tasks (and the window scoring
    through Ray Data): ``ray_address`` null starts a Ray instance on this machine, an address (``host:port``, or
    ``auto`` for the cluster ``ray start`` made here) joins an existing cluster.  ``shared_root`` is the project
    folder as every node of the cluster sees it (a shared file system): workers then read their inputs from there;
    without it each input file is sent with its task.  Outputs are always written by the stage itself.
    """

    cluster: Literal["local", "ray"]
    ray_address: str | None
    shared_root: Path | None

    @model_validator(mode="after")
    def _ray_settings_need_ray(self) -> RuntimeParams:
        if self.cluster == "local" and (self.ray_address is not None or self.shared_root is not None):
            key = "ray_address" if self.ray_address is not None else "shared_root"
            raise ValueError(f"{key}: a Ray setting, but cluster is local (set cluster: ray)")
        return self


UNLABELED_READERS = ("mspface", "voxceleb2", "avspeech", "folder")


class UnlabeledParams(_Section):
    """Which unlabeled audio-visual corpus the project distils over, and where it is (stage ``acquire``).

    ``mspface`` reads the lists in ``mspface.lists`` and ``avspeech`` the CSV ``table``; both download their videos
    from YouTube with the ``mspface`` settings.  ``voxceleb2`` reads ``root`` as distributed (``dev/mp4/...``, and
    ``txt/``, ``vox2_meta.csv`` when there) and ``folder`` any folder of video files, with an optional ``table`` of
    their speakers and segment times; their files are used where they are.  Segments of ``exclude_speakers`` are
    left out (say, the labeled corpora's speakers).
    """

    reader: Literal["mspface", "voxceleb2", "avspeech", "folder"]
    root: Path | None
    table: Path | None
    sets: list[Literal["dev", "test"]]  # voxceleb2
    exclude_speakers: list[str]

    @model_validator(mode="after")
    def _where_the_reader_reads(self) -> UnlabeledParams:
        needs = {"mspface": (), "voxceleb2": ("root",), "avspeech": ("table",), "folder": ("root",)}[self.reader]
        for key in needs:
            if getattr(self, key) is None:
                raise ValueError(f"{key}: missing; the {self.reader} reader needs it")
        allowed = {"mspface": (), "voxceleb2": ("root",), "avspeech": ("table",), "folder": ("root", "table")}
        for key in ("root", "table"):
            if getattr(self, key) is not None and key not in allowed[self.reader]:
                raise ValueError(f"{key}: the {self.reader} reader does not read it")
        if not self.sets or len(set(self.sets)) != len(self.sets):
            raise ValueError(f"sets: dev, test or both, each once (got {self.sets})")
        return self


class MspFaceParams(_Section):
    """Obtaining MSP-Face from its published lists (stage ``acquire``); the download settings serve every reader
    that downloads (``unlabeled.reader: avspeech`` too)."""

    lists: Path  # folder with link_videos.txt, segments_data.txt, speaker_id_*.txt
    limit_videos: int | None = Field(gt=0)  # first N videos only, to try the pipeline on a subset
    limit_hours: float | None = Field(gt=0)
    workers: int = Field(ge=1)
    retries: int = Field(ge=0)
    backoff_s: float = Field(ge=0)
    ratelimit: int | None = Field(gt=0)  # bytes per second per download
    cookies: Path | None  # a cookies.txt (Netscape format), for YouTube's bot checks and age gates
    cookies_from_browser: str | None  # or read from a browser: firefox, chrome, "chrome:Profile 1"
    sleep_s: float = Field(ge=0)  # wait before each download
    max_sleep_s: float | None = Field(ge=0)  # a random wait between sleep_s and this
    per_host: int = Field(ge=1)  # downloads at a time from one host
    retry_gone: bool  # try again videos an earlier run found removed, private, region-locked, age-gated
    allow_local_files: bool  # file:// URLs in the lists (the demo's); otherwise https YouTube URLs only

    @model_validator(mode="after")
    def _sleep_range(self) -> MspFaceParams:
        if self.max_sleep_s is not None and self.max_sleep_s < self.sleep_s:
            raise ValueError(f"max_sleep_s: must be at least sleep_s ({self.sleep_s}) (got {self.max_sleep_s})")
        return self


class FaceParams(_Section):
    """Face detection, alignment and cropping (stage ``faces``)."""

    detector: str  # a DeepFace backend whose weights are present
    detect_every: int = Field(ge=1)  # detect on every k-th frame, interpolate in between
    margin: float = Field(ge=0)
    max_gap: int = Field(ge=0)
    min_face_fraction: float = Field(ge=0, le=1)
    workers: int = Field(ge=1)
    # false: only each segment's face track is kept, and the video teacher aligns the faces from the segment's
    # video as it scores them; true: the aligned 224 x 224 crops are kept too, as H.264 clips of quality crf
    keep_crops: bool
    crf: int = Field(ge=0, le=51)  # 0 keeps the crops losslessly (RGB), exactly the frames the teacher sees
    # listed: the face boxes a corpus lists (VoxCeleb2's txt files) where it lists them, detection elsewhere
    boxes: Literal["detect", "listed"]

    @model_validator(mode="after")
    def _gap_covers_the_stride(self) -> FaceParams:
        if self.max_gap < self.detect_every - 1:
            raise ValueError(
                f"max_gap: must be at least detect_every - 1 = {self.detect_every - 1} (got {self.max_gap})"
            )
        return self


class WindowParams(_Section):
    """The teachers' unit: non-overlapping windows of video frames (stage ``windows``)."""

    frames: int = Field(gt=0)
    fps: float = Field(gt=0)
    # read by the students that distil from the video teacher, not by stage `windows`: a window in which a face
    # was detected in fewer of its frames gives no video target
    min_face_fraction: float = Field(ge=0, le=1)


class VideoTeacherParams(_Section):
    """S2D, the video teacher (section 3.2): the published checkpoint, or trained on a FERV39k-layout corpus.

    Every value is set in params.yaml (the one place of the defaults); the training settings matter with
    ``source: train`` only."""

    source: Literal["train", "published"]  # published: the files stage `video_weights` fetched
    corpus: Path | None  # FERV39k layout: train/<class>/<clip>/frames, test/...; scored when present
    size: Literal["small", "full"]
    epochs: int = Field(gt=0)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)  # AdamW's
    warmup_epochs: float = Field(ge=0)  # linear warm-up of the learning rate, then a cosine down to 0
    max_grad_norm: float | None = Field(gt=0)  # gradients clipped to this norm; None: not clipped
    batch_size: int = Field(gt=0)
    validation_fraction: float = Field(gt=0, lt=1)  # of each class's training clips, held out to pick the epoch
    preload: bool  # every training clip resized and its landmark maps computed once, in memory
    eval_batch_size: int = Field(gt=0)
    seed: int
    threads: int = Field(ge=1)

    @model_validator(mode="after")
    def _weights_or_a_corpus(self) -> VideoTeacherParams:
        if self.source == "train" and self.corpus is None:
            raise ValueError("corpus: a trained teacher (source: train) needs a FERV39k-layout corpus")
        if self.source == "published" and self.size != "full":
            raise ValueError(f"size: the published checkpoint is the full-size S2D (got {self.size!r})")
        return self


_SHA256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
_GIT_BLOB = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{40}$")]  # SHA-1 of "blob <size>\0" and the bytes
_URL = Annotated[str, Field(pattern=r"^https?://")]


class HubFileParams(_Section):
    """A file of a Hugging Face model repository at a revision (a commit hash pins it)."""

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    revision: str = Field(min_length=1)
    file: str | None  # None: the repository's one FERV39k checkpoint, found by listing it
    sha256: _SHA256 | None  # None: recorded and logged on first fetch, for you to pin


class UrlFileParams(_Section):
    """A file at a URL (a commit URL pins it), tried at ``fallback_url`` when ``url`` fails, and checked against
    its SHA-256 and its git blob id, whichever are given."""

    url: _URL
    fallback_url: _URL | None
    sha256: _SHA256 | None
    git_blob: _GIT_BLOB | None


class VideoWeightsParams(_Section):
    """S2D's published files (stage ``video_weights``), fetched when ``video_teacher.source`` is ``published``."""

    s2d: HubFileParams
    mobilefacenet: UrlFileParams


class SpeechBaseParams(_Section):
    """The speech teacher's start point (stage ``speech_base``): a hub repository at a revision or a folder, or
    (``pretrain``, the demo) a small HuBERT pretrained on a pool of unlabeled speech of its own speakers; the
    settings after ``revision`` are that pretraining's."""

    source: str = Field(min_length=1)  # pretrain | owner/name | a folder
    revision: str | None  # of a hub repository; None: main. A commit hash pins it

    pool_utterances: int = Field(gt=0)
    pool_speakers: int = Field(gt=0)
    clusters: int = Field(gt=1)
    epochs: int = Field(gt=0)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    warmup_fraction: float = Field(gt=0, le=1)  # of the steps, a linear warm-up before the cosine decay
    max_grad_norm: float = Field(gt=0)
    batch_size: int = Field(gt=0)
    crop_seconds: float = Field(gt=0)
    mask_prob: float = Field(gt=0, lt=1)  # share of the frames masked, in spans of mask_length frames
    mask_length: int = Field(gt=0)
    prosody_weight: float = Field(ge=0)  # frame energy, log F0 and voicing regressed beside the masked units
    utterance_weight: float = Field(ge=0)  # utterance statistics of the targets regressed from the mean frame
    bins_weight: float = Field(ge=0)  # energy and pitch classified into prosody_bins quantile bins
    prosody_bins: int = Field(gt=1)
    check_utterances: int = Field(gt=0)  # fixed crops and masks whose losses are reported before and after
    dropout: float = Field(ge=0, lt=1)  # every dropout of the saved model, which the teachers then use
    seed: int
    threads: int = Field(ge=1)


class SpeechTeacherParams(_Section):
    """HuBERT + LoRA, the speech teacher (section 3.2), one per corpus and fold."""

    lora_rank: int = Field(gt=0)
    lora_alpha: float = Field(gt=0)
    lora_dropout: float = Field(ge=0, lt=1)
    # non_test: the fold's non-test speakers, training_fraction of them train, the rest pick the epoch (the paper's
    # "80 % ... the remaining 20 %"); train_only: the student's training speakers train, its validation speakers pick
    split: Literal["non_test", "train_only"]
    training_fraction: float = Field(gt=0, lt=1)  # with split non_test
    # zero mean and unit variance per utterance (crop, window) before the encoder: true, false, or checkpoint (what
    # the base's preprocessor_config.json says; false without one)
    normalize: bool | Literal["checkpoint"]
    epochs: int = Field(gt=0)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)  # AdamW's
    batch_size: int = Field(gt=0)
    max_seconds: float = Field(gt=0)  # random crops of at most this long while training
    eval_batch_size: int = Field(gt=0)
    seed: int
    threads: int = Field(ge=1)


class CvParams(_Section):
    """Speaker-independent cross-validation."""

    folds: list[int]
    seed: int

    @model_validator(mode="after")
    def _folds_are_a_range(self) -> CvParams:
        if len(self.folds) < 2 or self.folds != list(range(len(self.folds))):
            raise ValueError(
                f"folds: must list the folds 0, 1, ..., k-1 with k >= 2, e.g. [0, 1, 2, 3, 4] (got {self.folds})"
            )
        return self

    @property
    def n_folds(self) -> int:
        return len(self.folds)


class FeatureParams(_Section):
    """Log-Mel front end shared by every corpus (labeled and unlabeled)."""

    sample_rate: int = Field(gt=0)
    n_mels: int = Field(gt=0)
    window_s: float = Field(gt=0)
    hop_s: float = Field(gt=0)
    crop_s: float = Field(gt=0)
    log_floor: float = Field(gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> FeatureParams:
        if self.window_s > self.crop_s:
            raise ValueError(f"window_s: must not be longer than crop_s = {self.crop_s} s (got {self.window_s})")
        if self.hop_s > self.window_s:
            raise ValueError(f"hop_s: must not be longer than window_s = {self.window_s} s (got {self.hop_s})")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels: must be at most n_fft/2 + 1 = {self.n_fft // 2 + 1} (got {self.n_mels})")
        return self

    @property
    def n_fft(self) -> int:
        return round(self.window_s * self.sample_rate)

    @property
    def hop_length(self) -> int:
        return round(self.hop_s * self.sample_rate)

    @property
    def crop_frames(self) -> int:
        """Frames in one ``crop_s`` crop (centred STFT): 94 for 3 s at a 32 ms hop."""
        return round(self.crop_s * self.sample_rate) // self.hop_length + 1


class StudentParams(_Section):
    """The CNN-LSTM student of Table 1."""

    conv_channels: int = Field(gt=0)
    lstm_hidden: int = Field(gt=0)
    distill_hidden: int = Field(gt=0)
    video_classes: int = Field(gt=0)


class TrainParams(_Section):
    """Student optimisation (section 3.6)."""

    optimizer: Literal["adamw"]
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(gt=0)
    epochs: int = Field(gt=0)
    # every fold's students are trained once per seed; a fold's score is the mean over its seeds
    seeds: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    # matched: a configuration that does not distil trains as many candidates (seeds), chosen on validation as a
    # lambda is, as the distilled configuration with the most lambda candidates; none: one candidate
    selection_budget: Literal["matched", "none"]
    threads: int = Field(ge=1)  # torch threads of each training process
    population: int | Literal["auto"]  # students trained as one batched model; auto: all on a GPU, 1 on a CPU
    device: str  # auto: CUDA when present, else the CPU; or cpu, cuda, cuda:1, ...
    precision: Literal["auto", "float32", "bfloat16"]  # the training forward pass; weights stay float32
    # pooled: labeled and unlabeled items shuffled together, an epoch is one pass over both; fixed: every batch holds
    # labeled_per_batch labeled items and the rest unlabeled, an epoch is one pass over the labeled items
    batch_composition: Literal["pooled", "fixed"]
    labeled_per_batch: int = Field(gt=0)  # with fixed

    @model_validator(mode="after")
    def _known_device(self) -> TrainParams:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: each seed at most once (got {self.seeds})")
        if isinstance(self.population, int) and self.population < 1:
            raise ValueError(f"population: must be auto or at least 1 (got {self.population})")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"device: must be auto, cpu, cuda or cuda:<index> (got {self.device!r})")
        if self.batch_composition == "fixed" and self.labeled_per_batch >= self.batch_size:
            raise ValueError(
                f"labeled_per_batch: must be below batch_size = {self.batch_size}, leaving room for unlabeled items "
                f"(got {self.labeled_per_batch})"
            )
        return self


class EvaluateParams(_Section):
    """Whole-utterance evaluation with a sliding 3 s window (section 3.3)."""

    stride_s: float = Field(gt=0)  # test utterances, and `liser predict`
    validation_stride_s: float = Field(gt=0)  # validation utterances, once per epoch, to pick the epoch
    eval_batch_size: int = Field(gt=0)


class LossParams(_Section):
    """Distillation weights of eq. (4)/(5); ``lambda_grid`` is the paper's search space."""

    lambda_sd: Annotated[float, Field(ge=0, allow_inf_nan=False)] | Literal["auto"]  # auto: chosen on validation
    lambda_vd: Annotated[float, Field(ge=0, allow_inf_nan=False)] | Literal["auto"]
    lambda_grid: list[float] = Field(min_length=1)
    class_reduction: Literal["mean", "sum"]  # the MAE of one item over its classes

    @model_validator(mode="after")
    def _grid_non_negative(self) -> LossParams:
        if any(value < 0 for value in self.lambda_grid):
            raise ValueError(f"lambda_grid: every value must be >= 0 (got {self.lambda_grid})")
        return self


class LabelEfficiencyParams(_Section):
    """Figure 2: students trained on part of each fold's labeled training utterances."""

    percents: list[int]
    seed: int
    # share: each share's speech teachers are fine-tuned on the labeled utterances its students see; all: the
    # teachers of the full run (trained on every labeled training utterance) are reused
    teacher: Literal["share", "all"]

    @model_validator(mode="after")
    def _percents(self) -> LabelEfficiencyParams:
        if any(not 0 < p < 100 for p in self.percents) or len(set(self.percents)) != len(self.percents):
            raise ValueError(f"percents: distinct whole percentages between 1 and 99 (got {self.percents})")
        return self


class ProtocolParams(_Section):
    """How the paper's protocol is read where its words allow two readings (docs/paper-map.md, *Fair comparisons*).

    ``strict``: the choices that keep the teachers and the selection away from what the student is scored on;
    ``literal``: the paper's sentences taken word for word.  Values written ``{strict: ..., literal: ...}`` in
    params.yaml take this reading's."""

    reading: Literal["strict", "literal"]


class Params(_Section):
    profile: Literal["demo", "paper"]
    protocol: ProtocolParams
    demo: DemoParams
    corpora: CorporaParams
    runtime: RuntimeParams
    unlabeled: UnlabeledParams
    mspface: MspFaceParams
    faces: FaceParams
    windows: WindowParams
    video_teacher: VideoTeacherParams
    video_weights: VideoWeightsParams
    speech_base: SpeechBaseParams
    speech_teacher: SpeechTeacherParams
    cv: CvParams
    features: FeatureParams
    student: StudentParams
    train: TrainParams
    evaluate: EvaluateParams
    loss: LossParams
    label_efficiency: LabelEfficiencyParams


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _name_sections(section: _Section, key: str = "") -> None:
    section._key = key
    children = {name: getattr(section, name) for name in type(section).model_fields}
    if isinstance(section, CorporaParams):
        children.update(section.sections())
    for name, child in children.items():
        if isinstance(child, _Section):
            _name_sections(child, _join(key, name))


@contextlib.contextmanager
def recorded_reads() -> Iterator[set[str]]:
    """Record the keys read from any section while the block runs (``train.lr``, ``corpora.ravdess.emotions``);
    a section handed on whole is not a read until one of its values is."""
    reads: set[str] = set()
    token = _READS.set(reads)
    try:
        yield reads
    finally:
        _READS.reset(token)


def sections_in(value: Any) -> set[str]:
    """Keys of the sections inside ``value`` (a section, or dataclasses, tuples, lists and dicts holding them):
    what a stage hands on whole to code that may read any of their values."""
    if isinstance(value, _Section):
        return {value._key}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, field.name) for field in dataclasses.fields(value)]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return {key for item in value for key in sections_in(item)}
    return set()


_SWITCH_NAMES = {PROFILES: "profile", READINGS: "reading"}


def resolve_switches(raw: Any, chosen: dict[tuple[str, ...], str], key: str = "", source: str = "params.yaml") -> Any:
    """Replace every mapping in ``raw`` whose keys are the options of one switch of ``chosen`` (``("demo",
    "paper")`` -> the profile, ``("strict", "literal")`` -> the reading) by the chosen option's value, at any depth
    and nested either way round."""
    if isinstance(raw, dict):
        for options, option in chosen.items():
            if raw and set(raw) <= set(options):
                missing = set(options) - set(raw)
                if missing:
                    raise ParamsError(
                        f"{source}: {key}: a per-{_SWITCH_NAMES[options]} value needs both "
                        f"{' and '.join(options)} (missing {', '.join(sorted(missing))})"
                    )
                return resolve_switches(raw[option], chosen, key, source)
        if raw and set(raw) <= {o for options in chosen for o in options}:
            raise ParamsError(
                f"{source}: {key}: mixes the options of {' and '.join(_SWITCH_NAMES[o] for o in chosen)} in one "
                f"mapping ({', '.join(raw)}); nest one inside the other, e.g. {{strict: {{demo: .., paper: ..}}, "
                "literal: ..}"
            )
        return {k: resolve_switches(v, chosen, f"{key}.{k}" if key else str(k), source) for k, v in raw.items()}
    if isinstance(raw, list):
        return [resolve_switches(v, chosen, f"{key}[{i}]", source) for i, v in enumerate(raw)]
    return raw


def resolve_profile(raw: Any, profile: str, key: str = "", source: str = "params.yaml") -> Any:
    """Replace every ``{demo: x, paper: y}`` mapping in ``raw`` by the value for ``profile``."""
    return resolve_switches(raw, {PROFILES: profile}, key, source)


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    if error["type"] == "value_error":
        # raised by a section's own check, whose message starts with the field's name
        return f"{key}.{message}" if key else message
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling against params.yaml's documented keys)"
    if error["type"] == "missing":
        return f"{key}: missing"
    return f"{key}: {message[0].lower()}{message[1:]} (got {got!r})"


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate an already-loaded parameter mapping."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    profile = raw.get("profile")
    if profile not in PROFILES:
        raise ParamsError(f"{source}: profile: must be one of {', '.join(PROFILES)} (got {profile!r})")
    protocol = resolve_profile(raw.get("protocol") or {}, profile, "protocol", source)
    reading = protocol.get("reading", "strict") if isinstance(protocol, dict) else None
    if reading not in READINGS:
        raise ParamsError(f"{source}: protocol.reading: must be one of {', '.join(READINGS)} (got {reading!r})")
    resolved = resolve_switches(raw, {PROFILES: profile, READINGS: reading}, source=source)
    try:
        params = Params.model_validate(resolved)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(error)}" for error in exc.errors()]
        raise ParamsError("\n".join(lines)) from None
    _name_sections(params)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the project root, where params.yaml lives)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, str(path))
