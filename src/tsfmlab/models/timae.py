"""Ti-MAE: masked time-series autoencoders (Li et al., 2023, arXiv 2301.08871), after HF's ViTMAE.

Every time step is one token: a point-wise ``Linear(input_dim, emb_size)`` plus fixed 1-D sin-cos
positions. Pretraining hides a random ``mask_ratio`` share of the steps, encodes only the visible ones
(kept in temporal order), and a light decoder reconstructs every step from the encoder output and
learned mask tokens; the loss is the MSE on the hidden steps only. The classifier reuses the encoder,
unmasked, under a CLS-token or average pooling and an MLP head.

Two interchangeable backbones map ``(batch, tokens, width) -> (batch, tokens, width)``: a pre-norm
Transformer, and a stack of Mamba-2 blocks from ``transformers`` (its pure-PyTorch path unless
``mamba-ssm`` is installed). Mamba is causal, so its CLS token goes at the *end* of the encoder sequence,
where it has seen every step; the Transformer's goes first, as in ViTMAE.

Inputs are ``(batch, channels, time)``, the layout of the prepared UCR arrays. Checkpoints are a
directory holding ``model.safetensors`` and ``config.json`` (never pickles), written atomically.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Self

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from ..errors import DataError, ParamError
from ..io.atomic import atomic_dir
from ..params import (
    BelowOne,
    Distinct,
    Invalid,
    Named,
    OpenUnit,
    Params,
    PositiveInt,
    param,
    parse_section,
    stage_params,
    typed_param,
)
from .fast_paths import require_tested

Backbone = Literal["transformer", "mamba2"]
Pooling = Literal["cls", "avg"]
BACKBONES = typing.get_args(Backbone)
POOLINGS = typing.get_args(Pooling)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"



class TiMAEConfig(Params):
    """Architecture of a Ti-MAE model. Transformer-only fields: ``num_heads``, ``intermediate_dim``,
    ``decoder_heads``, ``decoder_intermediate_dim``. Mamba-2-only fields: ``ssm_state_size``,
    ``mamba_expand``, ``mamba_head_dim`` (heads = expand * width / head_dim, in encoder and decoder),
    ``conv_kernel`` and ``chunk_size``. The PyTorch scan pads every sequence to a multiple of
    ``chunk_size``, so chunks longer than the series only add padding: with 140 steps, a chunk of 256
    (the ``transformers`` default) is 5-10x slower on CPU than 64, for the same result."""

    backbone: Backbone = "transformer"
    input_dim: PositiveInt  # channels
    seq_len: PositiveInt  # time steps the model sees (longer series are cropped)
    emb_size: PositiveInt = 64
    num_layers: PositiveInt = 2
    num_heads: PositiveInt = 4
    intermediate_dim: PositiveInt = 256
    dropout: BelowOne = 0.1
    decoder_emb_size: PositiveInt = 32
    decoder_layers: PositiveInt = 2
    decoder_heads: PositiveInt = 4
    decoder_intermediate_dim: PositiveInt = 128
    cls_embed: bool = True
    mask_ratio: OpenUnit = 0.75
    ssm_state_size: PositiveInt = 64
    mamba_expand: PositiveInt = 2
    mamba_head_dim: PositiveInt = 16
    conv_kernel: PositiveInt = 4
    chunk_size: PositiveInt = 64

    @field_validator("emb_size", "decoder_emb_size")
    @classmethod
    def _even(cls, width: int) -> int:
        if width % 2:
            raise Invalid(f"must be even (sin-cos positions), got {width}")
        return width

    @model_validator(mode="after")
    def _heads_fit(self) -> Self:
        """The backbone's heads divide its widths."""
        for width in ("emb_size", "decoder_emb_size"):
            if self.backbone == "transformer":
                heads = "num_heads" if width == "emb_size" else "decoder_heads"
                if getattr(self, width) % getattr(self, heads):
                    raise Invalid(
                        f"({getattr(self, width)}) must be divisible by {heads} ({getattr(self, heads)})",
                        width,
                        (heads,),
                    )
            elif (inner := self.mamba_expand * getattr(self, width)) % self.mamba_head_dim:
                raise Invalid(
                    f"({self.mamba_head_dim}) must divide mamba_expand * {width} ({inner}): Mamba-2 has "
                    f"expand * width / head_dim heads",
                    "mamba_head_dim",
                    ("mamba_expand", width),
                )
        return self

    def mamba_heads(self, width: int) -> int:
        return self.mamba_expand * width // self.mamba_head_dim

    def encoder_fields(self) -> tuple[str, ...]:
        """The fields that shape the encoder's weights (``seq_len``, dropout, ``chunk_size`` and the
        decoder's may differ between pretraining and fine-tuning)."""
        common = ("backbone", "input_dim", "emb_size", "num_layers", "cls_embed")
        if self.backbone == "transformer":
            return (*common, "num_heads", "intermediate_dim")
        return (*common, "ssm_state_size", "mamba_expand", "mamba_head_dim", "conv_kernel")


def timae_config(values: dict[str, Any] | None, section: str) -> TiMAEConfig:
    """A validated config from a params section (or a ``config.json``)."""
    return parse_section(TiMAEConfig, values, section)


# --------------------------------------------------------------------------------------------------
# the `timae` params section: the grid dvc.yaml expands, and one architecture per backbone entry


class TransformerArchitecture(Params):
    """A ``timae.backbones`` entry with ``backbone: transformer`` (the fields it uses, all required)."""

    backbone: Literal["transformer"]
    emb_size: PositiveInt
    num_layers: PositiveInt
    num_heads: PositiveInt
    intermediate_dim: PositiveInt
    dropout: BelowOne
    decoder_emb_size: PositiveInt
    decoder_layers: PositiveInt
    decoder_heads: PositiveInt
    decoder_intermediate_dim: PositiveInt
    cls_embed: bool


class Mamba2Architecture(Params):
    """A ``timae.backbones`` entry with ``backbone: mamba2`` (encoder and decoder are Mamba-2 stacks)."""

    backbone: Literal["mamba2"]
    emb_size: PositiveInt
    num_layers: PositiveInt
    dropout: BelowOne
    decoder_emb_size: PositiveInt
    decoder_layers: PositiveInt
    cls_embed: bool  # Mamba is causal: the CLS token goes last
    ssm_state_size: PositiveInt
    mamba_expand: PositiveInt
    mamba_head_dim: PositiveInt
    conv_kernel: PositiveInt
    chunk_size: PositiveInt


ARCHITECTURES = {"transformer": TransformerArchitecture, "mamba2": Mamba2Architecture}
#: a backbone entry: the class its ``backbone`` names (a key the other backbone uses is refused, naming it)
Architecture = Annotated[TransformerArchitecture | Mamba2Architecture, Field(discriminator="backbone")]


def architecture(values: Any, section: str) -> TransformerArchitecture | Mamba2Architecture:
    """A backbone entry (``timae.backbones.<name>``), parsed by the class its ``backbone`` names."""
    if isinstance(values, TransformerArchitecture | Mamba2Architecture):
        return values
    kind = values.get("backbone") if isinstance(values, dict) else None
    if kind not in ARCHITECTURES:
        raise ParamError(f"param {section}.backbone must be one of {BACKBONES}, got {kind!r}")
    return parse_section(ARCHITECTURES[kind], values, section)


class TiMAEGrid(Params):
    datasets: Distinct[str]  # prepared by prepare_ucr (each must be in classification.datasets)
    backbones: Named[Architecture]  # name: architecture
    poolings: Distinct[Pooling]

    @model_validator(mode="after")
    def _models_build(self) -> Self:
        for name in self.backbones:
            self.config(name, input_dim=1, seq_len=8, mask_ratio=0.5)  # the checks between fields
        return self

    def config(self, backbone: str, input_dim: int, seq_len: int, mask_ratio: float) -> TiMAEConfig:
        """The model config of ``backbone`` for data of ``input_dim`` channels and ``seq_len`` steps."""
        if backbone not in self.backbones:
            raise ParamError(f"{backbone!r} is not in timae.backbones ({', '.join(self.backbones)})")
        return model_config(self.backbones[backbone], backbone, input_dim, seq_len, mask_ratio)


def model_config(values: Any, backbone: str, input_dim: int, seq_len: int, mask_ratio: float) -> TiMAEConfig:
    """The model config of the architecture ``values`` (``timae.backbones.<backbone>``) for data of
    ``input_dim`` channels and ``seq_len`` steps."""
    section = f"timae.backbones.{backbone}"
    arch = architecture(values, section)
    values = {**arch.model_dump(), "input_dim": input_dim, "seq_len": seq_len}
    return timae_config({**values, "mask_ratio": mask_ratio}, section)


def check_dataset(dataset: str, prepared: list[str]) -> None:
    if dataset not in prepared:
        raise ParamError(
            f"{dataset!r} is not prepared by prepare_ucr; add it to classification.datasets "
            f"({', '.join(prepared)})"
        )


def prepared_datasets(path: str = "params.yaml") -> list[str]:
    """The datasets prepare_ucr prepares (``classification.datasets``)."""
    return list(param("classification.datasets", path))


def timae_grid(path: str = "params.yaml") -> TiMAEGrid:
    """The whole ``timae`` section (the report's rows)."""
    g = stage_params(TiMAEGrid, "timae", path)
    for d in g.datasets:
        check_dataset(d, prepared_datasets(path))
    return g


def timae_datasets(path: str = "params.yaml") -> list[str]:
    """``timae.datasets``, each prepared by prepare_ucr (what one backbone's stages read of the grid)."""
    datasets = typed_param(Distinct[str], "timae.datasets", path)
    for d in datasets:
        check_dataset(d, prepared_datasets(path))
    return datasets


def backbone_config(backbone: str, input_dim: int, seq_len: int, mask_ratio: float, path: str = "params.yaml"):
    """:func:`model_config` of ``timae.backbones.<backbone>``."""
    return model_config(param(f"timae.backbones.{backbone}", path), backbone, input_dim, seq_len, mask_ratio)


# --------------------------------------------------------------------------------------------------
# building blocks


def sincos_positions(length: int, width: int) -> torch.Tensor:
    """ViTMAE's fixed 1-D positions: ``[sin(p * w_i), cos(p * w_i)]`` with ``w_i = 10000^(-2i/width)``."""
    omega = 1.0 / 10000 ** (torch.arange(width // 2, dtype=torch.float64) / (width / 2))
    angles = torch.arange(length, dtype=torch.float64)[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


class TransformerBackbone(nn.Module):
    """Pre-norm GELU Transformer layers. Built one by one rather than with ``nn.TransformerEncoder``,
    whose deep copies would start every layer from the same weights."""

    def __init__(self, width: int, layers: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, heads, ffn, dropout, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h)
        return h


class Mamba2Backbone(nn.Module):
    """``transformers``' Mamba-2 blocks (pre-RMSNorm residual mixers), called without a cache."""

    def __init__(self, width: int, layers: int, config: TiMAEConfig):
        super().__init__()
        require_tested("mamba2_blocks", "backbone: mamba2 (timae.backbones)")
        from transformers import Mamba2Config
        from transformers.models.mamba2.modeling_mamba2 import Mamba2Block

        mamba = Mamba2Config(
            hidden_size=width,
            state_size=config.ssm_state_size,
            num_heads=config.mamba_heads(width),
            head_dim=config.mamba_head_dim,
            expand=config.mamba_expand,
            n_groups=1,
            conv_kernel=config.conv_kernel,
            chunk_size=config.chunk_size,
            num_hidden_layers=layers,
            vocab_size=1,  # no token embedding is built
            pad_token_id=None,
            bos_token_id=None,
            eos_token_id=None,
        )
        self.layers = nn.ModuleList(Mamba2Block(mamba, layer_idx=i) for i in range(layers))
        for block in self.layers:
            # Mamba2Block leaves A_log, D and dt_bias as torch.empty (Mamba2PreTrainedModel fills them)
            block.mixer.init_mamba2_weights()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        dtype = h.dtype
        for block in self.layers:
            h = block(h, cache_params=None, attention_mask=None)
        return h.to(dtype)  # blocks keep the residual in float32


def make_backbone(config: TiMAEConfig, width: int, layers: int, heads: int, ffn: int) -> nn.Module:
    if config.backbone == "transformer":
        return TransformerBackbone(width, layers, heads, ffn, config.dropout)
    return Mamba2Backbone(width, layers, config)


def make_norm(config: TiMAEConfig, width: int) -> nn.Module:
    if config.backbone == "transformer":
        return nn.LayerNorm(width)
    from transformers.models.mamba2.modeling_mamba2 import Mamba2RMSNorm

    return Mamba2RMSNorm(width, eps=1e-5)


# --------------------------------------------------------------------------------------------------
# masking and loss


def keep_count(length: int, mask_ratio: float) -> int:
    """Visible tokens: ``round(length * (1 - mask_ratio))``, at least one and, when possible, one fewer
    than ``length`` (so that the loss always has a masked step)."""
    keep = max(1, int(round(length * (1 - mask_ratio))))
    return min(keep, length - 1) if length > 1 else 1


class Masking(NamedTuple):
    kept: torch.Tensor  # (B, keep, D) visible tokens in temporal order
    mask: torch.Tensor  # (B, L) 1 = masked, 0 = visible
    ids_restore: torch.Tensor  # (B, L) position of each step in [visible..., masked...]


def random_masking(x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None) -> Masking:
    """ViTMAE's per-sample random masking by sorting uniform noise; the kept ids are sorted so the
    visible tokens stay in temporal order (which a causal backbone needs). ``generator`` (on any
    device) makes the masks reproducible, e.g. for validation."""
    batch, length, width = x.shape
    keep = keep_count(length, mask_ratio)
    device = generator.device if generator is not None else x.device
    noise = torch.rand(batch, length, generator=generator, device=device).to(x.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_keep = torch.sort(ids_shuffle[:, :keep], dim=1).values
    ids_shuffle = torch.cat([ids_keep, ids_shuffle[:, keep:]], dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    kept = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, width))
    mask = torch.ones(batch, length, device=x.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return Masking(kept, mask, ids_restore)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over masked steps only: mean over channels, then the sum over masked steps divided by their
    number. ``prediction`` and ``target`` are ``(B, L, C)``, ``mask`` is ``(B, L)`` with 1 = masked."""
    per_step = (prediction - target).pow(2).mean(dim=-1)
    return (per_step * mask).sum() / mask.sum().clamp_min(1)


# --------------------------------------------------------------------------------------------------
# encoder, decoder, models


class EncoderOutput(NamedTuple):
    hidden: torch.Tensor  # (B, visible [+ 1 CLS], emb_size)
    mask: torch.Tensor | None  # (B, L), None without masking
    ids_restore: torch.Tensor | None


class TiMAEEncoder(nn.Module):
    """Point-wise embedding + sin-cos positions, optional masking, CLS token, backbone, final norm."""

    def __init__(self, config: TiMAEConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.input_dim, config.emb_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.emb_size)) if config.cls_embed else None
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        self.register_buffer("positions", sincos_positions(config.seq_len, config.emb_size), persistent=False)
        self.dropout = nn.Dropout(config.dropout)
        self.backbone = make_backbone(
            config, config.emb_size, config.num_layers, config.num_heads, config.intermediate_dim
        )
        self.norm = make_norm(config, config.emb_size)

    @property
    def cls_at_end(self) -> bool:
        return self.config.backbone == "mamba2"

    def forward(
        self, tokens: torch.Tensor, mask_ratio: float | None = None, generator: torch.Generator | None = None
    ) -> EncoderOutput:
        """``tokens`` is ``(B, L, C)`` with ``L <= seq_len``; ``mask_ratio=None`` encodes every step."""
        h = self.embed(tokens) + self.positions[: tokens.shape[1]]
        mask = ids_restore = None
        if mask_ratio is not None:
            h, mask, ids_restore = random_masking(h, mask_ratio, generator)
        if self.cls_token is not None:
            cls = self.cls_token.expand(h.shape[0], -1, -1)
            h = torch.cat([h, cls] if self.cls_at_end else [cls, h], dim=1)
        h = self.norm(self.backbone(self.dropout(h)))
        return EncoderOutput(h, mask, ids_restore)

    def split_cls(self, hidden: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(cls (B, 1, D) or None, step tokens (B, n, D))``."""
        if self.cls_token is None:
            return None, hidden
        if self.cls_at_end:
            return hidden[:, -1:], hidden[:, :-1]
        return hidden[:, :1], hidden[:, 1:]


class TiMAEDecoder(nn.Module):
    """Projects the visible tokens, inserts mask tokens, restores the temporal order, adds positions
    and predicts every step. The CLS token, if any, is put first (for either backbone) so that every
    decoder token can read it, and dropped from the output."""

    def __init__(self, config: TiMAEConfig):
        super().__init__()
        width = config.decoder_emb_size
        self.embed = nn.Linear(config.emb_size, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("positions", sincos_positions(config.seq_len, width), persistent=False)
        self.backbone = make_backbone(
            config, width, config.decoder_layers, config.decoder_heads, config.decoder_intermediate_dim
        )
        self.norm = make_norm(config, width)
        self.predict = nn.Linear(width, config.input_dim)

    def forward(
        self, cls: torch.Tensor | None, visible: torch.Tensor, ids_restore: torch.Tensor
    ) -> torch.Tensor:
        visible = self.embed(visible)
        batch, length = ids_restore.shape
        masks = self.mask_token.expand(batch, length - visible.shape[1], -1)
        h = torch.cat([visible, masks], dim=1)
        h = torch.gather(h, 1, ids_restore[..., None].expand(-1, -1, h.shape[-1]))
        h = h + self.positions[:length]
        if cls is not None:
            h = torch.cat([self.embed(cls), h], dim=1)
        h = self.norm(self.backbone(h))
        if cls is not None:
            h = h[:, 1:]
        return self.predict(h)


def as_tokens(x: torch.Tensor, config: TiMAEConfig) -> torch.Tensor:
    """``(B, C, T)`` series to ``(B, T, C)`` tokens, checking channels and length."""
    if x.dim() != 3 or x.shape[1] != config.input_dim:
        raise DataError(
            f"Ti-MAE expects series of shape (batch, {config.input_dim} channels, time), got {tuple(x.shape)}"
        )
    if x.shape[2] > config.seq_len:
        raise DataError(
            f"series of length {x.shape[2]} exceed the model's seq_len {config.seq_len}; crop them first"
        )
    return x.transpose(1, 2)


class PretrainingOutput(NamedTuple):
    loss: torch.Tensor
    reconstruction: torch.Tensor  # (B, C, T)
    mask: torch.Tensor  # (B, T), 1 = masked


class TiMAEForPretraining(nn.Module):
    """Encoder + decoder; ``forward(x (B, C, T))`` masks, reconstructs and scores the masked steps."""

    def __init__(self, config: TiMAEConfig):
        super().__init__()
        self.config = config
        self.encoder = TiMAEEncoder(config)
        self.decoder = TiMAEDecoder(config)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, mask_ratio: float | None = None
    ) -> PretrainingOutput:
        tokens = as_tokens(x, self.config)
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        hidden, mask, ids_restore = self.encoder(tokens, ratio, generator)
        cls, visible = self.encoder.split_cls(hidden)
        prediction = self.decoder(cls, visible, ids_restore)
        loss = masked_mse(prediction, tokens, mask)
        return PretrainingOutput(loss, prediction.transpose(1, 2), mask)


class TiMAEClassifier(nn.Module):
    """The encoder, unmasked, pooled by its CLS token or by the mean of the step tokens, then an MLP
    head (``head_hidden`` GELU layers with dropout) and a linear layer to the class logits."""

    def __init__(
        self,
        config: TiMAEConfig,
        n_classes: int,
        pooling: Pooling = "avg",
        head_hidden: list[int] | tuple[int, ...] = (),
        head_dropout: float = 0.0,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ParamError(f"param pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == "cls" and not config.cls_embed:
            raise ParamError("param pooling 'cls' needs a CLS token: set cls_embed: true or pooling: avg")
        if n_classes < 2:
            raise DataError(f"a classifier needs at least 2 classes, got {n_classes}")
        if not 0.0 <= head_dropout < 1.0:
            raise ParamError(f"param head_dropout must be in [0, 1), got {head_dropout!r}")
        if any(h <= 0 for h in head_hidden):
            raise ParamError(f"param head_hidden must hold positive widths, got {list(head_hidden)}")
        self.config = config
        self.n_classes = n_classes
        self.pooling = pooling
        self.head_hidden = [int(h) for h in head_hidden]
        self.head_dropout = float(head_dropout)
        self.encoder = TiMAEEncoder(config)
        layers: list[nn.Module] = []
        width = config.emb_size
        for h in self.head_hidden:
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(head_dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.head = nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled encoder features ``(B, emb_size)``."""
        hidden = self.encoder(as_tokens(x, self.config)).hidden
        cls, steps = self.encoder.split_cls(hidden)
        return cls[:, 0] if self.pooling == "cls" else steps.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def load_encoder(self, directory: str | Path) -> None:
        """Load the encoder of a checkpoint written by :func:`save_timae` (architecture checked)."""
        self.encoder.load_state_dict(load_encoder_state(directory, expected=self.config))

    @classmethod
    def from_pretrained_encoder(
        cls,
        directory: str | Path,
        n_classes: int,
        pooling: Pooling = "avg",
        head_hidden: list[int] | tuple[int, ...] = (),
        head_dropout: float = 0.0,
        **overrides: Any,
    ) -> TiMAEClassifier:
        """A classifier on a saved encoder; ``overrides`` may change fields that do not shape the
        encoder's weights (``seq_len``, ``dropout``, ``chunk_size``, ...)."""
        config = timae_config(
            {**read_config(directory).model_dump(), **overrides}, f"{directory} with overrides"
        )
        model = cls(config, n_classes, pooling, head_hidden, head_dropout)
        model.load_encoder(directory)
        return model


# --------------------------------------------------------------------------------------------------
# checkpoints and sizes


def save_timae(model: TiMAEForPretraining | TiMAEClassifier, directory: str | Path) -> Path:
    """``directory/model.safetensors`` + ``directory/config.json``, replacing the directory atomically.
    A classifier's head layout is kept in the safetensors metadata so :func:`load_timae` rebuilds it."""
    from safetensors.torch import save_file

    meta: dict[str, Any] = {"kind": "pretraining"}
    if isinstance(model, TiMAEClassifier):
        meta = {
            "kind": "classifier",
            "n_classes": model.n_classes,
            "pooling": model.pooling,
            "head_hidden": model.head_hidden,
            "head_dropout": model.head_dropout,
        }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"tsfmlab": json.dumps(meta)})
        (tmp / CONFIG_FILE).write_text(json.dumps(model.config.model_dump(), indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> TiMAEConfig:
    path = Path(directory) / CONFIG_FILE
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(f"{path}: Ti-MAE config not found") from err
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable JSON config ({err})") from err
    return timae_config(values, str(path))


def _read_weights(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise DataError(f"{path}: Ti-MAE weights not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("tsfmlab", "{}"))
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as err:
        raise DataError(f"{path}: not a readable safetensors file ({err})") from err


def check_encoder_config(saved: TiMAEConfig, expected: TiMAEConfig, where: str | Path) -> None:
    diffs = [
        f"{name} {getattr(saved, name)!r} (expected {getattr(expected, name)!r})"
        for name in expected.encoder_fields()
        if getattr(saved, name) != getattr(expected, name)
    ]
    if diffs:
        raise ParamError(f"{where}: the saved encoder does not match the model's config: {'; '.join(diffs)}")


def load_encoder_state(directory: str | Path, expected: TiMAEConfig | None = None) -> dict[str, torch.Tensor]:
    """The encoder's weights (embedding, CLS token, backbone, norm) from a :func:`save_timae`
    directory, keyed as in :class:`TiMAEEncoder`; with ``expected``, its architecture is checked."""
    config = read_config(directory)
    if expected is not None:
        check_encoder_config(config, expected, Path(directory) / CONFIG_FILE)
    tensors, _ = _read_weights(directory)
    state = {k.removeprefix("encoder."): v for k, v in tensors.items() if k.startswith("encoder.")}
    if not state:
        raise DataError(f"{Path(directory) / WEIGHTS_FILE}: holds no Ti-MAE encoder weights")
    return state


def load_timae(directory: str | Path) -> TiMAEForPretraining | TiMAEClassifier:
    """Rebuild the model :func:`save_timae` wrote (pretraining or classifier), in eval mode."""
    config = read_config(directory)
    tensors, meta = _read_weights(directory)
    if meta.get("kind") == "classifier":
        model: nn.Module = TiMAEClassifier(
            config, meta["n_classes"], meta["pooling"], meta["head_hidden"], meta["head_dropout"]
        )
    else:
        model = TiMAEForPretraining(config)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise DataError(
            f"{Path(directory) / WEIGHTS_FILE}: weights do not fit {CONFIG_FILE} ({err})"
        ) from err
    return model.eval()  # type: ignore[return-value]


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total and trainable parameters, and the total of each top-level part (encoder, decoder, head)."""
    counts = {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    for name, child in model.named_children():
        counts[name] = sum(p.numel() for p in child.parameters())
    return counts
