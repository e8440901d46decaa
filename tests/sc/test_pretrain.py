"""Masked-gene pretraining: it learns, resumes exactly after a kill, runs under torchrun, and
refuses bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from transformers import BertForMaskedLM

from genoformer.engine.errors import InputError
from genoformer.engine.runs import read_manifest
from genoformer.engine.training import SeededLengthSampler
from genoformer.sc.masking import IGNORE, truncate
from genoformer.sc.models import MaskedGeneLM, build_model, load_model, model_config
from genoformer.sc.pretraining import (
    frequency_baseline,
    masked_position_sums,
    pretrain,
    token_counts,
)
from genoformer.sc.tokenizer import tokenize
from genoformer.sc.vocabulary import ENV_DIR, GeneVocabulary
from tests.conftest import shared_data
from tests.killing import HF_NOISE, assert_same_weights, cli, start_until_checkpoint
from tests.killing import options as cli_options

FIXTURES = "geneformer/fixtures"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def geneformer_dir() -> Path:
    return shared_data("geneformer")


@pytest.fixture(scope="module")
def v2(geneformer_dir) -> GeneVocabulary:
    return GeneVocabulary.geneformer("V2", geneformer_dir)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, v2) -> list[Path]:
    """pbmc68k (700 cells) and celltypist559 (559 cells), tokenized with the V2 dictionaries."""
    out = tmp_path_factory.mktemp("corpora")
    paths = []
    for name in ("pbmc68k", "celltypist559"):
        source = shared_data(f"{FIXTURES}/inputs/{name}.h5ad")
        paths.append(tokenize(source, out=out / name, vocabulary=v2, progress=False).run_dir)
    return paths


@pytest.fixture
def dictionaries_env(monkeypatch, geneformer_dir):
    monkeypatch.setenv(ENV_DIR, str(geneformer_dir))


# ---------------------------------------------------------------------------------------------
# it learns


def test_pretraining_beats_predicting_genes_by_their_frequency(simulated_pretrained):
    # Simulated cells of five types: a gene's rank depends on the cell's type, which the
    # other genes of the cell reveal and the corpus frequency of genes does not (800 cells,
    # 300 genes, 20 markers a type, 64 tokens a cell, 150 steps: see tests/sc/conftest.py).
    result = simulated_pretrained.result
    metrics = result.metrics
    print(
        f"\nheld-out masked-gene loss {metrics['heldout_loss']:.3f} vs frequency baseline "
        f"{metrics['frequency_loss']:.3f}; accuracy {metrics['heldout_accuracy']:.3f} vs "
        f"{metrics['frequency_accuracy']:.3f} ({metrics['heldout_masked_positions']} masked "
        f"positions in {metrics['heldout_cells']} held-out cells, {metrics['steps']} steps)"
    )
    # Measured: 5.37 against 5.63, accuracy 0.079 against 0.004.
    assert metrics["heldout_loss"] < metrics["frequency_loss"] - 0.1
    assert metrics["heldout_accuracy"] > 5 * metrics["frequency_accuracy"]
    assert metrics["train_cells"] + metrics["heldout_cells"] == 800
    assert metrics["vocabulary"] == "simulated"

    run = result.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["results"]["pretrain"]["heldout_loss"] == metrics["heldout_loss"]
    history = (run / "loss_curve.tsv").read_text().splitlines()
    assert history[0].split("\t") == ["step", "epoch", "train_loss", "eval_loss"]
    assert (run / "loss_curve.png").stat().st_size > 0
    # The saved model is a plain BertForMaskedLM that the model loader reads.
    config = json.loads((result.outputs["model"] / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"]
    model = load_model(result.outputs["model"])
    assert type(model) is BertForMaskedLM
    assert model.cls.predictions.decoder.weight.data_ptr() == (
        model.bert.embeddings.word_embeddings.weight.data_ptr()
    )


# ---------------------------------------------------------------------------------------------
# the masked-position output layer


def test_masked_position_loss_is_bert_s_loss(v2):
    torch.manual_seed(0)
    bert = build_model(model_config("tiny", v2, num_hidden_layers=1), seed=3).eval()
    ours = MaskedGeneLM(bert.config).eval()
    ours.load_state_dict(bert.state_dict())
    ids = torch.randint(4, len(v2), (3, 12))
    attention = torch.ones_like(ids)
    attention[2, 9:] = 0
    labels = torch.full_like(ids, IGNORE)
    chosen = torch.rand(ids.shape) < 0.3
    chosen[:, 0] = True
    chosen[2, 9:] = False
    labels[chosen] = ids[chosen]
    with torch.no_grad():
        full = bert(input_ids=ids, attention_mask=attention, labels=labels)
        sparse = ours(input_ids=ids, attention_mask=attention, labels=labels)
        plain = ours(input_ids=ids, attention_mask=attention)
    torch.testing.assert_close(sparse.loss, full.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sparse.logits, full.logits[chosen], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain.logits, full.logits)

    sums = masked_position_sums(sparse.logits, labels)
    assert sums[:, 2].tolist() == chosen.sum(dim=1).float().tolist()
    torch.testing.assert_close(sums[:, 0].sum() / sums[:, 2].sum(), full.loss)
    predicted = full.logits.argmax(-1)
    assert sums[:, 1].sum().item() == (predicted[chosen] == ids[chosen]).sum().item()


# ---------------------------------------------------------------------------------------------
# the frequency baseline


def test_token_counts_follow_truncation():
    rng = np.random.default_rng(0)
    eos = 3
    cells = [np.concatenate([[2], rng.integers(4, 40, size=n), [eos]]) for n in (3, 10, 25, 1)]
    cells.append(rng.integers(4, 40, size=30))  # a cell without <cls>/<eos>
    data = datasets.Dataset.from_dict({"input_ids": cells})
    rows = np.array([0, 2, 3, 4])
    for max_length in (None, 4, 8):
        expected = np.zeros(40, dtype=np.int64)
        for row in rows:
            np.add.at(expected, truncate(cells[row], max_length, eos), 1)
        got = token_counts(data, rows, 40, max_length=max_length, eos_id=eos)
        np.testing.assert_array_equal(got, expected)


def test_frequency_baseline_by_hand():
    counts = np.array([5, 0, 3, 1, 0])  # tokens 0 and 1 are special
    special = np.array([0, 1])
    labels = np.array([2, 2, 3, 4])
    # Pseudo-counts: 4, 2, 1 over 7.
    expected = -(2 * np.log(4 / 7) + np.log(2 / 7) + np.log(1 / 7)) / 4
    result = frequency_baseline(counts, special, labels)
    assert result["frequency_loss"] == pytest.approx(expected)
    assert result["frequency_accuracy"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# engine: length-grouped batches that a resumed or multi-process run draws again


def test_length_grouped_order_depends_on_seed_and_epoch_only():
    lengths = np.random.default_rng(0).integers(1, 500, size=1000).tolist()
    sampler = SeededLengthSampler(lengths, 4, seed=5)
    first = list(sampler)
    assert sorted(first) == list(range(1000))
    assert list(SeededLengthSampler(lengths, 4, seed=5)) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == list(range(1000))
    sampler.set_epoch(0)
    assert list(sampler) == first
    # Megabatches of 50 batches come sorted by length, longest first.
    block = [lengths[i] for i in first[200:400]]
    assert block == sorted(block, reverse=True)
    assert lengths[first[0]] == max(lengths)
    evaluation = list(SeededLengthSampler(lengths, 4, seed=0, shuffle=False))
    assert [lengths[i] for i in evaluation] == sorted(lengths, reverse=True)


# ---------------------------------------------------------------------------------------------
# kill and resume; torchrun

RESUME_OPTIONS = dict(
    max_steps=15,
    batch_size=8,
    eval_every=5,
    max_cells=60,
    max_length=32,
    learning_rate=2e-3,
    warmup=3,
    seed=4,
    device="cpu",
)


def _pretrain_until_checkpoint(corpora, out, *, step: int):
    """``genoformer sc pretrain`` in a process of its own, returned once it has written
    checkpoint ``step`` (or ended)."""
    command = cli("sc", "pretrain", *corpora, "--out", out, *cli_options(RESUME_OPTIONS))
    return start_until_checkpoint(command, out, step=step)


def test_killed_pretraining_resumes_to_the_same_model(corpora, tmp_path, dictionaries_env):
    whole = pretrain(corpora, out=tmp_path / "whole", **RESUME_OPTIONS)

    killed = tmp_path / "killed"
    process, marker = _pretrain_until_checkpoint(corpora, killed, step=10)
    process.kill()
    process.wait()
    assert marker.exists(), "the run ended before its second checkpoint"
    assert not (killed / "model").exists(), "the run finished before it was killed"

    # 57 training cells in batches of 8: step 10 is in the second epoch.
    state = json.loads(marker.read_text())
    assert 1 < state["epoch"] < 2
    with pytest.raises(InputError, match="pass --resume"):
        pretrain(corpora, out=killed, **RESUME_OPTIONS)
    changed = {**RESUME_OPTIONS, "batch_size": 4}
    with pytest.raises(InputError, match="started with batch_size=8"):
        pretrain(corpora, out=killed, resume=True, **changed)

    resumed = pretrain(corpora, out=killed, resume=True, **RESUME_OPTIONS)
    assert resumed.metrics["steps"] == whole.metrics["steps"] == 15
    # Data order, masks, optimizer and random states restored: the same floats.
    assert_same_weights(killed / "model", tmp_path / "whole" / "model")
    for key in ("heldout_loss", "heldout_accuracy", "frequency_loss", "model_step"):
        assert resumed.metrics[key] == whole.metrics[key], key


def test_sigterm_marks_the_run_interrupted_and_says_how_to_go_on(corpora, tmp_path):
    out = tmp_path / "stopped"
    process, marker = _pretrain_until_checkpoint(corpora, out, step=5)
    process.terminate()
    process.wait(timeout=120)
    assert marker.exists(), "the run ended before its first checkpoint"
    assert process.returncode != 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["reason"] == "SIGTERM"
    message = Path(f"{out}.stderr").read_text()
    assert f"interrupted: {out}" in message and "--resume" in message
    for noise in HF_NOISE:
        assert noise not in message
    # A reader of the run refuses it, naming it.
    with pytest.raises(InputError, match=r"not complete \(status interrupted: SIGTERM\)"):
        read_manifest(out)


def test_torchrun_two_processes_write_one_model(corpora, tmp_path, geneformer_dir):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    options = dict(max_cells=60, max_length=32, batch_size=4, epochs=1, eval_every=4)
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "genoformer.cli"]
    command += ["sc", "pretrain", *map(str, corpora), "--out", str(out), "--device", "cpu"]
    command += cli_options(options)
    env = {**os.environ, "OMP_NUM_THREADS": "1", ENV_DIR: str(geneformer_dir)}
    done = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    results = manifest["results"]["pretrain"]
    assert results["world_size"] == 2
    # Both processes share each epoch: 57 training cells, batches of 4, two at a time.
    assert results["steps"] == math.ceil(math.ceil(results["train_cells"] / 4) / 2)
    assert (out / "model" / "model.safetensors").exists()
    assert load_model(out / "model").config.vocab_size == 20275
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert results["heldout_loss"] is not None and results["frequency_loss"] is not None


# ---------------------------------------------------------------------------------------------
# bad input


def test_corpus_without_input_ids(tmp_path, v2):
    path = tmp_path / "cells"
    datasets.Dataset.from_dict({"length": [3, 4]}).save_to_disk(str(path))
    with pytest.raises(InputError, match="has no 'input_ids' column"):
        pretrain(path, out=tmp_path / "run", vocabulary=v2)


def test_corpus_of_another_vocabulary(corpora, tmp_path, geneformer_dir):
    v1 = GeneVocabulary.geneformer("V1", geneformer_dir)
    with pytest.raises(InputError, match="tokenized with the gc104M vocabulary, not gc30M"):
        pretrain(corpora[0], out=tmp_path / "run", vocabulary=v1, model="gf-6L-30M-i2048")


def test_token_ids_beyond_the_model_vocabulary(tmp_path, v2):
    # Geneformer's own V1 corpus (no manifest) read as if it were V2.
    corpus = shared_data(f"{FIXTURES}/geneformer_datasets/pbmc68k_V1.dataset")
    with pytest.raises(
        InputError, match=r"cell \d+: token id \d+ is outside the model's vocabulary"
    ):
        pretrain(corpus, out=tmp_path / "run", vocabulary=v2)


def test_cells_longer_than_the_model_input(corpora, tmp_path, v2):
    short = tmp_path / "short"
    build_model(model_config("tiny", v2, max_position_embeddings=128)).save_pretrained(short)
    with pytest.raises(
        InputError, match=r"longer than the model's 128 positions.*--max-length 128"
    ):
        pretrain(corpora[1], out=tmp_path / "run", model=short, vocabulary=v2)


def test_corpus_without_manifest_needs_a_vocabulary(tmp_path):
    corpus = shared_data(f"{FIXTURES}/geneformer_datasets/pbmc68k_V2.dataset")
    with pytest.raises(InputError, match="no manifest.json names the vocabulary"):
        pretrain(corpus, out=tmp_path / "run")


def test_unknown_preset(corpora, tmp_path, v2):
    with pytest.raises(InputError, match="unknown model preset 'huge'"):
        pretrain(corpora[0], out=tmp_path / "run", model="huge", vocabulary=v2)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"max_cells": 10}, r"10 cells are too few for a held-out split of 0.05"),
        ({"held_out": 1.5}, "held_out is 1.5"),
        ({"scheduler": "sawtooth"}, "unknown learning-rate schedule 'sawtooth'"),
        ({"batch_size": 0}, "batch_size is 0"),
    ],
)
def test_bad_settings(corpora, tmp_path, v2, options, problem):
    with pytest.raises(InputError, match=problem):
        pretrain(corpora[0], out=tmp_path / "run", vocabulary=v2, **options)
