"""The demo's stand-in for hubert-base-ls960: a small HuBERT pretrained on unlabeled speech.

The paper's speech teacher starts from HuBERT base, pretrained by masked prediction on 960 h
of LibriSpeech that share no speaker with the emotion corpora.  The embedded demo cannot
download it, and a randomly initialised HuBERT whose feature encoder and feed-forward blocks
stay frozen under LoRA learns next to nothing.  :func:`pretrain_speech_base` therefore
pretrains the demo's small HuBERT the way HuBERT's first iteration does, on unlabeled audio
only, and saves it with ``save_pretrained`` so the teacher loads it through the very code
path that reads real weights (``build_speech_teacher(source=<directory>)``).

Pretraining, step by step:

1. Frame targets at HuBERT's frame rate (25 ms windows every 20 ms, the receptive field and
   stride of its convolutional front end, so frame *t* of the targets is frame *t* of the
   model): 13 MFCCs with deltas and delta-deltas, standardised over the pool; and, as
   prosodic targets, log energy, log F0 (YIN) and a voicing strength (the normalised
   autocorrelation at the YIN period).
2. k-means (MiniBatchKMeans, ``clusters`` centroids) on the MFCC frames: each frame's
   cluster id is its pseudo-label, as in HuBERT's first iteration.
3. Masked prediction: random crops; spans of the projected CNN features are replaced by the
   model's ``masked_spec_embed`` (``mask_prob`` of the frames in spans of ``mask_length``);
   a linear head on the last layer predicts the cluster id, with cross-entropy on the masked
   frames only (HuBERT's alpha = 0).  HuBERT itself scores cosine similarities between a
   projection and learned cluster embeddings; with one codebook a linear softmax head is the
   same family of model and simpler.  With ``prosody_weight`` > 0 a second linear head also
   regresses the standardised log energy and log F0 and the voicing strength of every
   frame (masked or not; F0 only on voiced frames), weighted by ``prosody_weight``.  Both
   heads are thrown away; only the HuBERT weights are saved.

No label of any emotion corpus is used.  :func:`write_pretraining_pool` synthesises the
unlabeled speech for the demo: espeak-ng speakers of its own (drawn from their own seeds,
so they are none of the labeled corpora's or MSP-Face's speakers) reading sentences of
its own, each with prosody drawn at random from the voice generator's range, nothing recorded
about it but speaker and gender.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import torch
from sklearn.cluster import MiniBatchKMeans
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm
from transformers import HubertConfig, HubertModel
from transformers.models.hubert.modeling_hubert import _compute_mask_indices

from liser.features import load_audio
from liser.files import atomic_directory, write_json, write_parquet
from liser.params import SpeechBaseParams
from liser.teachers.speech import DEMO_CONFIG, SAMPLE_RATE

__all__ = [
    "POOL_SENTENCES",
    "PRETRAINING_FILE",
    "FRAME_HOP",
    "FRAME_LENGTH",
    "write_pretraining_pool",
    "frame_targets",
    "pretrain_speech_base",
    "pretrain_demo_base",
]

log = logging.getLogger(__name__)

FRAME_LENGTH = 400  # 25 ms at 16 kHz: the receptive field of HuBERT's convolutional front end
FRAME_HOP = 320  # 20 ms: its stride
PRETRAINING_FILE = "pretraining.json"  # what the pretraining did, beside the weights
_F0_RANGE = (60.0, 500.0)
_YIN_LENGTH = 800  # YIN needs two periods of the lowest pitch

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


def write_pretraining_pool(
    out_dir: str | Path,
    n_utterances: int = 600,
    *,
    n_speakers: int = 60,
    seed: int = 0,
    sample_rate: int = SAMPLE_RATE,
) -> pd.DataFrame:
    """Synthesise unlabeled speech to pretrain the demo's HuBERT on; returns its manifest.

    Writes ``out_dir/wav/pool_NNNNN.wav`` (16-bit, ``sample_rate``) and ``out_dir/manifest.parquet``
    (utterance, path, speaker, gender, duration), replacing ``out_dir`` whole.  Speakers are
    espeak-ng voices drawn from their own seeds, half of each gender; every utterance is one
    of :data:`POOL_SENTENCES`, spoken with prosody drawn at random over the voice generator's
    range (which emotion's cue it is drawn around is not kept).  Depends only on the arguments.
    """
    from liser.demo.voice import EMOTIONS, random_speaker, speak  # the demo's generator, only here

    if n_utterances < 1 or n_speakers < 1:
        raise ValueError("the pool needs at least one utterance and one speaker")
    out_dir = Path(out_dir)
    speakers = [
        (f"pool_{k:03d}", gender, random_speaker(_rng(seed, "pool-voice", k), gender))
        for k, gender in enumerate("female" if k % 2 else "male" for k in range(n_speakers))
    ]
    rows = []
    with atomic_directory(out_dir) as staging:
        (staging / "wav").mkdir()
        for index in tqdm(range(n_utterances), desc="pretraining pool", unit="utterance"):
            rng = _rng(seed, "pool-utterance", index)
            name, gender, speaker = speakers[index % n_speakers]
            text = str(rng.choice(POOL_SENTENCES))
            prosody = str(rng.choice(EMOTIONS))
            waveform = speak(text, prosody, speaker, rng, sample_rate, intensity=float(rng.uniform(0.3, 1.3)))
            utterance = f"pool_{index:05d}"
            sf.write(str(staging / "wav" / f"{utterance}.wav"), waveform, sample_rate, subtype="PCM_16")
            rows.append(
                {
                    "utterance": utterance,
                    "path": str(out_dir / "wav" / f"{utterance}.wav"),
                    "speaker": name,
                    "gender": gender,
                    "duration": len(waveform) / sample_rate,
                }
            )
        manifest = pd.DataFrame(rows)
        write_parquet(staging / "manifest.parquet", manifest)
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


# --- pretraining ------------------------------------------------------------------------------


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


class _Heads(nn.Module):
    """Linear heads on the last hidden layer, discarded after pretraining: cluster logits and
    prosody per frame, utterance functionals from the mean over frames."""

    def __init__(self, hidden: int, clusters: int, bins: int):
        super().__init__()
        self.clusters = nn.Linear(hidden, clusters)
        self.prosody = nn.Linear(hidden, 3)
        self.energy_bins = nn.Linear(hidden, max(1, bins))
        self.pitch_bins = nn.Linear(hidden, max(1, bins) + 1)
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
    on voiced ones); utterance functionals' error."""
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
    items: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    rows: Sequence[int],
    crop_frames: int,
    mask_prob: float,
    mask_length: int,
    functional_scale: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> tuple[torch.Tensor, ...]:
    """Same-length random crops (the shortest utterance's length at most ``crop_frames``): no padding."""
    frames = min(crop_frames, *(len(items[i][1]) for i in rows))
    waves, units, prosody, functionals, bins = [], [], [], [], []
    for i in rows:
        waveform, unit, prosodic, mfcc, binned = items[i]
        start = int(rng.integers(0, len(unit) - frames + 1))
        waves.append(waveform[start * FRAME_HOP : start * FRAME_HOP + FRAME_LENGTH + (frames - 1) * FRAME_HOP])
        units.append(unit[start : start + frames])
        prosody.append(prosodic[start : start + frames])
        functionals.append(_functionals(mfcc[start : start + frames], prosody[-1]))
        bins.append(binned[start : start + frames])
    length = min(mask_length, max(1, frames // 2))
    mask = _compute_mask_indices((len(rows), frames), mask_prob=mask_prob, mask_length=length, min_masks=1)
    centre, scale = functional_scale
    return (
        torch.from_numpy(np.stack(waves)),
        torch.from_numpy(mask),
        torch.from_numpy(np.stack(units)),
        torch.from_numpy(np.stack(prosody)),
        torch.from_numpy((np.stack(functionals) - centre) / scale),
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


def pretrain_speech_base(
    audio_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    config: dict | None = None,
    clusters: int = 100,
    epochs: int = 8,
    lr: float = 2e-3,
    batch_size: int = 8,
    crop_seconds: float = 2.0,
    mask_prob: float = 0.5,
    mask_length: int = 5,
    prosody_weight: float = 1.0,
    utterance_weight: float = 1.0,
    bins_weight: float = 0.0,
    prosody_bins: int = 16,
    weight_decay: float = 0.01,
    warmup_fraction: float = 0.1,
    check_utterances: int = 32,
    seed: int = 0,
    threads: int | None = 2,
) -> dict:
    """Pretrain the demo's small HuBERT on unlabeled audio by masked prediction of k-means units
    (and frame prosody, and utterance functionals) and save it with ``save_pretrained`` in
    ``out_dir``; returns the figures.

    ``config`` updates :data:`~liser.teachers.speech.DEMO_CONFIG`.  The model trains in full
    (front end included) with AdamW, linear warm-up then cosine decay, for ``epochs`` passes of
    one random crop of at most ``crop_seconds`` per utterance.  The losses of ``check_utterances``
    utterances (fixed crops and masks; they also train) are measured before and after.
    ``out_dir`` is replaced whole, atomically; it also holds ``pretraining.json``.
    """
    started = time.perf_counter()
    if threads is not None:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    hubert_config = HubertConfig(**{**DEMO_CONFIG, **(config or {})})
    weights = {"masked": 1.0, "prosody": prosody_weight, "utterance": utterance_weight, "bins": bins_weight}

    waveforms = [load_audio(path, SAMPLE_RATE) for path in tqdm(audio_paths, desc="pretraining audio", unit="file")]
    waveforms = [w for w in waveforms if n_frames(len(w)) >= 2]
    if not waveforms:
        raise ValueError("no utterance is long enough to pretrain on")
    targets = [frame_targets(w) for w in tqdm(waveforms, desc="frame targets", unit="file")]
    mfcc = np.concatenate([m for m, _ in targets])
    mean, std = mfcc.mean(axis=0), mfcc.std(axis=0) + 1e-6
    clusters = min(clusters, len(mfcc))
    kmeans = MiniBatchKMeans(n_clusters=clusters, batch_size=4096, n_init=3, random_state=seed)
    kmeans.fit((mfcc - mean) / std)
    prosody = np.concatenate([p for _, p in targets])
    voiced = prosody[:, 2] > 0.5
    centre = np.array([prosody[:, 0].mean(), prosody[voiced, 1].mean() if voiced.any() else 0.0, 0.0])
    scale = np.array([prosody[:, 0].std() + 1e-6, prosody[voiced, 1].std() + 1e-6 if voiced.any() else 1.0, 1.0])
    quantiles = np.linspace(0, 1, prosody_bins + 1)[1:-1]
    energy_edges = np.quantile(prosody[:, 0], quantiles)
    pitch_edges = np.quantile(prosody[voiced, 1], quantiles) if voiced.any() else np.zeros(prosody_bins - 1)

    def binned(p: np.ndarray) -> np.ndarray:
        pitch = np.where(p[:, 2] > 0.5, np.searchsorted(pitch_edges, p[:, 1]), prosody_bins)
        return np.stack([np.searchsorted(energy_edges, p[:, 0]), pitch], axis=1).astype(np.int64)

    items = [
        (
            w,
            kmeans.predict((m - mean) / std).astype(np.int64),
            ((p - centre) / scale).astype(np.float32),
            ((m - mean) / std).astype(np.float32),
            binned(p),
        )
        for w, (m, p) in zip(waveforms, targets)
    ]
    crops = []  # the functionals' spread over crops like the training ones
    for _, units, prosodic, coefficients, _ in items:
        frames = min(len(units), n_frames(round(crop_seconds * SAMPLE_RATE)))
        start = int(rng.integers(0, len(units) - frames + 1))
        crops.append(_functionals(coefficients[start : start + frames], prosodic[start : start + frames]))
    functional_scale = (np.mean(crops, axis=0), np.std(crops, axis=0) + 1e-3)
    used = np.bincount(np.concatenate([item[1] for item in items]), minlength=clusters)
    seconds = sum(len(w) for w in waveforms) / SAMPLE_RATE
    targets_s = time.perf_counter() - started
    log.info(
        "pretraining targets: %d utterances, %.1f s of audio, %d frames, %d clusters (%d used), %.1f s",
        len(items),
        seconds,
        len(mfcc),
        clusters,
        int((used > 0).sum()),
        targets_s,
    )

    model = HubertModel(hubert_config)
    heads = _Heads(hubert_config.hidden_size, clusters, prosody_bins)
    model.train()
    crop_frames = n_frames(round(crop_seconds * SAMPLE_RATE))

    def batch(rows: Sequence[int], generator: np.random.Generator) -> tuple[torch.Tensor, ...]:
        return _batch(items, rows, crop_frames, mask_prob, mask_length, functional_scale, generator)

    check_rng = np.random.default_rng([seed, 1])
    check_rows = check_rng.permutation(len(items))[:check_utterances]
    check = [batch(check_rows[i : i + batch_size], check_rng) for i in range(0, len(check_rows), batch_size)]
    before = _held_out_losses(model, heads, check)

    parameters = [*model.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    total = max(1, epochs * math.ceil(len(items) / batch_size))
    warmup = max(1, round(warmup_fraction * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    )
    history = []
    progress = tqdm(total=total, desc="pretraining HuBERT", unit="step")
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(items))
        sums = dict.fromkeys(weights, 0.0)
        steps = 0
        for start in range(0, len(order), batch_size):
            losses = _losses(model, heads, *batch(order[start : start + batch_size], rng))
            loss = sum(weights[name] * value for name, value in losses.items() if weights[name] > 0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 5.0)
            optimizer.step()
            schedule.step()
            for name, value in losses.items():
                sums[name] += value.item()
            steps += 1
            progress.update()
            progress.set_postfix(epoch=epoch, **{name: f"{value.item():.3f}" for name, value in losses.items()})
        history.append({"epoch": epoch, **{f"{name}_loss": total_ / steps for name, total_ in sums.items()}})
        log.info(
            "pretraining epoch %d: %s", epoch, ", ".join(f"{k} {v:.4f}" for k, v in history[-1].items() if k != "epoch")
        )
    progress.close()
    after = _held_out_losses(model, heads, check)
    figures = {
        "utterances": len(items),
        "audio_seconds": round(seconds, 1),
        "frames": int(len(mfcc)),
        "clusters": clusters,
        "clusters_used": int((used > 0).sum()),
        "epochs": epochs,
        "steps": total,
        "parameters": sum(p.numel() for p in model.parameters()),
        **{f"{name}_loss_before": value for name, value in before.items()},
        **{f"{name}_loss_after": value for name, value in after.items()},
        "chance_masked_loss": math.log(clusters),
        "history": history,
        "settings": {
            "lr": lr,
            "batch_size": batch_size,
            "crop_seconds": crop_seconds,
            "mask_prob": mask_prob,
            "mask_length": mask_length,
            "prosody_weight": prosody_weight,
            "utterance_weight": utterance_weight,
            "bins_weight": bins_weight,
            "prosody_bins": prosody_bins,
            "seed": seed,
        },
        "targets_seconds": round(targets_s, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _save(model.eval(), out_dir, figures)
    log.info(
        "pretrained HuBERT (%d parameters) in %.1f s: held-out masked loss %.3f -> %.3f (chance %.3f); saved in %s",
        figures["parameters"],
        figures["seconds"],
        before["masked"],
        after["masked"],
        math.log(clusters),
        out_dir,
    )
    return figures


def _save(model: HubertModel, out_dir: Path, figures: dict) -> None:
    """``save_pretrained`` (safetensors) and ``pretraining.json`` into a temporary folder, renamed onto ``out_dir``."""
    with atomic_directory(out_dir) as staging:
        model.save_pretrained(str(staging), safe_serialization=True)
        write_json(staging / PRETRAINING_FILE, figures)


_DROPOUTS = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "final_dropout")


def pretrain_demo_base(params: SpeechBaseParams, pool: str | Path, out: str | Path) -> dict:
    """The demo's speech base as stage ``speech_base`` makes it: the pool written to ``pool``, the model pretrained
    on it into ``out``; returns the figures (without the per-epoch history)."""
    table = write_pretraining_pool(pool, params.pool_utterances, n_speakers=params.pool_speakers, seed=params.seed)
    figures = pretrain_speech_base(
        list(table["path"]),
        out,
        config={name: params.dropout for name in _DROPOUTS},
        clusters=params.clusters,
        epochs=params.epochs,
        lr=params.lr,
        batch_size=params.batch_size,
        crop_seconds=params.crop_seconds,
        seed=params.seed,
        threads=params.threads,
    )
    return {key: value for key, value in figures.items() if key != "history"}
