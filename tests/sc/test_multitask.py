"""Multi-task cell classification: one encoder, one head per label, weighted losses, per-task
scores and tables, each head usable on its own by `sc predict`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from genoformer.cli import main
from genoformer.engine.errors import InputError
from genoformer.sc.classification import classify, predict
from genoformer.sc.finetuning import CellClassifier, MultiTaskClassifier
from genoformer.sc.medians import gene_medians
from genoformer.sc.models import build_model, model_config
from genoformer.sc.simulate import simulate_cells
from genoformer.sc.tokenizer import tokenize

MICRO = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)
QUICK = dict(max_steps=3, eval_every=3, batch_size=8, learning_rate=1e-3, device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """90 simulated cells of 3 types, with a second attribute (``lineage``: types 0 and 1
    are ``A``, type 2 ``B``) and a third with gaps; a micro checkpoint."""
    folder = tmp_path_factory.mktemp("multitask")
    cells = simulate_cells(90, 100, n_types=3, markers_per_type=12, seed=2)
    types = cells.obs["cell_type"].astype(str)
    cells.obs["lineage"] = np.where(types == "type_2", "B", "A")
    gappy = np.where(np.arange(cells.n_obs) % 2 == 0, "x", "y").astype(object)
    gappy[:6] = None
    cells.obs["gappy"] = gappy
    vocabulary = gene_medians(cells, name="simulated", input_size=40)
    vocabulary_file = vocabulary.save(folder / "vocabulary.json")
    corpus = tokenize(
        cells,
        out=folder / "corpus",
        vocabulary=vocabulary,
        progress=False,
        cell_attributes=["cell_type", "lineage", "gappy"],
    ).run_dir
    checkpoint = folder / "micro"
    build_model(model_config("tiny", vocabulary, **MICRO), seed=1).save_pretrained(checkpoint)
    cells.write_h5ad(folder / "cells.h5ad")
    return {
        "folder": folder,
        "h5ad": folder / "cells.h5ad",
        "corpus": corpus,
        "vocabulary_file": vocabulary_file,
        "checkpoint": checkpoint,
    }


def _classify(data, out, label, **options):
    settings = {**QUICK, "model": data["checkpoint"], **options}
    return classify(
        data["corpus"], out=out, label=label, vocabulary=data["vocabulary_file"], **settings
    )


@pytest.fixture(scope="module")
def multi(data):
    return _classify(
        data, data["folder"] / "multi", ["cell_type", "lineage"], folds=2, task_weights=(1, 2)
    )


def test_the_loss_is_the_weighted_mean_of_the_tasks(data):
    config = json.loads((data["checkpoint"] / "config.json").read_text())
    from transformers import BertConfig

    bert = BertConfig.from_dict(config)
    bert.tasks = [
        {"attribute": "a", "classes": ["p", "q", "r"]},
        {"attribute": "b", "classes": ["s", "t"]},
    ]
    bert.task_weights = [1.0, 3.0]
    bert.pooling = "mean"
    bert.special_token_ids = []
    model = MultiTaskClassifier(bert).eval()
    ids = torch.tensor([[5, 6, 7], [8, 9, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    labels = torch.tensor([[0, 1], [2, 0]])
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, 5)
    first = F.cross_entropy(out.logits[:, :3], labels[:, 0])
    second = F.cross_entropy(out.logits[:, 3:], labels[:, 1])
    torch.testing.assert_close(out.loss, (first + 3 * second) / 4)


def test_a_multi_task_run_scores_every_task(multi):
    metrics, folder = multi.metrics, multi.run_dir
    assert set(metrics["tasks"]) == {"cell_type", "lineage"}
    assert metrics["label"] == ["cell_type", "lineage"] and metrics["task_weights"] == [1.0, 2.0]
    lineage = metrics["tasks"]["lineage"]
    assert lineage["classes"] == {"A": 60, "B": 30} and lineage["n"] == 90
    assert [f["fold"] for f in lineage["folds"]] == ["fold_0", "fold_1"]
    for task, classes in (("cell_type", ["type_0", "type_1", "type_2"]), ("lineage", ["A", "B"])):
        table = pd.read_csv(folder / "tasks" / task / "predictions.tsv", sep="\t")
        assert sorted(table["cell_index"]) == list(range(90))
        found = table[[f"p_{c}" for c in classes]].to_numpy()
        np.testing.assert_allclose(found.sum(axis=1), 1.0, atol=1e-9)
        assert metrics["tasks"][task]["accuracy"] == pytest.approx(
            (table["label"] == table["predicted"]).mean()
        )
        for name in ("per_class.tsv", "confusion_matrix.tsv", "figures/roc_pr.png"):
            assert (folder / "tasks" / task / name).exists(), name
    assert not (folder / "predictions.tsv").exists()


def test_each_head_is_a_classifier_of_its_own(multi, data, tmp_path):
    head = multi.run_dir / "folds" / "fold_0" / "tasks" / "lineage" / "model"
    single = CellClassifier.from_pretrained(head)
    assert single.config.id2label == {0: "A", 1: "B"}
    assert single.config.cell_attribute == "lineage"
    # On its own, the head gives the fold's test cells the probabilities the run gave them.
    from genoformer.sc.classification import LabelledCells, _read_cells, class_probabilities

    tokens, vocab = _read_cells(data["corpus"], data["vocabulary_file"], None)
    saved = pd.read_csv(head.parent / "predictions.tsv", sep="\t")
    cells = LabelledCells(tokens, saved["cell_index"].to_numpy(), None)
    alone = class_probabilities(single, cells, pad_id=vocab.pad_id, batch_size=32, device="cpu")
    np.testing.assert_allclose(alone, saved[["p_A", "p_B"]].to_numpy(), atol=1e-5)
    labelled = predict(
        multi.run_dir,
        data["corpus"],
        out=tmp_path / "labels",
        task="lineage",
        vocabulary=data["vocabulary_file"],
        device="cpu",
    )
    ours = pd.read_csv(labelled.outputs["predictions"], sep="\t")
    assert list(ours.columns[-2:]) == ["p_A", "p_B"] and labelled.metrics["scored_cells"] == 90
    with pytest.raises(InputError, match=r"is a multi-task run \(cell_type, lineage\) and no task"):
        predict(multi.run_dir, data["corpus"], out=tmp_path / "other")


def test_predict_on_an_h5ad_writes_labels_into_obs_and_obsm(multi, data, tmp_path):
    import anndata

    from_corpus = predict(
        multi.run_dir,
        data["corpus"],
        out=tmp_path / "corpus",
        task="lineage",
        vocabulary=data["vocabulary_file"],
        device="cpu",
    )
    # No --vocabulary: the .h5ad is tokenized with the training corpus's own.
    from_file = predict(
        multi.run_dir, data["h5ad"], out=tmp_path / "file", task="lineage", device="cpu"
    )
    ours = pd.read_csv(from_file.outputs["predictions"], sep="\t")
    theirs = pd.read_csv(from_corpus.outputs["predictions"], sep="\t")
    np.testing.assert_allclose(ours[["p_A", "p_B"]], theirs[["p_A", "p_B"]], atol=1e-6)
    assert from_file.metrics["scored_cells"] == 90
    labelled = anndata.read_h5ad(from_file.outputs["adata"])
    assert labelled.n_obs == 90 and list(labelled.uns["lineage_classes"]) == ["A", "B"]
    rows = ours["cell_index"].to_numpy()
    assert (
        labelled.obs["lineage_predicted"].astype(str).to_numpy()[rows] == ours["predicted"]
    ).all()
    np.testing.assert_allclose(labelled.obsm["lineage_probabilities"][rows], ours[["p_A", "p_B"]])
    np.testing.assert_allclose(
        labelled.obs["lineage_probability"].to_numpy()[rows], ours["probability"]
    )


def test_cells_without_every_label_are_left_out():
    from genoformer.sc.classification import ClassifySettings
    from genoformer.sc.multitask import task_labels

    columns = {
        "kind": pd.Series(["a", "b", "c", "a", "b", "c", None, "a"]),
        "side": pd.Series(["x", None, "y", "y", "x", "", "x", "y"]),
    }
    options = ClassifySettings(states=("a", "b"))
    (kind, first), (side, second) = task_labels(columns, source=None, options=options)
    assert (kind, side) == ("kind", "side")
    assert first.rows.tolist() == second.rows.tolist() == [0, 3, 4, 7]
    assert first.classes == ["a", "b"] and second.classes == ["x", "y"]
    assert second.codes.tolist() == [0, 1, 0, 1]
    assert first.dropped["unlabelled_in_a_task"] == 1


@pytest.mark.parametrize(
    ("label", "weights", "message"),
    [
        (["cell_type", "lineage"], (1.0,), r"task_weights are \[1.0\] for 2 labels"),
        (["cell_type", "lineage"], (1.0, 0.0), r"task_weights are \[1.0, 0.0\] for 2 labels"),
        (["cell_type", "cell_type"], None, r"label 'cell_type' is given twice"),
        ("cell_type", (2.0,), r"task_weights weigh the tasks of a multi-task classifier"),
        (["cell_type", "nope"], None, r"no cell attribute 'nope' in the corpus"),
    ],
)
def test_bad_tasks(data, tmp_path, label, weights, message):
    with pytest.raises(InputError, match=message):
        _classify(data, tmp_path / "run", label, task_weights=weights)
    assert not (tmp_path / "run").exists()


def test_the_command_line_takes_several_labels(data, tmp_path, capsys):
    command = ["sc", "classify", str(data["corpus"]), "--model", str(data["checkpoint"])]
    command += ["--vocabulary", str(data["vocabulary_file"]), "--out", str(tmp_path / "run")]
    command += ["--label", "cell_type", "--label", "lineage", "--task-weight", "1"]
    with pytest.raises(SystemExit) as done:
        main(command)
    assert done.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "task_weights are [1.0] for 2 labels" in error[0]
