"""Gene classification: the classes file is read and checked, held-out genes are never
labelled in training, runs write per-gene probabilities, ROC and AUC per fold and pooled,
and a model pretrained on simulated cells tells marker genes from the others."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from genoformer.cli import main
from genoformer.engine.errors import InputError
from genoformer.sc.classification import predict
from genoformer.sc.gene_classification import (
    GeneClassifySettings,
    classify_genes,
    read_gene_classes,
)
from genoformer.sc.medians import gene_medians
from genoformer.sc.models import build_model, model_config
from genoformer.sc.simulate import simulate_cells
from genoformer.sc.splits import gene_folds
from genoformer.sc.tokenizer import tokenize

MICRO = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)
QUICK = dict(max_steps=3, eval_every=3, batch_size=16, learning_rate=1e-3, device="cpu")
N_GENES = 80


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """100 simulated cells of 4 types over 80 genes (8 markers a type), tokenized with
    their own medians; a classes file of marker and other genes; a micro checkpoint."""
    folder = tmp_path_factory.mktemp("genes")
    cells = simulate_cells(100, N_GENES, n_types=4, markers_per_type=8, fold_change=6.0, seed=0)
    vocabulary = gene_medians(cells, name="simulated", input_size=N_GENES)
    vocabulary_file = vocabulary.save(folder / "vocabulary.json")
    corpus = tokenize(cells, out=folder / "corpus", vocabulary=vocabulary, progress=False).run_dir
    markers = {g for genes in cells.uns["markers"].values() for g in genes}
    classes = pd.DataFrame(
        {
            "gene": cells.var_names,
            "class": ["marker" if g in markers else "other" for g in cells.var_names],
        }
    )
    classes_file = folder / "classes.tsv"
    classes.to_csv(classes_file, sep="\t", index=False)
    checkpoint = folder / "micro"
    build_model(model_config("tiny", vocabulary, **MICRO), seed=1).save_pretrained(checkpoint)
    return {
        "folder": folder,
        "cells": cells,
        "corpus": corpus,
        "vocabulary": vocabulary,
        "vocabulary_file": vocabulary_file,
        "classes": classes,
        "classes_file": classes_file,
        "checkpoint": checkpoint,
        "markers": markers,
    }


def _classify_genes(data, out, **options):
    settings = {**QUICK, "model": data["checkpoint"], "folds": 2, **options}
    options_file = settings.pop("gene_classes", data["classes_file"])
    return classify_genes(
        data["corpus"],
        out=out,
        gene_classes=options_file,
        vocabulary=data["vocabulary_file"],
        **settings,
    )


@pytest.fixture(scope="module")
def run(data):
    """A run of 2 folds, 3 steps each; the datasets each fold trained and validated on are
    in ``run.seen``."""
    import genoformer.engine.training as training

    seen, real = [], training.train_model

    def recording(model, train, held, *args, **kwargs):
        seen.append((train, held))
        return real(model, train, held, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "train_model", recording)
        result = _classify_genes(data, data["folder"] / "run")
    result.seen = seen
    return result


def _write(tmp_path, rows, name="classes.tsv"):
    path = tmp_path / name
    path.write_text("".join("\t".join(row) + "\n" for row in rows))
    return path


def _every_cell(n_tokens=200):
    return np.ones(n_tokens, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# the classes file


def test_genes_by_id_or_symbol_with_or_without_a_header(data, tmp_path):
    ids = data["cells"].var_names
    rows = [("gene", "class")] + [(ids[i], "a") for i in range(10)]
    rows += [(f"GENE{i}", "b") for i in range(10, 20)]
    found = read_gene_classes(
        _write(tmp_path, rows), data["vocabulary"], _every_cell(), GeneClassifySettings(folds=2)
    )
    assert found.classes == ["a", "b"] and found.counts() == {"a": 10, "b": 10}
    vocab = data["vocabulary"]
    assert found.tokens[10] == vocab.token_ids[ids[10]]  # the symbol GENE10 is that gene
    headless = read_gene_classes(
        _write(tmp_path, rows[1:], "headless.tsv"),
        vocab,
        _every_cell(),
        GeneClassifySettings(folds=2),
    )
    assert np.array_equal(headless.tokens, found.tokens)


def test_genes_outside_the_vocabulary_are_named_and_left_out(data, tmp_path):
    ids = data["cells"].var_names
    rows = [(ids[i], "a" if i < 10 else "b") for i in range(20)]
    rows += [("ENSG00000000001", "a"), ("NOSUCHGENE", "b")]
    with pytest.warns(UserWarning, match=r"2 of 22 genes are not in the simulated vocabulary"):
        found = read_gene_classes(
            _write(tmp_path, rows), data["vocabulary"], _every_cell(), GeneClassifySettings(folds=2)
        )
    assert found.dropped == {"not_in_vocabulary": ["ENSG00000000001", "NOSUCHGENE"]}
    assert found.counts() == {"a": 10, "b": 10}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [("g", "a")] * 0 + [("NOPE1", "a"), ("NOPE2", "a")] + [("GENE1", "b")] * 1,
            r"classes.tsv: every gene is of class 'b': a gene classifier needs two classes or "
            r"more \(2 of 3 genes are not in the simulated vocabulary \(NOPE1, NOPE2\)\)",
        ),
        (
            [(f"GENE{i}", "a") for i in range(10)] + [(f"GENE{i}", "b") for i in range(10, 19)],
            r"classes.tsv class: class 'b' has 9 genes, fewer than 5 per fold for 2 folds \(10\)",
        ),
        (
            [(f"GENE{i}", "a") for i in range(10)]
            + [(f"GENE{i}", "b") for i in range(10, 18)]
            + [("NOPE1", "b"), ("NOPE2", "b")],
            r"class 'b' has 8 genes, fewer than 5 per fold for 2 folds \(10\) \(2 of 20 genes "
            r"are not in the simulated vocabulary \(NOPE1, NOPE2\)\)",
        ),
        (
            [("GENE1", "a"), ("GENE2", "b"), ("GENE1", "b")],
            r"classes.tsv line 3: gene 'GENE1' is of class 'a' and of class 'b'",
        ),
        ([("GENE1",), ("GENE2",)], r"classes.tsv line 1: has 1 column: a gene classes file"),
    ],
)
def test_bad_gene_classes(data, tmp_path, rows, message):
    path = _write(tmp_path, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match=message):
            read_gene_classes(
                path, data["vocabulary"], _every_cell(), GeneClassifySettings(folds=2)
            )


def test_a_missing_classes_file_and_one_fold_are_refused(data, tmp_path):
    with pytest.raises(InputError, match=r"no such gene classes file"):
        _classify_genes(data, tmp_path / "run", gene_classes=tmp_path / "nope.tsv")
    with pytest.raises(InputError, match=r"folds is 1: gene classification is cross-validated"):
        _classify_genes(data, tmp_path / "run", folds=1)
    assert not (tmp_path / "run").exists()


def test_gene_folds_hold_every_gene_out_once_stratified():
    codes = np.array([0] * 30 + [1] * 60)
    folds = gene_folds(codes, folds=3, seed=0)
    tested = np.sort(np.concatenate([f.test for f in folds]))
    assert np.array_equal(tested, np.arange(90))
    for fold in folds:
        assert np.bincount(codes[fold.test]).tolist() == [10, 20]
        assert not set(fold.test) & (set(fold.train) | set(fold.eval))
        assert not set(fold.train) & set(fold.eval)


# ---------------------------------------------------------------------------------------------
# a run


def test_held_out_genes_are_never_labelled_in_training(run, data):
    table = run.table("gene_predictions")
    vocab = data["vocabulary"]
    for (train, held), fold in zip(run.seen, ["fold_0", "fold_1"], strict=True):
        test = {vocab.token_ids[g] for g in table.loc[table["fold"] == fold, "gene"]}
        labelled = {int(t) for t in np.flatnonzero(train.lookup >= 0)}
        validated = {int(t) for t in np.flatnonzero(held.lookup >= 0)}
        assert test and labelled and validated
        assert not test & labelled and not test & validated and not labelled & validated
        item = train[0]
        assert len(item["labels"]) == len(item["input_ids"])
        assert set(item["labels"][~np.isin(item["input_ids"], list(labelled))]) == {-100}


def test_a_run_writes_per_gene_probabilities_roc_and_auc(run, data):
    metrics, folder = run.metrics, run.run_dir
    assert metrics["classes"] == {"marker": 32, "other": 48} and metrics["n"] == N_GENES
    assert [f["fold"] for f in metrics["folds"]] == ["fold_0", "fold_1"]
    assert all(0 <= f["auroc"] <= 1 for f in metrics["folds"]) and 0 <= metrics["auroc"] <= 1
    table = pd.read_parquet(folder / "gene_predictions.parquet")
    tsv = pd.read_csv(folder / "gene_predictions.tsv", sep="\t")
    assert list(table.columns) == list(tsv.columns)
    assert list(table.columns[:7]) == [
        "gene",
        "gene_id",
        "class",
        "fold",
        "n_cells",
        "predicted",
        "probability",
    ]
    assert sorted(table["gene"]) == sorted(data["classes"]["gene"])
    assert (table["n_cells"] > 0).all()
    np.testing.assert_allclose(table[["p_marker", "p_other"]].sum(axis=1), 1.0, atol=1e-9)
    truth = dict(zip(data["classes"]["gene"], data["classes"]["class"], strict=True))
    assert (table["class"] == table["gene"].map(truth)).all()
    roc = pd.read_csv(folder / "roc_curves.tsv", sep="\t")
    assert set(roc["fold"]) == {"fold_0", "fold_1", "pooled"}
    for name in ("figures/roc_pr.png", "folds/fold_0/figures/roc_pr.png"):
        assert (folder / name).stat().st_size > 0
    assert (folder / "folds" / "fold_1" / "model" / "config.json").exists()


def test_a_gene_classifier_is_no_model_to_fine_tune_nor_to_predict_with(run, data, tmp_path):
    with pytest.raises(InputError, match=r"is a gene classifier \(a `sc classify-genes` run\)"):
        _classify_genes(data, tmp_path / "run", model=run.run_dir)
    with pytest.raises(InputError, match=r"is a `sc classify-genes` run, not a cell classifier"):
        predict(run.run_dir, data["corpus"], out=tmp_path / "labels")


def test_a_finished_run_resumed_reads_its_folds_back(run, data):
    again = _classify_genes(data, run.run_dir, resume=True)
    assert again.metrics["auroc"] == run.metrics["auroc"]
    assert [f["steps"] for f in again.metrics["folds"]] == [3, 3]
    with pytest.raises(InputError, match=r"holds a run of `sc classify-genes` \(complete\)"):
        _classify_genes(data, run.run_dir)


def test_the_command_line_runs_and_answers_bad_input_in_one_line(data, tmp_path, capsys):
    bad = _write(tmp_path, [("GENE1", "a"), ("GENE2", "b")])
    command = ["sc", "classify-genes", str(data["corpus"]), "--model", str(data["checkpoint"])]
    command += ["--vocabulary", str(data["vocabulary_file"]), "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as done:
        main([*command, "--gene-classes", str(bad)])
    assert done.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "class 'a' has 1 gene, fewer than 5 per fold" in error[0]


# ---------------------------------------------------------------------------------------------
# the truth: marker genes of simulated cell types against the other genes


def test_a_pretrained_model_tells_held_out_marker_genes_from_the_others(data, tmp_path):
    from genoformer.sc.pretraining import pretrain

    pretrained = tmp_path / "pretrain"
    pretrain(
        data["corpus"],
        out=pretrained,
        model=data["checkpoint"],
        vocabulary=data["vocabulary_file"],
        max_steps=40,
        eval_every=40,
        batch_size=16,
        learning_rate=5e-3,
        held_out=0.05,
        device="cpu",
    )
    result = _classify_genes(
        data,
        tmp_path / "genes",
        model=pretrained,
        max_steps=20,
        eval_every=20,
        warmup=0.0,
        learning_rate=3e-3,
    )
    # Chance is 0.5; the goal (0.9) takes a longer pretraining than a test allows
    # (bench/bench_classify_genes.py measures it).
    print(f"held-out gene AUC {result.metrics['auroc']:.3f} in {result.metrics['seconds']:.1f} s")
    assert result.metrics["auroc"] > 0.75, result.metrics["folds"]
