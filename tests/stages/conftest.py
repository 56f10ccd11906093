"""The reproduced project that the pipeline and experiment tests start from."""

from pathlib import Path

import pytest

from tests.conftest import made_once
from tests.stages.pipeline_project import build


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """A fresh copy of the project after `dvc repro` of the smoke profile (tests/stages/pipeline_project.py),
    made once per test run and shared by the workers: tests read it, or start from a clone of it."""
    return made_once(tmp_path_factory, "pipeline", build) / "project"
