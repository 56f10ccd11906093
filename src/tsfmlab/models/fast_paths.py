"""The fence: every use of a private upstream symbol, in one list (:data:`FENCE`).

Each entry names the private symbols, the module of tsfmlab that relies on them, why (a fast path the
``bench/`` scripts measure at >= 1.5x the library's own API, or no public API doing the job), and the param
that brings it in. The code that relies on an entry calls :func:`require_tested` first; on a version of
the upstream distribution other than the one in :data:`TESTED` (also the bounds in ``pyproject.toml``) it
refuses, naming that param and the way back to the library's path where there is one.

Where a fast path has a library alternative the param chooses it (``library`` is the tested reference):
``evaluate_forecast.inference`` / ``evaluate_dysts.inference`` (Chronos-T5 sampling, 2.8x on a 2-core
CPU) and ``evaluate_energy.scoring`` (fev's window splits, 4.5x on the energy tasks' scoring). Chronos-2's
block-diagonal group attention measured 1.3x and was removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Literal

from ..errors import ParamError

Inference = Literal["library", "fast"]
#: distribution -> the minor version the fenced code was written and tested against
TESTED = {"chronos-forecasting": "2.3", "transformers": "5.24", "fev": "0.10"}


@dataclass(frozen=True)
class Override:
    symbols: tuple[str, ...]  # the upstream names relied on (the last component as the module writes it)
    distributions: tuple[str, ...]
    module: str  # the module of tsfmlab that relies on them (below the package: written so, no import)
    reason: str
    remedy: str  # what the user can do on another version


FENCE: dict[str, Override] = {
    "chronos_t5_sampling": Override(
        ("ChronosModel.forward", "cache_utils.EncoderDecoderCache"),
        ("chronos-forecasting", "transformers"), "models.chronos_sampling",
        "Chronos-T5 sampling with the encoder run once per series: 2.8x the library's batched predict "
        "(bench/bench_forecast_throughput.py)", "set it to library"),
    "distillation_trainer": Override(
        ("Trainer._save", "Trainer._load_from_checkpoint", "T5ForConditionalGeneration._shift_right"),
        ("transformers",), "training.distillation",
        "no public hook saves or loads a wrapper module's state; the teacher's decoder is fed the shifted "
        "labels without computing its cross-entropy", "install the tested transformers (pyproject.toml)"),
    "t5_position_buckets": Override(
        ("T5Attention._relative_position_bucket",), ("transformers",), "models.chronos_models",
        "the recency position biases and the last-value start map distances to T5's buckets as T5 does",
        "set it to random, or install the tested transformers"),
    "chronos2_mixture_batches": Override(
        ("Chronos2Dataset._generate_train_batches", "Chronos2Dataset._build_batch"), ("chronos-forecasting",),
        "training.chronos2_pretrain",
        "a mixture of corpora sampled by probability with a seeded stream (the library samples one list "
        "uniformly from the global RNG)", "install the tested chronos-forecasting (pyproject.toml)"),
    "mamba2_blocks": Override(
        ("modeling_mamba2.Mamba2Block", "Mamba2Mixer.init_mamba2_weights", "modeling_mamba2.Mamba2RMSNorm"),
        ("transformers",), "models.timae",
        "Mamba-2 blocks without transformers' language-model wrapper (no public block API)",
        "use backbone: transformer, or install the tested transformers"),
    "fev_window_splits": Override(
        ("EvaluationWindow._get_past_future_test_data",), ("fev",), "evaluation.fev_tasks",
        "fev splits each window again for every model's summary: made once, 4.5x on the energy tasks' "
        "scoring (bench/bench_fev_scoring.py)", "set it to library"),
}


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def require_tested(entry: str, user: str) -> None:
    """Refuse the fenced code of :data:`FENCE` ``[entry]`` (``user``: the param that asked for it) on a
    version other than the tested one of each distribution it patches."""
    override = FENCE[entry]
    for distribution in override.distributions:
        installed = metadata.version(distribution)
        if minor(installed) != TESTED[distribution]:
            raise ParamError(
                f"{user} patches private internals of {distribution} {TESTED[distribution]}.x "
                f"({', '.join(override.symbols)} in tsfmlab.{override.module}), but {installed} is installed; "
                f"{override.remedy}"
            )
