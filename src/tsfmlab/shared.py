"""The ``shared`` section of ``params.yaml``: the settings several stages read, each stage declaring the
keys it reads as params of its own in dvc.yaml (``shared.train``, ``shared.bootstrap``, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .evaluation.bootstrap import BootstrapParams
from .params import positive, unit
from .training.hf_trainer import TrainerParams


@dataclass(frozen=True)
class SharedParams:
    shard_size: int = field(metadata=positive)  # series per Arrow file of the corpora
    quantile_levels: list[float] = field(metadata=unit)  # forecasts' quantiles (WQL)
    bootstrap: BootstrapParams  # every interval: forecast skill scores (series), TEST accuracies (examples)
    train: TrainerParams  # the Trainer settings of the Hugging Face training stages; their schedule: <stage>.train
