"""The fence around code that reaches into chronos-forecasting's, transformers' and fev's private internals.

Each fast path replaces library internals for speed, behind a ``library | fast`` param of the stages that
use it; ``library`` is the tested reference (the library's own API). A fast path is kept only where
``bench/`` measures it at >= 1.5x the library's path:

=================================  ===============================================  ====================
fast path                          replaces                                         used by
=================================  ===============================================  ====================
:mod:`.chronos_sampling`           ``ChronosModel.forward``'s ``generate`` call     evaluate_forecast,
                                   (transformers' generation loop and cache):       evaluate_dysts
                                   2.8x on a 2-core CPU
:func:`tsfmlab.evaluation.         fev's ``EvaluationWindow._get_past_future_test_  evaluate_energy
fev_tasks.shared_window_splits`    data``, redone for every model: made once per    (``scoring``)
                                   window; bench/bench_fev_scoring.py
=================================  ===============================================  ====================

Chronos-2's block-diagonal group attention measured 1.3x (each path at its fastest batch size) and was
removed: evaluate_energy uses ``Chronos2Pipeline.predict_quantiles``.

The distillation trainer also overrides the HF Trainer's private ``_save`` / ``_load_from_checkpoint``
(there is no public hook for a wrapper module's state); it has no library alternative and is checked
the same way. Each of these was written against, and is tested with, the versions in :data:`TESTED`
(also the bounds in ``pyproject.toml``): :func:`require_tested` refuses any other version with a
message that names the param to switch back to the library path.
"""

from __future__ import annotations

from importlib import metadata
from typing import Literal

from ..errors import ParamError

Inference = Literal["library", "fast"]
#: distribution -> the minor version the private-internals code was written and tested against
TESTED = {"chronos-forecasting": "2.3", "transformers": "5.24", "fev": "0.10"}


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def require_tested(user: str, *distributions: str, remedy: str = "set it to library") -> None:
    """Refuse code that patches the internals of ``distributions`` (``user``: the param or stage that
    asked for it) on a version other than the tested one."""
    for distribution in distributions:
        installed = metadata.version(distribution)
        if minor(installed) != TESTED[distribution]:
            raise ParamError(
                f"{user} patches private internals of {distribution} {TESTED[distribution]}.x, but "
                f"{installed} is installed; {remedy}"
            )
