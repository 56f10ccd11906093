"""One loading entry point for every model family, and what every stage does with any model.

===============  =====================================================  ==============================
family           class                                                  from
===============  =====================================================  ==============================
``chronos-t5``   ``chronos.ChronosPipeline``                            chronos-forecasting
``chronos-bolt`` ``chronos.ChronosBoltPipeline``                        chronos-forecasting
``chronos-2``    ``chronos.Chronos2Pipeline``                           chronos-forecasting
``ttm``          :class:`tsfmlab.models.ttm.TTMForecaster`               granite-tsfm (optional extra)
===============  =====================================================  ==============================

:func:`load_pipeline` takes a hub id or a local directory (``config.json`` + safetensors) and checks the
family when one is asked for; :func:`save_pipeline` writes that layout atomically, so every saved model
loads back the same way. New Chronos-T5 models (size presets, tokenizer): :mod:`.chronos_models`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from ..errors import ParamError
from ..io.atomic import atomic_dir

Family = Literal["chronos-t5", "chronos-bolt", "chronos-2", "ttm"]
FAMILIES = ("chronos-t5", "chronos-bolt", "chronos-2", "ttm")


def load_pipeline(source: str | Path, family: Family | None = None):
    """The pipeline of any family from a hub id or a local directory (a TTM is recognised by its
    config.json or hub id: see ``tsfmlab.models.ttm``)."""
    from chronos import BaseChronosPipeline

    from .ttm import is_ttm_source, load_ttm

    if family is not None and family not in FAMILIES:
        raise ParamError(
            f"unknown model family {family!r} (model {str(source)!r}); known: {', '.join(FAMILIES)}"
        )
    path = Path(source)
    if path.exists() and not (path / "config.json").is_file():
        raise ParamError(f"{path}: not a model directory (no config.json)")
    if is_ttm_source(source) and family not in (None, "ttm"):
        raise ParamError(f"model {str(source)!r} is a ttm model, not {family}")
    if is_ttm_source(source) or (family == "ttm" and not path.exists()):
        return load_ttm(source)
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
