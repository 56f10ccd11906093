"""The ``shared`` section of ``params.yaml``: the settings several stages read, each stage declaring the
keys it reads as params of its own in dvc.yaml (``shared.train``, ``shared.bootstrap``, ...)."""

from __future__ import annotations

from .evaluation.bootstrap import BootstrapParams
from .params import Params, PositiveInt, QuantileLevels
from .training.hf_trainer import TrainerParams


class SharedParams(Params):
    shard_size: PositiveInt  # series per Arrow file of the corpora
    quantile_levels: QuantileLevels  # forecasts' quantiles (WQL): increasing, in (0, 1)
    bootstrap: BootstrapParams  # every interval: forecast skill scores (series), TEST accuracies (examples)
    train: TrainerParams  # the Trainer settings of the Hugging Face training stages; their schedule: <stage>.train
