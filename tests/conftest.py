import os

import pytest

from .helpers import REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def repo_params():
    from liser.params import load_params

    return load_params(REPO / "params.yaml")
