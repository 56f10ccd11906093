"""The fence: every private upstream symbol the code relies on is listed, in the module the list names, and
each fenced path refuses an untested version before it runs, naming the param that brought it in."""

import re

import pytest

from tests.conftest import REPO, tokenizer_params
from tsfmlab.errors import ParamError
from tsfmlab.evaluation.forecast_params import EvaluateParams
from tsfmlab.models import fast_paths
from tsfmlab.params import load_params, parse_section

SRC = REPO / "src"
#: how the code reaches each kind of private symbol (a new use of one outside its fenced module fails here)
PRIVATE = re.compile(
    r"\._(shift_right|relative_position_bucket|generate_train_batches|build_batch|get_past_future_test_data|save|"
    r"load_from_checkpoint)\b|modeling_mamba2|init_mamba2_weights"
)


def module_source(module: str) -> str:
    return (SRC / "tsfmlab" / (module.replace(".", "/") + ".py")).read_text()


def test_installed_versions_are_the_tested_ones():
    from importlib import metadata

    for distribution, tested in fast_paths.TESTED.items():
        assert fast_paths.minor(metadata.version(distribution)) == tested, distribution


@pytest.mark.parametrize("entry", sorted(fast_paths.FENCE))
def test_each_entry_names_symbols_its_module_uses_and_versions_that_are_tested(entry):
    override = fast_paths.FENCE[entry]
    source = module_source(override.module)
    for symbol in override.symbols:
        name = symbol.split(".")[-1]
        assert name in source, f"{entry}: {override.module} does not use {name}"
    assert set(override.distributions) <= set(fast_paths.TESTED)
    users = [p for p in [*SRC.rglob("*.py"), *(REPO / "stages").glob("*.py")] if f'"{entry}"' in p.read_text()]
    assert users, f"{entry}: no code calls require_tested for it"


def test_every_private_use_of_a_fenced_kind_is_in_its_fenced_module():
    fenced = {f"tsfmlab.{o.module}" for o in fast_paths.FENCE.values()}
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        hits = [m.group(0) for m in PRIVATE.finditer(path.read_text())]
        if module == "tsfmlab.models.fast_paths":
            continue
        assert not hits or module in fenced, f"{module} uses {hits} but no FENCE entry names it"


def untested(monkeypatch, distribution: str) -> None:
    real = fast_paths.metadata.version
    monkeypatch.setattr(fast_paths.metadata, "version", lambda d: "0.99.0" if d == distribution else real(d))


def test_the_fast_inference_param_is_refused_on_an_untested_transformers(monkeypatch):
    untested(monkeypatch, "transformers")
    params = load_params(REPO / "params.yaml")
    section, shared = params["evaluate_forecast"], params["shared"]
    with pytest.raises(ParamError, match=r"param evaluate_forecast.inference=fast patches private internals of "
                                         r"transformers 5\.24\.x \(.*\), but 0\.99\.0 is installed; set it to library"):  # fmt: skip
        parse_section(EvaluateParams, {**section, "inference": "fast"}, "evaluate_forecast", shared)
    assert parse_section(EvaluateParams, {**section, "inference": "library"}, "evaluate_forecast", shared)


def test_the_distillation_trainer_is_refused_on_an_untested_transformers(monkeypatch):
    from tsfmlab.training.distillation import distillation_trainer_class

    untested(monkeypatch, "transformers")
    with pytest.raises(ParamError, match=r"the distillation trainer \(stage distill\) patches .*Trainer\._save"):
        distillation_trainer_class()


def test_the_t5_inits_are_refused_on_an_untested_transformers_and_random_ones_are_not(monkeypatch):
    from tsfmlab.models.chronos_models import new_chronos_t5

    tok = tokenizer_params(context_length=32, prediction_length=8, num_samples=4)
    dims = {"d_model": 16, "d_ff": 32, "num_heads": 2, "d_kv": 8}
    untested(monkeypatch, "transformers")
    with pytest.raises(ParamError, match=r"position_init=recency, decoder_init=random patches .*_relative_position_bucket"
                                         r".*set it to random"):  # fmt: skip
        new_chronos_t5("nano", tok, overrides=dims, position_init="recency")
    with pytest.raises(ParamError, match="decoder_init=last_value patches"):
        new_chronos_t5("nano", tok, overrides=dims, decoder_init="last_value")
    assert new_chronos_t5("nano", tok, overrides=dims) is not None  # random inits use no private symbol


def test_the_chronos2_mixture_is_refused_on_an_untested_chronos(monkeypatch):
    from tsfmlab.training.chronos2_pretrain import mixture_dataset

    untested(monkeypatch, "chronos-forecasting")
    with pytest.raises(ParamError, match=r"stage chronos2's corpus mixture \(chronos2\.data\) patches .*_generate_train_batches"):
        mixture_dataset(None, 64, 8, 16, 0)  # refused before it reads anything


def test_mamba2_is_refused_on_an_untested_transformers_and_the_transformer_is_not(monkeypatch):
    from tests.models.test_timae import tiny
    from tsfmlab.models.timae import TiMAEForPretraining

    untested(monkeypatch, "transformers")
    with pytest.raises(ParamError, match=r"backbone: mamba2 \(timae\.backbones\) patches .*Mamba2Block.*use backbone: transformer"):
        TiMAEForPretraining(tiny("mamba2"))
    assert TiMAEForPretraining(tiny("transformer")) is not None
