"""The demo's stand-in for hubert-base-ls960: a small HuBERT pretrained on unlabeled speech (stage
``speech_base`` with ``speech_base.source: pretrain``).

The paper's speech teacher starts from HuBERT base, pretrained by masked prediction on 960 h
of LibriSpeech that share no speaker with the emotion corpora.  The embedded demo cannot
download it, and a randomly initialised HuBERT whose feature encoder and feed-forward blocks
stay frozen under LoRA learns next to nothing.  :func:`pretrain_speech_base` therefore
pretrains the demo's small HuBERT (:data:`SMALL_HUBERT`) the way HuBERT's first iteration does,
on unlabeled audio only, and saves it with ``save_pretrained`` and the record every base carries
(:func:`liser.teachers.speech_base.record_speech_base`) in ``data/speech_base``, where the speech
teacher reads it as it reads any other base: by path.

Pretraining, step by step (each a function below; the settings are ``speech_base.*``):

1. :func:`write_pretraining_pool`: the unlabeled speech.  espeak-ng speakers of its own (drawn
   from their own seeds, so they are none of the labeled corpora's or MSP-Face's speakers) reading
   sentences of its own, each with prosody drawn at random from the voice generator's range,
   nothing recorded about it but speaker and gender.
2. :func:`frame_targets`: at HuBERT's frame rate (25 ms windows every 20 ms, the receptive field
   and stride of its convolutional front end, so frame *t* of the targets is frame *t* of the
   model): 13 MFCCs with deltas and delta-deltas; and, as prosodic targets, log energy, log F0
   (YIN) and a voicing strength (the normalised autocorrelation at the YIN period).
3. :func:`pretraining_targets`: the MFCCs standardised over the pool and clustered by k-means
   (MiniBatchKMeans, ``clusters`` centroids): each frame's cluster id is its pseudo-label, as in
   HuBERT's first iteration; the prosody standardised and binned into quantiles.
4. :func:`pretrain_speech_base`: masked prediction.  Random crops; spans of the projected CNN
   features are replaced by the model's ``masked_spec_embed`` (``mask_prob`` of the frames in
   spans of ``mask_length``, drawn by :func:`span_mask` from the run's own generator); a linear
   head on the last layer predicts the cluster id, with cross-entropy on the masked frames only
   (HuBERT's alpha = 0).  HuBERT itself scores cosine similarities between a projection and
   learned cluster embeddings; with one codebook a linear softmax head is the same family of
   model and simpler.  Beside it, weighted by ``prosody_weight``, ``utterance_weight`` and
   ``bins_weight``: the standardised log energy, log F0 and voicing of every frame (masked or not;
   F0 only on voiced frames), utterance statistics of the targets, and quantile bins of energy and
   pitch.  The heads are thrown away; only the HuBERT weights are saved.

No label of any emotion corpus is used.  The stage writes the same bytes on every run on a CPU with
the same ``speech_base.threads``: every draw comes from generators of ``speech_base.seed`` (none
from NumPy's global one), k-means runs on that many threads, and ``pretraining.json`` holds no
timing (the log does).
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import torch
from sklearn.cluster import MiniBatchKMeans
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm
from transformers import HubertConfig, HubertModel

from liser.demo.voice import EMOTIONS, random_speaker, speak
from liser.features import load_audio
from liser.files import atomic_directory, write_json, write_parquet
from liser.params import SpeechBaseParams
from liser.teachers.speech_base import record_speech_base
from liser.teachers.speech_input import SAMPLE_RATE

__all__ = [
    "SMALL_HUBERT",
    "POOL_SENTENCES",
    "PRETRAINING_FILE",
    "FRAME_HOP",
    "FRAME_LENGTH",
    "write_pretraining_pool",
    "n_frames",
    "frame_targets",
    "pretraining_targets",
    "span_mask",
    "pretrain_speech_base",
    "pretrain_demo_base",
]

log = logging.getLogger(__name__)

# The demo's HuBERT: the same conv strides as hubert-base (one frame per 20 ms) and the same kinds of layers,
# about 1/900 of the parameters, so a teacher's fold trains in seconds on a CPU.
SMALL_HUBERT: dict = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "conv_dim": (32, 32, 32, 32, 32, 32, 32),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "classifier_proj_size": 32,  # the teachers' projector
    "layerdrop": 0.0,  # with two layers, dropping one is most of the model
    "mask_time_length": 2,  # the teachers' SpecAugment spans of 40 ms fit sub-second utterances
}
_DROPOUTS = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "final_dropout")

FRAME_LENGTH = 400  # 25 ms at 16 kHz: the receptive field of HuBERT's convolutional front end
FRAME_HOP = 320  # 20 ms: its stride
PRETRAINING_FILE = "pretraining.json"  # what the pretraining did, beside the weights
POOL_MANIFEST = "manifest.parquet"
_F0_RANGE = (60.0, 500.0)
_YIN_LENGTH = 800  # YIN needs two periods of the lowest pitch
_KMEANS_BATCH, _KMEANS_INITS = 4096, 3

# None of these is spoken in the demo RAVDESS, CREMA-D or MSP-Face.
POOL_SENTENCES = (
    "A cold wind blew across the empty field",
    "The children built a castle out of sand",
    "Please bring the blue folder to my office",
    "The old bridge was closed for repairs",
    "He plays the piano every single evening",
    "We watched the sun set over the hills",
    "The coffee machine broke down this morning",
    "Turn left after the second traffic light",
    "My sister works at the local library",
    "The museum opens its doors at ten",
    "A small boat drifted slowly down the river",
    "They planted tomatoes in the back garden",
    "The bus was late because of the snow",
    "I need to buy some bread and milk",
    "The concert lasted almost three hours",
    "Her dog chased a squirrel up a tree",
    "The meeting has been moved to Thursday",
    "We finally fixed the leaking kitchen tap",
    "The new teacher speaks four languages",
    "Somebody left the garage door open",
    "The soup needs a little more salt",
    "Our flight lands just after midnight",
    "The clock on the wall stopped at noon",
    "He forgot his umbrella on the train",
    "The garden looks lovely in the spring",
    "She wrote a long letter to her grandmother",
    "The price of petrol went up again",
    "Everyone laughed at the silly joke",
    "Keep the receipt in case it breaks",
    "The hotel room had a view of the sea",
    "Yes",
    "Not now",
    "Where did you put it",
    "Come here quickly",
    "That was the best day of my life",
    "I really did not expect that",
)


# --- the unlabeled pool ----------------------------------------------------------------------


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in keys)])


def write_pretraining_pool(params: SpeechBaseParams, out_dir: str | Path) -> pd.DataFrame:
    """Synthesise the unlabeled speech to pretrain the demo's HuBERT on; returns its manifest.

    Writes ``out_dir/wav/pool_NNNNN.wav`` (16-bit, 16 kHz) and ``out_dir/manifest.parquet`` (utterance, path
    relative to ``out_dir``, speaker, gender, duration), replacing ``out_dir`` whole: ``params.pool_utterances``
    utterances of ``params.pool_speakers`` espeak-ng voices drawn from their own seeds, half of each gender; every
    utterance is one of :data:`POOL_SENTENCES`, spoken with prosody drawn at random over the voice generator's
    range (which emotion's cue it is drawn around is not kept).  Depends only on the params.
    """
    out_dir = Path(out_dir)
    seed, n_speakers = params.seed, params.pool_speakers
    speakers = [
        (f"pool_{k:03d}", gender, random_speaker(_rng(seed, "pool-voice", k), gender))
        for k, gender in enumerate("female" if k % 2 else "male" for k in range(n_speakers))
    ]
    rows = []
    with atomic_directory(out_dir) as staging:
        (staging / "wav").mkdir()
        for index in tqdm(range(params.pool_utterances), desc="pretraining pool", unit="utterance"):
            rng = _rng(seed, "pool-utterance", index)
            name, gender, speaker = speakers[index % n_speakers]
            text = str(rng.choice(POOL_SENTENCES))
            prosody = str(rng.choice(EMOTIONS))
            waveform = speak(text, prosody, speaker, rng, SAMPLE_RATE, intensity=float(rng.uniform(0.3, 1.3)))
            path = f"wav/pool_{index:05d}.wav"
            sf.write(str(staging / path), waveform, SAMPLE_RATE, subtype="PCM_16")
            rows.append(
                {
                    "utterance": f"pool_{index:05d}",
                    "path": path,
                    "speaker": name,
                    "gender": gender,
                    "duration": len(waveform) / SAMPLE_RATE,
                }
            )
        manifest = pd.DataFrame(rows)
        write_parquet(staging / POOL_MANIFEST, manifest)
    log.info(
        "pretraining pool: %d utterances, %d speakers, %.1f s in %s",
        len(manifest),
        n_speakers,
        manifest["duration"].sum(),
        out_dir,
    )
    return manifest


# --- frame targets ---------------------------------------------------------------------------


def n_frames(samples: int) -> int:
    """HuBERT's frames for ``samples`` samples (its front end: 400-sample field, 320 stride)."""
    return max(0, 1 + (samples - FRAME_LENGTH) // FRAME_HOP)


def frame_targets(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """(MFCC frames (T, 39), prosody frames (T, 3)) on HuBERT's frame grid.

    MFCC: 13 coefficients (40 Mel bands), deltas, delta-deltas.  Prosody: log energy (dB),
    log F0 (YIN, 60-500 Hz) and voicing strength (normalised autocorrelation at the YIN period,
    0..1).  ``T`` is :func:`n_frames` of the waveform; both are computed over windows centred
    where HuBERT's frames are.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"frame targets are on HuBERT's 16 kHz grid, got {sample_rate} Hz")
    waveform = np.asarray(waveform, dtype=np.float32)
    frames = n_frames(len(waveform))
    if frames < 1:
        raise ValueError(f"{len(waveform)} samples are shorter than one HuBERT frame ({FRAME_LENGTH})")
    mfcc = librosa.feature.mfcc(
        y=waveform,
        sr=SAMPLE_RATE,
        n_mfcc=13,
        n_fft=FRAME_LENGTH,
        hop_length=FRAME_HOP,
        n_mels=40,
        center=False,
    )[:, :frames]
    width = min(9, frames - (1 - frames % 2))  # delta windows must be odd and fit the utterance
    if width >= 3:
        deltas = [librosa.feature.delta(mfcc, width=width, order=k, mode="nearest") for k in (1, 2)]
    else:
        deltas = [np.zeros_like(mfcc)] * 2
    mfcc = np.concatenate([mfcc, *deltas]).T
    windows = librosa.util.frame(waveform, frame_length=FRAME_LENGTH, hop_length=FRAME_HOP)[:, :frames]
    energy = 10 * np.log10(np.mean(windows.astype(np.float64) ** 2, axis=0) + 1e-10)
    pad = (_YIN_LENGTH - FRAME_LENGTH) // 2
    padded = np.pad(waveform, pad)
    f0 = librosa.yin(
        padded,
        fmin=_F0_RANGE[0],
        fmax=_F0_RANGE[1],
        sr=SAMPLE_RATE,
        frame_length=_YIN_LENGTH,
        hop_length=FRAME_HOP,
        center=False,
    )[:frames]
    long_windows = librosa.util.frame(padded, frame_length=_YIN_LENGTH, hop_length=FRAME_HOP)[:, :frames]
    period = np.clip(np.round(SAMPLE_RATE / f0).astype(int), 1, _YIN_LENGTH // 2)
    span = _YIN_LENGTH // 2
    voicing = np.zeros(frames)
    for t in range(frames):  # correlation of the window's first half with itself one period later
        a, b = long_windows[:span, t], long_windows[period[t] : period[t] + span, t]
        voicing[t] = max(0.0, float(a @ b) / (math.sqrt(float(a @ a) * float(b @ b)) + 1e-9))
    prosody = np.stack([energy, np.log(f0), voicing], axis=1)
    return mfcc.astype(np.float32), prosody.astype(np.float32)


# --- the targets of masked prediction --------------------------------------------------------


def _functionals(mfcc: np.ndarray, prosody: np.ndarray) -> np.ndarray:
    """Utterance (or crop) statistics of standardised frame targets: the 13 MFCCs' means, all 39
    coefficients' standard deviations, energy and log-F0 mean and spread, voiced fraction."""
    voiced = prosody[:, 2] > 0.5
    f0 = prosody[voiced, 1] if voiced.sum() >= 2 else np.zeros(2, dtype=np.float32)
    return np.concatenate(
        [
            mfcc[:, :13].mean(axis=0),
            mfcc.std(axis=0),
            [prosody[:, 0].mean(), prosody[:, 0].std(), f0.mean(), f0.std(), voiced.mean()],
        ]
    ).astype(np.float32)


N_FUNCTIONALS = 13 + 39 + 5


@dataclass(frozen=True)
class Utterance:
    """One utterance of the pool with its frame targets."""

    waveform: np.ndarray
    units: np.ndarray  # (T,) k-means cluster ids of the frames
    prosody: np.ndarray  # (T, 3) log energy, log F0, voicing, standardised over the pool (voicing as is)
    mfcc: np.ndarray  # (T, 39) standardised over the pool
    bins: np.ndarray  # (T, 2) energy and pitch quantile bins (pitch: prosody_bins when unvoiced)


@dataclass(frozen=True)
class PretrainingTargets:
    utterances: list[Utterance]
    clusters: int
    clusters_used: int
    functional_centre: np.ndarray  # utterance functionals' mean and spread over crops like the training ones
    functional_scale: np.ndarray

    @property
    def frames(self) -> int:
        return sum(len(u.units) for u in self.utterances)


def _cluster_units(mfcc: list[np.ndarray], params: SpeechBaseParams) -> tuple[list[np.ndarray], int]:
    """Each frame's k-means cluster of the standardised MFCCs (``params.clusters`` at most, one per frame), and
    how many clusters there are."""
    pooled = np.concatenate(mfcc)
    clusters = min(params.clusters, len(pooled))
    kmeans = MiniBatchKMeans(
        n_clusters=clusters, batch_size=_KMEANS_BATCH, n_init=_KMEANS_INITS, random_state=params.seed
    )
    kmeans.fit(pooled)
    return [kmeans.predict(m).astype(np.int64) for m in mfcc], clusters


def _prosody_targets(prosody: list[np.ndarray], bins: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Log energy and log F0 standardised over the pool (F0 over voiced frames), and their quantile bins."""
    pooled = np.concatenate(prosody)
    voiced = pooled[:, 2] > 0.5
    centre = np.array([pooled[:, 0].mean(), pooled[voiced, 1].mean() if voiced.any() else 0.0, 0.0])
    scale = np.array([pooled[:, 0].std() + 1e-6, pooled[voiced, 1].std() + 1e-6 if voiced.any() else 1.0, 1.0])
    quantiles = np.linspace(0, 1, bins + 1)[1:-1]
    energy_edges = np.quantile(pooled[:, 0], quantiles)
    pitch_edges = np.quantile(pooled[voiced, 1], quantiles) if voiced.any() else np.zeros(bins - 1)

    def binned(p: np.ndarray) -> np.ndarray:
        pitch = np.where(p[:, 2] > 0.5, np.searchsorted(pitch_edges, p[:, 1]), bins)
        return np.stack([np.searchsorted(energy_edges, p[:, 0]), pitch], axis=1).astype(np.int64)

    return [((p - centre) / scale).astype(np.float32) for p in prosody], [binned(p) for p in prosody]


def _crop_frames(params: SpeechBaseParams) -> int:
    return n_frames(round(params.crop_seconds * SAMPLE_RATE))


def pretraining_targets(
    waveforms: Sequence[np.ndarray], params: SpeechBaseParams, rng: np.random.Generator
) -> PretrainingTargets:
    """Frame targets of every utterance (:func:`frame_targets`), k-means units of their standardised MFCCs,
    standardised and binned prosody, and the spread of the utterance functionals over random crops."""
    targets = [frame_targets(w) for w in tqdm(waveforms, desc="frame targets", unit="file")]
    pooled = np.concatenate([m for m, _ in targets])
    mean, std = pooled.mean(axis=0), pooled.std(axis=0) + 1e-6
    mfcc = [((m - mean) / std).astype(np.float32) for m, _ in targets]
    units, clusters = _cluster_units(mfcc, params)
    prosody, bins = _prosody_targets([p for _, p in targets], params.prosody_bins)
    utterances = [Utterance(*fields) for fields in zip(waveforms, units, prosody, mfcc, bins)]
    crops = []
    for u in utterances:
        frames = min(len(u.units), _crop_frames(params))
        start = int(rng.integers(0, len(u.units) - frames + 1))
        crops.append(_functionals(u.mfcc[start : start + frames], u.prosody[start : start + frames]))
    used = int((np.bincount(np.concatenate(units), minlength=clusters) > 0).sum())
    return PretrainingTargets(utterances, clusters, used, np.mean(crops, axis=0), np.std(crops, axis=0) + 1e-3)


# --- masked prediction -----------------------------------------------------------------------


def span_mask(rows: int, frames: int, mask_prob: float, mask_length: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, frames) boolean mask: in each row, about ``mask_prob`` of the frames covered by spans of
    ``mask_length`` frames (at most half the row) with random starts, at least one span; spans may overlap."""
    length = min(mask_length, max(1, frames // 2))
    starts = frames - length + 1
    spans = min(starts, max(1, int(mask_prob * frames / length + rng.random())))
    mask = np.zeros((rows, frames), dtype=bool)
    for row in range(rows):
        for start in rng.choice(starts, size=spans, replace=False):
            mask[row, start : start + length] = True
    return mask


class _Heads(nn.Module):
    """Linear heads on the last hidden layer, discarded after pretraining: cluster logits and
    prosody per frame, utterance functionals from the mean over frames."""

    def __init__(self, hidden: int, clusters: int, bins: int):
        super().__init__()
        self.clusters = nn.Linear(hidden, clusters)
        self.prosody = nn.Linear(hidden, 3)
        self.energy_bins = nn.Linear(hidden, bins)
        self.pitch_bins = nn.Linear(hidden, bins + 1)
        self.utterance = nn.Linear(hidden, N_FUNCTIONALS)


def _losses(
    model: HubertModel,
    heads: _Heads,
    waveforms: torch.Tensor,
    mask: torch.Tensor,
    units: torch.Tensor,
    prosody: torch.Tensor,
    functionals: torch.Tensor,
    bins: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Cross-entropy of the masked frames' cluster ids; prosody error over every frame (log F0
    on voiced ones); utterance functionals' error; prosody bins' cross-entropy."""
    hidden = model(input_values=waveforms, mask_time_indices=mask).last_hidden_state
    masked = F.cross_entropy(heads.clusters(hidden[mask]), units[mask])
    predicted = heads.prosody(hidden)
    voiced = prosody[..., 2] > 0.5
    frame = F.mse_loss(predicted[..., 0], prosody[..., 0]) + F.mse_loss(predicted[..., 2], prosody[..., 2])
    if voiced.any():
        frame = frame + F.mse_loss(predicted[..., 1][voiced], prosody[..., 1][voiced])
    utterance = F.mse_loss(heads.utterance(hidden.mean(dim=1)), functionals)
    discrete = F.cross_entropy(heads.energy_bins(hidden).flatten(0, 1), bins[..., 0].flatten()) + F.cross_entropy(
        heads.pitch_bins(hidden).flatten(0, 1), bins[..., 1].flatten()
    )
    return {"masked": masked, "prosody": frame, "utterance": utterance, "bins": discrete}


def _batch(
    targets: PretrainingTargets, rows: Sequence[int], params: SpeechBaseParams, rng: np.random.Generator
) -> tuple[torch.Tensor, ...]:
    """Same-length random crops (the shortest utterance's length at most the crop's): no padding; and their masks."""
    utterances = [targets.utterances[i] for i in rows]
    frames = min(_crop_frames(params), *(len(u.units) for u in utterances))
    waves, units, prosody, functionals, bins = [], [], [], [], []
    for u in utterances:
        start = int(rng.integers(0, len(u.units) - frames + 1))
        waves.append(u.waveform[start * FRAME_HOP : start * FRAME_HOP + FRAME_LENGTH + (frames - 1) * FRAME_HOP])
        units.append(u.units[start : start + frames])
        prosody.append(u.prosody[start : start + frames])
        functionals.append(_functionals(u.mfcc[start : start + frames], prosody[-1]))
        bins.append(u.bins[start : start + frames])
    mask = span_mask(len(utterances), frames, params.mask_prob, params.mask_length, rng)
    scaled = (np.stack(functionals) - targets.functional_centre) / targets.functional_scale
    return (
        torch.from_numpy(np.stack(waves)),
        torch.from_numpy(mask),
        torch.from_numpy(np.stack(units)),
        torch.from_numpy(np.stack(prosody)),
        torch.from_numpy(scaled.astype(np.float32)),
        torch.from_numpy(np.stack(bins)),
    )


def _held_out_losses(model: HubertModel, heads: _Heads, batches: list[tuple[torch.Tensor, ...]]) -> dict[str, float]:
    """Mean losses over fixed crops and masks, in eval mode."""
    model.eval()
    heads.eval()
    with torch.no_grad():
        losses = [_losses(model, heads, *batch) for batch in batches]
    model.train()
    heads.train()
    return {name: float(np.mean([loss[name].item() for loss in losses])) for name in losses[0]}


def _check_batches(targets: PretrainingTargets, params: SpeechBaseParams) -> list[tuple[torch.Tensor, ...]]:
    """``params.check_utterances`` utterances (they also train) in fixed crops and masks, from their own generator."""
    rng = np.random.default_rng([params.seed, 1])
    rows = rng.permutation(len(targets.utterances))[: params.check_utterances]
    return [
        _batch(targets, rows[i : i + params.batch_size], params, rng) for i in range(0, len(rows), params.batch_size)
    ]


def _train(
    model: HubertModel, heads: _Heads, targets: PretrainingTargets, params: SpeechBaseParams, rng: np.random.Generator
) -> list[dict]:
    """``params.epochs`` passes of one random crop per utterance: AdamW, linear warm-up then cosine decay, the
    weighted sum of the losses, gradients clipped; returns each epoch's mean losses."""
    weights = {
        "masked": 1.0,
        "prosody": params.prosody_weight,
        "utterance": params.utterance_weight,
        "bins": params.bins_weight,
    }
    parameters = [*model.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=params.lr, weight_decay=params.weight_decay)
    count = len(targets.utterances)
    total = params.epochs * math.ceil(count / params.batch_size)
    warmup = max(1, round(params.warmup_fraction * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    )
    model.train()
    history = []
    progress = tqdm(total=total, desc="pretraining HuBERT", unit="step")
    for epoch in range(1, params.epochs + 1):
        order = rng.permutation(count)
        sums = dict.fromkeys(weights, 0.0)
        steps = 0
        for start in range(0, count, params.batch_size):
            losses = _losses(model, heads, *_batch(targets, order[start : start + params.batch_size], params, rng))
            loss = sum(weights[name] * value for name, value in losses.items() if weights[name] > 0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, params.max_grad_norm)
            optimizer.step()
            schedule.step()
            for name, value in losses.items():
                sums[name] += value.item()
            steps += 1
            progress.update()
            progress.set_postfix(epoch=epoch, **{name: f"{value.item():.3f}" for name, value in losses.items()})
        history.append({"epoch": epoch, **{f"{name}_loss": value / steps for name, value in sums.items()}})
        log.info("pretraining epoch %d: %s", epoch, ", ".join(f"{k} {v:.4f}" for k, v in history[-1].items()))
    progress.close()
    return history


def pretrain_speech_base(params: SpeechBaseParams, audio_paths: Sequence[str | Path], out_dir: str | Path) -> dict:
    """Pretrain :data:`SMALL_HUBERT` (every dropout ``params.dropout``) on the audio files by masked prediction of
    k-means units (and frame prosody, utterance functionals and prosody bins), and save it with ``save_pretrained``,
    ``pretraining.json`` and the base's record in ``out_dir`` (replaced whole, atomically); returns the figures.

    The model trains in full (front end included).  The losses of ``params.check_utterances`` utterances (fixed
    crops and masks) are measured before and after.
    """
    started = time.perf_counter()
    torch.set_num_threads(params.threads)
    rng = np.random.default_rng(params.seed)
    torch.manual_seed(params.seed)
    waveforms = [load_audio(path, SAMPLE_RATE) for path in tqdm(audio_paths, desc="pretraining audio", unit="file")]
    waveforms = [w for w in waveforms if n_frames(len(w)) >= 2]
    if not waveforms:
        raise ValueError("no utterance is long enough to pretrain on")
    with threadpool_limits(limits=params.threads):
        targets = pretraining_targets(waveforms, params, rng)
    seconds = sum(len(w) for w in waveforms) / SAMPLE_RATE
    log.info(
        "pretraining targets: %d utterances, %.1f s of audio, %d frames, %d clusters (%d used), %.1f s",
        len(waveforms),
        seconds,
        targets.frames,
        targets.clusters,
        targets.clusters_used,
        time.perf_counter() - started,
    )
    config = HubertConfig(**SMALL_HUBERT, **{name: params.dropout for name in _DROPOUTS})
    model = HubertModel(config)
    heads = _Heads(config.hidden_size, targets.clusters, params.prosody_bins)
    check = _check_batches(targets, params)
    before = _held_out_losses(model, heads, check)
    history = _train(model, heads, targets, params, rng)
    after = _held_out_losses(model, heads, check)
    figures = {
        "utterances": len(waveforms),
        "audio_seconds": round(seconds, 1),
        "frames": targets.frames,
        "clusters": targets.clusters,
        "clusters_used": targets.clusters_used,
        "epochs": params.epochs,
        "steps": params.epochs * math.ceil(len(waveforms) / params.batch_size),
        "parameters": sum(p.numel() for p in model.parameters()),
        **{f"{name}_loss_before": value for name, value in before.items()},
        **{f"{name}_loss_after": value for name, value in after.items()},
        "chance_masked_loss": math.log(targets.clusters),
        "history": history,
    }
    with atomic_directory(out_dir) as staging:
        model.eval().save_pretrained(str(staging), safe_serialization=True)
        write_json(staging / PRETRAINING_FILE, figures)
        record_speech_base(staging, params)
    log.info(
        "pretrained HuBERT (%d parameters) in %.1f s: held-out masked loss %.3f -> %.3f (chance %.3f); saved in %s",
        figures["parameters"],
        time.perf_counter() - started,
        before["masked"],
        after["masked"],
        figures["chance_masked_loss"],
        out_dir,
    )
    return figures


def pretrain_demo_base(params: SpeechBaseParams, pool: str | Path, out: str | Path) -> dict:
    """The demo's speech base as stage ``speech_base`` makes it: the pool written to ``pool``, the model pretrained
    on it into ``out``; returns the figures (without the per-epoch history)."""
    table = write_pretraining_pool(params, pool)
    figures = pretrain_speech_base(params, [Path(pool) / path for path in table["path"]], out)
    return {key: value for key, value in figures.items() if key != "history"}
