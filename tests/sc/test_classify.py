"""Cell classification: the checkpoint's weights are loaded, label ids are sorted, splits are
stratified and grouped, runs are scored and resumed, fine-tuning controls do what they say,
and bad input is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from genoformer.cli import main
from genoformer.engine.errors import InputError
from genoformer.sc.classification import (
    ClassifySettings,
    build_classifier,
    classify,
    predict,
    pretrained_encoder,
)
from genoformer.sc.finetuning import (
    CellClassifier,
    add_lora,
    freeze_layers,
    layer_decay_groups,
    parameter_counts,
)
from genoformer.sc.medians import gene_medians
from genoformer.sc.models import build_model, model_config
from genoformer.sc.simulate import simulate_cells
from genoformer.sc.splits import cell_folds, cell_labels
from genoformer.sc.tokenizer import tokenize
from genoformer.sc.vocabulary import GeneVocabulary

REPO = Path(__file__).resolve().parents[2]
#: A model small enough that a few training steps take a second or two.
MICRO = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)
#: A few steps of training: what the tests check does not need a good classifier.
QUICK = dict(max_steps=4, eval_every=2, batch_size=8, learning_rate=1e-3, device="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """120 simulated cells of 3 types from 6 donors, tokenized with their own medians, and a
    micro checkpoint for that vocabulary."""
    folder = tmp_path_factory.mktemp("classify")
    cells = simulate_cells(120, 120, n_types=3, markers_per_type=15, seed=0)
    cells.obs["donor"] = [f"donor{i % 6}" for i in range(cells.n_obs)]
    cells.obs["one_donor"] = "d0"
    vocabulary = gene_medians(cells, name="simulated", input_size=48)
    vocabulary_file = vocabulary.save(folder / "vocabulary.json")
    attributes = ["cell_type", "donor", "one_donor"]
    corpus = tokenize(
        cells,
        out=folder / "corpus",
        vocabulary=vocabulary,
        progress=False,
        cell_attributes=attributes,
    ).run_dir
    checkpoint = folder / "micro"
    build_model(model_config("tiny", vocabulary, **MICRO), seed=1).save_pretrained(checkpoint)
    return {
        "folder": folder,
        "corpus": corpus,
        "vocabulary": vocabulary,
        "vocabulary_file": vocabulary_file,
        "checkpoint": checkpoint,
    }


def _classify(data, out, **options):
    settings = {**QUICK, "model": data["checkpoint"], **options}
    return classify(
        data["corpus"],
        out=out,
        label="cell_type",
        vocabulary=data["vocabulary_file"],
        **settings,
    )


@pytest.fixture(scope="module")
def single(data):
    """One stratified split, trained a few steps."""
    return _classify(data, data["folder"] / "single")


# ---------------------------------------------------------------------------------------------
# the checkpoint's weights, sorted label ids


def test_the_encoder_holds_the_checkpoint_s_weights(data):
    encoder, origin = pretrained_encoder(data["checkpoint"], data["vocabulary"], seed=0)
    labels = cell_labels(pd.Series(["b", "a", "c", "a"]))
    classifier = build_classifier(encoder, labels, data["vocabulary"], ClassifySettings(), "x")
    saved = load_file(data["checkpoint"] / "model.safetensors")
    ours = classifier.state_dict()
    encoder_keys = [k for k in saved if k.startswith("bert.")]
    assert len(encoder_keys) > 20 and origin.startswith("checkpoint")
    for key in encoder_keys:
        torch.testing.assert_close(ours[key], saved[key], rtol=0, atol=0, msg=key)
    assert classifier.config.id2label == {0: "a", 1: "b", 2: "c"}


def test_a_pretraining_run_is_fine_tuned_from_its_model(data, tmp_path):
    from genoformer.sc.pretraining import pretrain

    settings = dict(max_steps=2, eval_every=2, batch_size=8, held_out=0.1, device="cpu")
    run = tmp_path / "pretrain"
    pretrain(
        data["corpus"],
        out=run,
        model=data["checkpoint"],
        vocabulary=data["vocabulary_file"],
        **settings,
    )
    # --overwrite replaces the earlier run.
    pretrain(
        data["corpus"],
        out=run,
        model=data["checkpoint"],
        vocabulary=data["vocabulary_file"],
        overwrite=True,
        **settings,
    )
    encoder, origin = pretrained_encoder(run, data["vocabulary"], seed=0)
    assert origin == f"checkpoint {run / 'model'}"
    saved = load_file(run / "model" / "model.safetensors")
    ours = encoder.state_dict()
    for key in (k for k in saved if k.startswith("bert.")):
        torch.testing.assert_close(ours[key.removeprefix("bert.")], saved[key], rtol=0, atol=0)


def test_a_frozen_encoder_keeps_the_checkpoint_s_weights_and_the_head_learns(data, tmp_path):
    result = _classify(data, tmp_path / "frozen", freeze_layers=2)
    saved = load_file(data["checkpoint"] / "model.safetensors")
    trained = load_file(result.run_dir / "model" / "model.safetensors")
    for key in (k for k in saved if k.startswith("bert.")):
        torch.testing.assert_close(trained[key], saved[key], rtol=0, atol=0, msg=key)
    head = CellClassifier.from_pretrained(result.run_dir / "model").classifier.weight
    assert result.metrics["trainable_parameters"] == head.numel() + head.shape[0]
    assert result.metrics["total_parameters"] > 50 * result.metrics["trainable_parameters"]


def test_label_ids_do_not_depend_on_the_hash_seed():
    code = (
        "import pandas as pd\n"
        "from genoformer.sc.splits import cell_labels\n"
        "values = pd.Series(['T cell', 'B cell', 'NK', 'Mono', 'DC', 'B cell', 'T cell'])\n"
        "print('|'.join(cell_labels(values).classes))\n"
    )
    found = set()
    for seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO / "src")}
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=environment,
            check=True,
        )
        found.add(done.stdout.strip())
    assert found == {"B cell|DC|Mono|NK|T cell"}


def test_the_run_s_config_holds_sorted_id2label(single):
    config = json.loads((single.run_dir / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "type_0", "1": "type_1", "2": "type_2"}
    assert config["architectures"] == ["CellClassifier"] and config["pooling"] == "cls"


# ---------------------------------------------------------------------------------------------
# class filters and splits


def test_class_filters():
    values = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 2 + [None] * 3 + ["d"] * 15)
    kept = cell_labels(values, rare_threshold=0.05, max_cells_per_class=20, seed=1)
    assert kept.classes == ["a", "b", "d"]
    assert kept.counts() == {"a": 20, "b": 20, "d": 15}
    assert kept.dropped == {"unlabelled": 3, "rare_class": 2, "over_class_cap": 40}
    chosen = cell_labels(values, states=["d", "a"])
    assert chosen.classes == ["a", "d"] and len(chosen.rows) == 65
    assert (np.asarray(values)[chosen.rows] == np.array(chosen.classes)[chosen.codes]).all()


def _labels(n_per_class=(40, 30, 20)):
    names = np.concatenate([[f"c{i}"] * n for i, n in enumerate(n_per_class)])
    return cell_labels(pd.Series(names))


def test_stratified_folds_test_every_cell_once_in_class_shares():
    labels = _labels()
    folds = cell_folds(labels, folds=5, seed=3)
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(labels.codes)))
    for fold in folds:
        assert not set(fold.train) & set(fold.eval) | set(fold.test) & set(fold.train)
        assert np.bincount(labels.codes[fold.test]).tolist() == [8, 6, 4]
        assert len(fold.train) + len(fold.eval) + len(fold.test) == 90


@pytest.mark.parametrize("n_folds", [1, 3])
def test_grouped_splits_never_share_a_group(n_folds):
    labels = _labels((60, 60, 60))
    rng = np.random.default_rng(0)
    groups = rng.choice([f"donor{i}" for i in range(12)], size=180)
    folds = cell_folds(labels, groups=groups, folds=n_folds, seed=0, group_by="donor")
    assert len(folds) == n_folds
    for fold in folds:
        sets = [set(groups[fold.train]), set(groups[fold.eval]), set(groups[fold.test])]
        assert all(sets), "a split without cells"
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    if n_folds > 1:
        tested = np.sort(np.concatenate([f.test for f in folds]))
        assert np.array_equal(tested, np.arange(180))


def test_classes_smaller_than_the_parts_still_split():
    # 24 cells of 8 classes, most of them 1-3 cells: fewer than round(1 / eval_share) parts.
    labels = cell_labels(pd.Series(list("aaaaaabbbbccccdddeefgh") + ["a", "b"]))
    (fold,) = cell_folds(labels, folds=1, seed=0)
    assert len(fold.test) and len(fold.eval) and len(fold.train)
    assert len(fold.train) + len(fold.eval) + len(fold.test) == 24
    with pytest.raises(InputError, match="too few to split"):
        cell_folds(cell_labels(pd.Series(["a", "b"])), folds=1)


def test_splits_depend_on_the_seed_alone():
    labels = _labels()
    one, two = cell_folds(labels, folds=3, seed=7), cell_folds(labels, folds=3, seed=7)
    other = cell_folds(labels, folds=3, seed=8)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(one, two, strict=True))
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(one, other, strict=True))


# ---------------------------------------------------------------------------------------------
# a run: scores, tables, pictures, predictions


def test_a_run_writes_scores_tables_and_pictures(single):
    run, metrics = single.run_dir, single.metrics
    for key in ("accuracy", "macro_f1", "auroc", "precision", "recall", "per_class_f1"):
        assert key in metrics, key
    assert metrics["n"] == 24 and metrics["classes"] == {"type_0": 40, "type_1": 40, "type_2": 40}
    table = pd.read_csv(run / "predictions.tsv", sep="\t")
    assert list(table.columns[:6]) == [
        "cell_id",
        "cell_index",
        "fold",
        "label",
        "predicted",
        "probability",
    ]
    probabilities = table[["p_type_0", "p_type_1", "p_type_2"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert metrics["accuracy"] == pytest.approx((table["label"] == table["predicted"]).mean())
    per_class = pd.read_csv(run / "per_class.tsv", sep="\t")
    assert per_class.columns.tolist() == [
        "class",
        "precision",
        "recall",
        "f1",
        "support",
        "predicted",
    ]
    assert per_class["support"].sum() == 24
    counts = pd.read_csv(run / "confusion_matrix.tsv", sep="\t").set_index("true")
    assert counts.to_numpy().sum() == 24
    shares = pd.read_csv(run / "confusion_matrix_normalised.tsv", sep="\t").set_index("true")
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    for name in ("confusion_counts", "confusion_normalised", "roc_pr"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 0
    assert (run / "loss_curve.png").exists()
    splits = pd.read_parquet(run / "splits.parquet")
    assert splits["split"].value_counts().to_dict() == {"train": 86, "test": 24, "eval": 10}


def test_predict_labels_cells_as_the_run_did(single, data, tmp_path):
    labelled = predict(
        single.run_dir,
        data["corpus"],
        out=tmp_path / "labels",
        device="cpu",
        vocabulary=data["vocabulary_file"],
    )
    ours = pd.read_csv(labelled.outputs["predictions"], sep="\t").set_index("cell_id")
    run = pd.read_csv(single.run_dir / "predictions.tsv", sep="\t").set_index("cell_id")
    assert len(ours) == 120 and labelled.metrics["scored_cells"] == 120
    columns = ["p_type_0", "p_type_1", "p_type_2"]
    np.testing.assert_allclose(ours.loc[run.index, columns], run[columns], atol=1e-5)
    assert (ours.loc[run.index, "predicted"] == run["predicted"]).all()


def test_cross_validation_pools_every_fold(data, tmp_path):
    result = _classify(data, tmp_path / "cv", folds=3, group_by="donor", max_steps=2)
    metrics = result.metrics
    assert [f["fold"] for f in metrics["folds"]] == ["fold_0", "fold_1", "fold_2"]
    assert metrics["n"] == 120 and "accuracy_mean" in metrics and "macro_f1_sd" in metrics
    table = pd.read_csv(result.run_dir / "predictions.tsv", sep="\t")
    assert sorted(table["cell_index"]) == list(range(120))
    splits = pd.read_parquet(result.run_dir / "splits.parquet")
    for fold in ("fold_0", "fold_1", "fold_2"):
        assert (result.run_dir / "folds" / fold / "model" / "config.json").exists()
        assert (splits["fold"] == fold).sum() == 120


# ---------------------------------------------------------------------------------------------
# resume


def _classify_until_checkpoint(data, out, *, step: int):
    command = [sys.executable, "-m", "genoformer.cli", "sc", "classify", str(data["corpus"])]
    command += ["--model", str(data["checkpoint"]), "--label", "cell_type", "--out", str(out)]
    command += ["--vocabulary", str(data["vocabulary_file"]), *RESUME_FLAGS]
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with open(f"{out}.stderr", "w") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment
        )
    marker = out / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return process, marker


RESUME = dict(max_steps=8, eval_every=4, batch_size=8, learning_rate=1e-3, device="cpu")
RESUME_FLAGS = [w for k, v in RESUME.items() for w in (f"--{k.replace('_', '-')}", str(v))]


def test_killed_classification_resumes_to_the_same_model(data, tmp_path):
    whole = _classify(data, tmp_path / "whole", **RESUME)
    killed = tmp_path / "killed"
    process, marker = _classify_until_checkpoint(data, killed, step=4)
    process.kill()
    process.wait()
    assert marker.exists(), "the run ended before its first checkpoint"
    assert not (killed / "model").exists(), "the run finished before it was killed"
    with pytest.raises(InputError, match="pass --resume"):
        _classify(data, killed, **RESUME)
    resumed = _classify(data, killed, resume=True, **RESUME)
    ours = load_file(killed / "model" / "model.safetensors")
    theirs = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=1e-5, msg=name)
    assert resumed.metrics["accuracy"] == whole.metrics["accuracy"]


# ---------------------------------------------------------------------------------------------
# fine-tuning controls


def _micro_classifier(data) -> CellClassifier:
    encoder, _ = pretrained_encoder(data["checkpoint"], data["vocabulary"], seed=0)
    labels = cell_labels(pd.Series(["a", "b", "c"]))
    return build_classifier(encoder, labels, data["vocabulary"], ClassifySettings(), "x")


def test_mean_pooling_leaves_out_cls_eos_and_padding(data):
    model = _micro_classifier(data).eval()
    model.config.pooling = "mean"
    vocab = data["vocabulary"]
    ids = torch.tensor(
        [[vocab.cls_id, 7, 8, 9, vocab.eos_id], [vocab.cls_id, 7, vocab.eos_id, 0, 0]]
    )
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    hidden = torch.randn(2, 5, 4)
    pooled = model.pool(hidden, ids, mask)
    torch.testing.assert_close(pooled[0], hidden[0, 1:4].mean(0))
    torch.testing.assert_close(pooled[1], hidden[1, 1])
    model.config.pooling = "cls"
    torch.testing.assert_close(model.pool(hidden, ids, mask), hidden[:, 0])


def test_freeze_layers_freezes_the_embeddings_and_the_first_layers(data):
    model = _micro_classifier(data)
    freeze_layers(model, 1)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("bert.embeddings.") for n in frozen)
    assert any(n.startswith("bert.encoder.layer.0.") for n in frozen)
    assert not any(n.startswith(("bert.encoder.layer.1.", "classifier.")) for n in frozen)
    with pytest.raises(InputError, match="freeze_layers is 3 for a model of 2 layers"):
        freeze_layers(model, 3)


def test_layer_decay_scales_the_learning_rate_by_depth(data):
    model = _micro_classifier(data)
    groups = layer_decay_groups(
        model, learning_rate=1e-3, weight_decay=0.01, layer_decay=0.5, n_layers=2
    )
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert rate[id(named["classifier.weight"])] == pytest.approx(1e-3)
    assert rate[id(named["bert.encoder.layer.1.output.dense.weight"])] == pytest.approx(5e-4)
    assert rate[id(named["bert.encoder.layer.0.output.dense.weight"])] == pytest.approx(2.5e-4)
    assert rate[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1.25e-4)
    assert decay[id(named["bert.encoder.layer.0.output.dense.bias"])] == 0.0
    assert decay[id(named["bert.encoder.layer.0.output.LayerNorm.weight"])] == 0.0
    assert decay[id(named["classifier.weight"])] == 0.01
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_lora_trains_adapters_and_the_head_only(data, tmp_path):
    model = _micro_classifier(data)
    full = parameter_counts(model)
    adapted = parameter_counts(add_lora(model, rank=2, alpha=4, dropout=0.0))
    assert adapted["trainable_parameters"] < full["trainable_parameters"] / 5
    result = _classify(data, tmp_path / "lora", adapters="lora", lora_rank=2, layer_decay=0.8)
    assert result.metrics["trainable_parameters"] == adapted["trainable_parameters"]
    # The saved classifier is plain (adapters merged): it loads without peft.
    loaded = CellClassifier.from_pretrained(result.run_dir / "model")
    assert not any("lora" in name for name in loaded.state_dict())


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(label="cell_typ"), r"no cell attribute 'cell_typ' in the corpus \(it has: "),
        (dict(states=("type_1",)), r"cell_type leaves only 'type_1' to classify"),
        (dict(states=("type_9",)), r"no cell has cell_type 'type_9'"),
        (dict(max_cells_per_class=3, folds=5), r"class 'type_0' has 3 cells, fewer than the 5"),
        (dict(group_by="one_donor"), r"one_donor puts the 120 cells in 1 group: a grouped"),
        (dict(group_by="donor", folds=6), r"donor puts the 120 cells in 6 groups"),
        (dict(pooling="max"), r"pooling is 'max' \(fix: use auto, cls or mean\)"),
    ],
)
def test_bad_labels_and_splits(data, tmp_path, options, message):
    settings = {**QUICK, "label": "cell_type", **options}
    with pytest.raises(InputError, match=message):
        classify(
            data["corpus"],
            out=tmp_path / "run",
            model=data["checkpoint"],
            vocabulary=data["vocabulary_file"],
            **settings,
        )
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_another_vocabulary_or_input_size(data, tmp_path):
    other = GeneVocabulary.packaged("V1")
    wrong = tmp_path / "v1_model"
    build_model(model_config("tiny", other, **MICRO), seed=0).save_pretrained(wrong)
    with pytest.raises(InputError, match="the model's vocabulary has 25,426 tokens"):
        _classify(data, tmp_path / "run", model=wrong)
    short = tmp_path / "short"
    config = model_config("tiny", data["vocabulary"], max_position_embeddings=16, **MICRO)
    build_model(config, seed=0).save_pretrained(short)
    with pytest.raises(
        InputError, match="an input size of 48 tokens but the model reads at most 16"
    ):
        _classify(data, tmp_path / "run", model=short)


def test_a_classifier_where_a_pretrained_model_is_expected_and_the_reverse(single, data, tmp_path):
    for given in (single.run_dir, single.run_dir / "model"):
        with pytest.raises(InputError, match="is a cell classifier"):
            _classify(data, tmp_path / "run", model=given)
    with pytest.raises(InputError, match="is a pretrained model, not a cell classifier"):
        predict(data["checkpoint"], data["corpus"], out=tmp_path / "labels")


def test_the_command_line_answers_bad_input_in_one_line(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(
            [
                "sc",
                "classify",
                str(data["corpus"]),
                "--model",
                str(data["checkpoint"]),
                "--label",
                "nope",
                "--vocabulary",
                str(data["vocabulary_file"]),
                "--out",
                str(tmp_path / "run"),
            ]
        )
    assert done.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "no cell attribute 'nope'" in error[0]
