"""Geneformer-compatible models: presets equal the published configs, checkpoints load, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from genoformer.engine.errors import InputError
from genoformer.sc.models import PRESETS, build_model, load_model, model_config
from genoformer.sc.vocabulary import GeneVocabulary
from tests.conftest import shared_data

#: Preset name -> the config file of the published checkpoint in ../shared/data.
PUBLISHED = {
    "gf-6L-30M-i2048": "gf-6L-30M-i2048__Geneformer-V1-10M.config.json",
    "gf-12L-30M-i2048": "gf-12L-30M-i2048.config.json",
    "gf-12L-95M-i4096": "gf-12L-95M-i4096.root_config.json",
    "gf-20L-95M-i4096": "gf-20L-95M-i4096.config.json",
    "V2-104M": "Geneformer-V2-104M.config.json",
    "V2-316M": "Geneformer-V2-316M.config.json",
}
ARCHITECTURE = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "max_position_embeddings", "vocab_size", "hidden_act", "hidden_dropout_prob",
    "attention_probs_dropout_prob", "layer_norm_eps", "initializer_range", "type_vocab_size",
    "position_embedding_type", "pad_token_id",
)  # fmt: skip


@pytest.fixture(scope="module")
def vocabularies() -> dict[str, GeneVocabulary]:
    directory = shared_data("geneformer")
    return {v: GeneVocabulary.geneformer(v, directory) for v in ("V1", "V2")}


@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_preset_equals_published_config(preset: str, vocabularies) -> None:
    published = json.loads(shared_data(f"geneformer/configs/{PUBLISHED[preset]}").read_text())
    vocabulary = vocabularies["V1" if preset.endswith("i2048") else "V2"]
    ours = model_config(preset, vocabulary).to_dict()
    assert {k: ours[k] for k in ARCHITECTURE} == {k: published[k] for k in ARCHITECTURE}
    assert ours["architectures"] == ["BertForMaskedLM"]


def test_published_preset_refuses_the_other_vocabulary(vocabularies) -> None:
    with pytest.raises(InputError, match="gf-6L-30M-i2048 has vocab_size=25,426.*gc104M"):
        model_config("gf-6L-30M-i2048", vocabularies["V2"])


def test_small_preset_is_sized_by_its_vocabulary(vocabularies) -> None:
    model = build_model("tiny", vocabularies["V2"], seed=0)
    assert model.config.vocab_size == len(vocabularies["V2"]) == 20275
    assert model.config.max_position_embeddings == 4096
    assert model.config._attn_implementation == "sdpa"
    # the output layer is the input embedding matrix, as in Geneformer's checkpoints
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert torch.equal(
        build_model("tiny", vocabularies["V2"], seed=0).bert.embeddings.word_embeddings.weight,
        model.bert.embeddings.word_embeddings.weight,
    )


def test_unknown_preset_and_missing_vocabulary() -> None:
    with pytest.raises(InputError, match="unknown model preset 'huge'.*tiny"):
        model_config("huge")
    with pytest.raises(InputError, match="takes its vocabulary size from a vocabulary"):
        model_config("tiny")
    assert set(PUBLISHED) < set(PRESETS)


def test_geneformer_checkpoint_loads_with_tied_output(vocabularies) -> None:
    path = shared_data("geneformer/fixtures/models/gf6L_random")
    model = load_model(path, vocabulary=vocabularies["V1"])
    assert model.config._attn_implementation == "sdpa"
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(10.3e6, rel=0.01)
    encoder = load_model(path, encoder_only=True)
    ids = torch.randint(4, 25426, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = model.bert(ids).last_hidden_state
        alone = encoder(ids).last_hidden_state
    assert torch.equal(full, alone)


def test_pytorch_bin_checkpoint_loads_the_same_weights(tmp_path: Path) -> None:
    path = shared_data("geneformer/fixtures/models/v2tiny_random")
    reference = load_model(path)
    shutil.copy(path / "config.json", tmp_path / "config.json")
    torch.save(reference.state_dict(), tmp_path / "pytorch_model.bin")
    loaded = load_model(tmp_path)
    for (name, a), b in zip(
        reference.state_dict().items(), loaded.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_saved_model_round_trips(tmp_path: Path, vocabularies) -> None:
    model = build_model("tiny", vocabularies["V2"], seed=1)
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path, vocabulary=vocabularies["V2"])
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_errors(tmp_path: Path, vocabularies) -> None:
    with pytest.raises(InputError, match="no such model directory"):
        load_model(tmp_path / "absent")
    with pytest.raises(InputError, match="no config.json"):
        load_model(tmp_path)
    path = shared_data("geneformer/fixtures/models/gf6L_random")
    shutil.copy(path / "config.json", tmp_path / "config.json")
    with pytest.raises(InputError, match="no weights in the model directory"):
        load_model(tmp_path)
    with pytest.raises(InputError, match="vocabulary has 25,426 tokens but the gc104M"):
        load_model(path, vocabulary=vocabularies["V2"])
    # weights of another shape than config.json says
    build_model("tiny", vocabularies["V1"], seed=0).save_pretrained(tmp_path / "tiny")
    shutil.copy(tmp_path / "tiny" / "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(InputError, match="cannot load the checkpoint"):
        load_model(tmp_path)
