"""Stage `speech_base`: the demo's stand-in for hubert-base-ls960, a small HuBERT pretrained by masked prediction
on unlabeled speech of its own speakers, saved with save_pretrained for the speech teachers to load."""

import argparse
from pathlib import Path

from liser.demo.speech_base import pretrain_speech_base, write_pretraining_pool
from liser.files import write_json
from liser.logs import configure_logging
from liser.params import load_params

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--pool", type=Path, required=True, help="where the unlabeled pretraining speech goes")
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--metrics", type=Path, required=True)
args = parser.parse_args()
configure_logging()
base = load_params().speech_base
pool = write_pretraining_pool(args.pool, base.pool_utterances, n_speakers=base.pool_speakers, seed=base.seed)
dropouts = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "final_dropout")
figures = pretrain_speech_base(
    list(pool["path"]),
    args.out,
    config={name: base.dropout for name in dropouts},
    clusters=base.clusters,
    epochs=base.epochs,
    lr=base.lr,
    batch_size=base.batch_size,
    crop_seconds=base.crop_seconds,
    seed=base.seed,
    threads=base.threads,
)
write_json(args.metrics, {k: v for k, v in figures.items() if k != "history"})
