"""What the teacher tests share: tiny random speech encoders saved as a base folder is (``save_pretrained``, as stage
``speech_base`` leaves one), so every test reads a base by path as the pipeline does.  Their params sections come
from ``tests.helpers.section``."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, Wav2Vec2FeatureExtractor

RATE = 16000
# Two conv layers (10 ms frames), two encoder layers of two heads: a few thousand parameters.
TINY = {
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "conv_dim": (32, 32),
    "conv_kernel": (10, 3),
    "conv_stride": (5, 2),
    "num_conv_pos_embeddings": 4,
    "num_conv_pos_embedding_groups": 2,
    "classifier_proj_size": 8,
    "layerdrop": 0.0,
    "mask_time_length": 2,
}
# hubert-base's conv front end (20 ms frames) and kinds of layers at 1/900 of its size: the demo's base's shape.
SMALL = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "conv_dim": (32,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "classifier_proj_size": 32,
    "layerdrop": 0.0,
    "mask_time_length": 2,
}
OWN_SETTINGS = {
    "wavlm": {"num_buckets": 8, "max_bucket_distance": 16},
    "data2vec-audio": {"num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 3},  # layers of the positional conv
}


def encoder_config(model_type: str, shape: dict | None = None, **settings) -> AutoConfig:
    shape = TINY if shape is None else shape
    return AutoConfig.for_model(model_type, **{**shape, **OWN_SETTINGS.get(model_type, {}), **settings})


def tiny_base(
    folder: Path, model_type: str = "hubert", preprocessor: dict | None = None, shape: dict | None = None, seed=0
) -> Path:
    """A random encoder saved as a hub checkpoint is (the bare ``*Model``), with a feature extractor if given."""
    torch.manual_seed(seed)
    AutoModel.from_config(encoder_config(model_type, shape)).save_pretrained(folder)
    if preprocessor is not None:
        Wav2Vec2FeatureExtractor(sampling_rate=RATE, **preprocessor).save_pretrained(folder)
    return folder
