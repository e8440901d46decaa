"""Damaged model directories are bad input naming the file, for every pillar's loader."""

from __future__ import annotations

import shutil

import pytest

from genoformer.engine.errors import InputError
from tests.conftest import shared_data


@pytest.fixture
def checkpoint(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(shared_data("geneformer/fixtures/models/v2tiny_random"), model)
    return model


def _loaders():
    from genoformer.engine.checkpoints import load_pretrained
    from genoformer.sc.models import load_model

    def transformers_class(path):
        from transformers import BertForMaskedLM

        return load_pretrained(BertForMaskedLM, path)

    return {"sc": load_model, "engine": transformers_class}


@pytest.mark.parametrize("loader", ["sc", "engine"])
def test_truncated_weights(checkpoint, loader):
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(InputError, match="cannot load the checkpoint") as error:
        _loaders()[loader](checkpoint)
    assert error.value.file == str(weights) and "copy the checkpoint again" in error.value.fix


@pytest.mark.parametrize("loader", ["sc", "engine"])
def test_config_that_is_not_json(checkpoint, loader):
    (checkpoint / "config.json").write_text('{"hidden_size": 12,')
    with pytest.raises(InputError, match="config.json is not JSON") as error:
        _loaders()[loader](checkpoint)
    assert error.value.file == str(checkpoint / "config.json")
