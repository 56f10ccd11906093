"""One loading entry point for every model family, and what every stage does with any model.

===============  =====================================================  ==============================
family           class                                                  from
===============  =====================================================  ==============================
``chronos-t5``   ``chronos.ChronosPipeline``                            chronos-forecasting
``chronos-bolt`` ``chronos.ChronosBoltPipeline``                        chronos-forecasting
``chronos-2``    ``chronos.Chronos2Pipeline``                           chronos-forecasting
``ttm``          :class:`tsfmlab.models.ttm.TTMForecaster`               granite-tsfm (optional extra)
===============  =====================================================  ==============================

:func:`load_pipeline` takes a hub id or a local directory (``config.json`` + safetensors) of a Chronos
family and checks the family when one is asked for; a TTM loads through
:func:`tsfmlab.models.ttm.load_model` (any family: what the forecast evaluation takes), so that only the
stages that can take a TTM import it. :func:`save_pipeline` writes that layout atomically, so every saved
model loads back the same way. New Chronos-T5 models (size presets, tokenizer): :mod:`.chronos_models`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

from ..errors import ParamError
from ..io.atomic import atomic_dir

Family = Literal["chronos-t5", "chronos-bolt", "chronos-2", "ttm"]
FAMILIES = ("chronos-t5", "chronos-bolt", "chronos-2", "ttm")
TTM_MODEL_TYPE = "tinytimemixer"  # config.json's model_type of a saved TTM
#: hub ids that granite-tsfm's ``get_model`` resolves (a revision per context/prediction length)
TTM_HUB_PREFIXES = ("ibm-granite/granite-timeseries-ttm-", "ibm-research/ttm-", "ibm/TTM")


def is_ttm_source(source: str | Path) -> bool:
    """Whether ``source`` names a TTM: a directory whose config.json has ``model_type: tinytimemixer``,
    or a TTM hub id. Needs no granite-tsfm."""
    path = Path(source)
    if path.is_dir():
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(config, dict) and config.get("model_type") == TTM_MODEL_TYPE
    return not path.exists() and str(source).startswith(TTM_HUB_PREFIXES)


def check_family(source: str | Path, family: str | None) -> None:
    if family is not None and family not in FAMILIES:
        raise ParamError(f"unknown model family {family!r} (model {str(source)!r}); known: {', '.join(FAMILIES)}")


def load_pipeline(source: str | Path, family: Family | None = None):
    """The pipeline of a Chronos family from a hub id or a local directory; a TTM is refused, naming the
    loader that takes it (:func:`tsfmlab.models.ttm.load_model`)."""
    from chronos import BaseChronosPipeline

    check_family(source, family)
    path = Path(source)
    if path.exists() and not (path / "config.json").is_file():
        raise ParamError(f"{path}: not a model directory (no config.json)")
    if is_ttm_source(source):
        raise ParamError(f"model {str(source)!r} is a ttm model{f', not {family}' if family not in (None, 'ttm') else ''}: "
                         f"this stage takes Chronos models (TTMs: evaluate_forecast.models, or the ttm stage)")  # fmt: skip
    try:
        pipeline = BaseChronosPipeline.from_pretrained(str(source), dtype=torch.float32)
    except OSError as err:
        if path.exists():
            raise ParamError(f"{path}: unreadable model checkpoint ({err})") from err
        raise ParamError(
            f"model {str(source)!r} is neither a local directory nor reachable on the Hugging Face hub "
            f"(offline?). Download it elsewhere (`huggingface-cli download {source} --local-dir DIR`) "
            f"and set the model's `source` param to that directory."
        ) from err
    if family is not None and pipeline_family(pipeline) != family:
        raise ParamError(f"model {str(source)!r} is a {pipeline_family(pipeline)} model, not {family}")
    return pipeline


def pipeline_family(pipeline) -> Family:
    name = type(pipeline).__name__
    return {
        "ChronosPipeline": "chronos-t5",
        "ChronosBoltPipeline": "chronos-bolt",
        "Chronos2Pipeline": "chronos-2",
        "TTMForecaster": "ttm",
    }[name]


def inner_model(pipeline) -> torch.nn.Module:
    """The ``transformers`` model that holds the weights (ChronosPipeline wraps it once more)."""
    model = pipeline.model
    return model.model if pipeline_family(pipeline) == "chronos-t5" else model


def save_pipeline(pipeline, out_dir: str | Path) -> Path:
    """Save atomically in the ``from_pretrained`` layout: config.json (+ chronos_config), safetensors."""
    model = inner_model(pipeline)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
    return Path(out_dir)


def count_parameters(pipeline) -> int:
    return sum(p.numel() for p in inner_model(pipeline).parameters())


def weights_digest(source: str | Path) -> str | None:
    """SHA-256 over a local model directory's ``*.safetensors`` files (None for a hub id): lets a later
    stage check it reloads the very weights an earlier one used."""
    import hashlib

    path = Path(source)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for f in sorted(path.glob("*.safetensors")):
        digest.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
