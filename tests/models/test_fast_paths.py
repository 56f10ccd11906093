"""The fast paths refuse library versions they were not tested with, naming the param to switch."""

import pytest

from tests.conftest import REPO
from tsfmlab.errors import ParamError
from tsfmlab.evaluation.forecast_params import EvaluateParams
from tsfmlab.models import fast_paths
from tsfmlab.params import load_params, parse_section


def test_installed_versions_are_the_tested_ones():
    from importlib import metadata

    for distribution, tested in fast_paths.TESTED.items():
        assert fast_paths.minor(metadata.version(distribution)) == tested, distribution


def test_an_untested_version_is_refused_for_the_fast_path_only(monkeypatch):
    real = fast_paths.metadata.version
    monkeypatch.setattr(
        fast_paths.metadata, "version", lambda d: "5.99.0" if d == "transformers" else real(d)
    )
    section = load_params(REPO / "params.yaml")["evaluate_forecast"]
    with pytest.raises(
        ParamError,
        match=r"param evaluate_forecast.inference=fast patches private internals "
        r"of transformers 5\.24\.x, but 5\.99\.0 is installed; set it to library",
    ):
        parse_section(EvaluateParams, {**section, "inference": "fast"}, "evaluate_forecast")
    assert parse_section(EvaluateParams, {**section, "inference": "library"}, "evaluate_forecast")
    with pytest.raises(ParamError, match="the distillation trainer patches private internals"):
        from tsfmlab.training.distillation import distillation_trainer_class

        distillation_trainer_class()
