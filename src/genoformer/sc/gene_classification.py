"""Gene classification: fine-tune a Geneformer-compatible model to tell classes of genes apart.

``genoformer sc classify-genes CORPUS --model DIR --gene-classes classes.tsv --out RUN`` is
:func:`classify_genes`, Geneformer's gene classifier (dosage-sensitive against
-insensitive transcription factors in its tutorial): a
:class:`~genoformer.sc.finetuning.GeneClassifier` (a head on every token) on the checkpoint's
encoder, trained on the cells of a corpus with each token labelled by its gene's class, and
-100 (ignored by the loss) for genes outside the classes. Cross-validation is by gene: the
genes (stratified by class) are cut into k folds; in each fold only the training genes are
labelled, the held-out genes never, so their scores say whether the model learnt what tells
the classes apart rather than the genes themselves. A held-out gene's score is its
predicted class probabilities averaged over the cells where it appears; ROC and AUC come
per fold and pooled over the folds. The fine-tuning controls (frozen layers, layer decay,
LoRA) and the Trainer set-up (warm-up, early stopping, checkpoints, ``--resume``) are the
cell classifier's own (:mod:`genoformer.sc.finetuning`).
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from genoformer.engine.docs import shared_docs
from genoformer.engine.errors import InputError, warn_input
from genoformer.engine.options import with_overrides
from genoformer.engine.runs import RunDir, RunResult, write_json, write_table
from genoformer.sc.classification import (
    GENE_COMMAND,
    CellCollator,
    FinetuneSettings,
    LabelledCells,
    _check_settings,
    _read_cells,
    _scores,
    check_out,
    fine_tune,
    finetune_run_dir,
    pretrained_encoder,
    run_arguments,
    scoring_options,
    trained_or_read_back,
)
from genoformer.sc.corpus import tokenize_record
from genoformer.sc.splits import Fold, gene_folds

if TYPE_CHECKING:
    from transformers import BertModel

    from genoformer.sc.embeddings import _Tokens
    from genoformer.sc.vocabulary import GeneVocabulary

__all__ = ["GeneClassifySettings", "classify_genes", "read_gene_classes"]

GENE_PREDICTIONS = "gene_predictions"
#: Words of a header line in a gene classes file (the first column).
_HEADER_WORDS = {"gene", "genes", "gene_id", "ensembl_id", "symbol", "gene_symbol", "gene_name"}
#: How many of the left-out genes a message names.
_NAMED = 5


@dataclass(frozen=True)
class GeneClassifySettings(FinetuneSettings):
    """How :func:`classify_genes` fine-tunes: :class:`~genoformer.sc.classification.
    FinetuneSettings` (``folds`` here is over genes, 5 by default) and these.

    Attributes
    ----------
    min_genes_per_class
        Least held-out genes of each class in each fold: a class needs ``folds`` times this
        many genes (Geneformer asks for 5).
    max_cells
        Use at most this many cells (drawn by ``seed``) for each fold's training, validation
        and scoring (Geneformer's ``max_ncells``); None: every cell holding the fold's genes.
    """

    folds: int = 5
    min_genes_per_class: int = 5
    max_cells: int | None = None


# ---------------------------------------------------------------------------------------------
# The gene classes


@dataclass(frozen=True)
class GeneClasses:
    """The genes to classify: names as given, tokens, class ids (classes sorted)."""

    classes: list[str]
    names: np.ndarray
    tokens: np.ndarray
    codes: np.ndarray
    dropped: dict[str, list[str]]

    def counts(self) -> dict[str, int]:
        counts = np.bincount(self.codes, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts, strict=True)}


def _read_table(path: Path) -> pd.DataFrame:
    """The file's gene and class columns (a header line, if any, dropped)."""
    if not path.is_file():
        raise InputError(
            "no such gene classes file",
            file=path,
            fix="give a tab-separated file of gene id or symbol, then class, a gene a line",
        )
    try:
        table = pd.read_csv(path, sep="\t", header=None, dtype=str, comment="#")
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    if table.shape[1] < 2:
        raise InputError(
            f"has {table.shape[1]} column{'s' if table.shape[1] != 1 else ''}: a gene classes "
            "file has two, gene id or symbol and class",
            file=path,
            where="line 1",
            fix="write one gene a line: its Ensembl id or symbol, a tab, its class",
        )
    table = table.iloc[:, :2].set_axis(["gene", "class"], axis=1)
    table["line"] = np.arange(1, len(table) + 1)
    if str(table["gene"].iloc[0]).strip().lower() in _HEADER_WORDS:
        table = table.iloc[1:]
    table = table.dropna()
    table["gene"] = table["gene"].str.strip()
    table["class"] = table["class"].str.strip()
    return table[(table["gene"] != "") & (table["class"] != "")]


def _one_class_each(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The table with each gene once; a gene given two classes is refused."""
    classes = table.groupby("gene", sort=False)["class"].nunique()
    twice = classes[classes > 1]
    if len(twice):
        gene = twice.index[0]
        rows = table[table["gene"] == gene]
        raise InputError(
            f"gene {gene!r} is of class {rows['class'].iloc[0]!r} and of class "
            f"{rows['class'].iloc[1]!r} (lines {rows['line'].iloc[0]} and "
            f"{rows['line'].iloc[1]}; {len(twice)} gene{'s' if len(twice) > 1 else ''} so)",
            file=path,
            where=f"line {rows['line'].iloc[1]}",
            fix="give each gene one class",
        )
    return table.drop_duplicates("gene")


def _named(names: list[str]) -> str:
    more = f", ... ({len(names) - _NAMED} more)" if len(names) > _NAMED else ""
    return ", ".join(names[:_NAMED]) + more


def read_gene_classes(
    path: str | os.PathLike,
    vocab: GeneVocabulary,
    cells_per_token: np.ndarray,
    options: GeneClassifySettings,
) -> GeneClasses:
    """The genes of a gene classes file (gene id or symbol, class) that the vocabulary has
    and the corpus's cells hold, with their classes; those left out are named.

    Raises
    ------
    InputError
        No such file, fewer than two columns, a gene of two classes, one class only, or a
        class with fewer than ``folds * min_genes_per_class`` genes once the genes outside
        the vocabulary (or outside every cell) are left out.
    """
    path = Path(path)
    table = _one_class_each(_read_table(path), path)
    found = (vocab.gene_token(g) for g in table["gene"])
    tokens = np.array([-1 if t is None else t for t in found], dtype=np.int64)
    unknown = tokens < 0
    absent = ~unknown & (cells_per_token[np.maximum(tokens, 0)] == 0)
    dropped = {
        "not_in_vocabulary": table["gene"][unknown].tolist(),
        "in_no_cell": table["gene"][absent].tolist(),
    }
    keep = ~(unknown | absent)
    repeated = pd.Series(tokens[keep]).duplicated().to_numpy()
    if repeated.any():  # a symbol and an id of one gene: its first line counts
        dropped["same_gene_twice"] = table["gene"][keep][repeated].tolist()
        keep[np.flatnonzero(keep)[repeated]] = False
    classes = sorted(set(table["class"][keep]))
    left_out = _left_out(dropped, len(table), vocab.name)
    _check_classes(table["class"][keep], classes, path, options, left_out)
    if left_out:
        warn_input(
            left_out + "; they are left out",
            file=path,
            fix="give genes of the corpus's vocabulary (ids or symbols) to classify them too",
        )
    lookup = {name: i for i, name in enumerate(classes)}
    codes = np.array([lookup[c] for c in table["class"][keep]], dtype=np.int64)
    names = table["gene"][keep].to_numpy(dtype=object)
    return GeneClasses(classes, names, tokens[keep], codes, {k: v for k, v in dropped.items() if v})


def _left_out(dropped: dict[str, list[str]], n_genes: int, vocabulary: str) -> str:
    """What was left out, in words ("" when nothing)."""
    words = {
        "not_in_vocabulary": f"not in the {vocabulary} vocabulary",
        "in_no_cell": "in no cell of the corpus",
        "same_gene_twice": "the same gene as an earlier line",
    }
    parts = [
        f"{len(names)} of {n_genes} genes are {words[key]} ({_named(names)})"
        for key, names in dropped.items()
        if names
    ]
    return "; ".join(parts)


def _check_classes(
    kept: pd.Series,
    classes: list[str],
    path: Path,
    options: GeneClassifySettings,
    left_out: str,
) -> None:
    """Two classes or more, and enough genes of each for ``folds`` held-out parts."""
    context = f" ({left_out})" if left_out else ""
    if len(classes) < 2:
        found = f"every gene is of class {classes[0]!r}" if classes else "no gene is left"
        raise InputError(
            f"{found}: a gene classifier needs two classes or more{context}",
            file=path,
            fix="give genes of two classes or more (gene id or symbol, a tab, the class)",
        )
    needed = options.folds * options.min_genes_per_class
    counts = kept.value_counts()
    small = counts[counts < needed]
    if len(small):
        name, n = small.idxmin(), int(small.min())
        raise InputError(
            f"class {name!r} has {n} gene{'s' if n != 1 else ''}, fewer than "
            f"{options.min_genes_per_class} per fold for {options.folds} folds ({needed})"
            + context,
            file=path,
            where="class",
            fix=f"give at least {needed} genes of class {name!r}, use fewer --folds (2 needs "
            f"{2 * options.min_genes_per_class}), or tokenize the cells with the vocabulary "
            "the genes belong to",
        )


# ---------------------------------------------------------------------------------------------
# Cells as training items: a label on every token


class GeneLabelledCells(LabelledCells):
    """Cells whose tokens carry their gene's class id (``labels``, -100 for the others)."""

    def __init__(self, tokens: _Tokens, rows: np.ndarray, lookup: np.ndarray) -> None:
        super().__init__(tokens, rows, None)
        self.lookup = lookup

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        item["labels"] = self.lookup[np.asarray(item["input_ids"], dtype=np.int64)]
        return item


def token_lookup(size: int, tokens: np.ndarray, values: np.ndarray, empty: int) -> np.ndarray:
    """An array over token ids: ``values`` at ``tokens``, ``empty`` elsewhere."""
    lookup = np.full(size, empty, dtype=np.int64)
    lookup[tokens] = values
    return lookup


def cells_holding(tokens: _Tokens, genes: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """The corpus rows of the cells holding any of ``genes`` (at most ``cap``, by ``seed``)."""
    hit = np.isin(tokens.values, genes)
    running = np.concatenate([[0], np.cumsum(hit)])
    rows = np.flatnonzero(running[tokens.offsets[1:]] - running[tokens.offsets[:-1]] > 0)
    if cap is not None and rows.size > cap:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=cap, replace=False))
    return rows


def gene_probabilities(
    model: Any,
    cells: LabelledCells,
    genes: np.ndarray,
    *,
    pad_id: int,
    batch_size: int,
    device: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``genes``' class probabilities averaged over the cells of ``cells`` where it
    appears, and how many cells that is."""
    import torch
    from torch.utils.data import DataLoader

    from genoformer.engine.device import pick_device

    torch_device = pick_device(device)
    model = model.to(torch_device).eval()
    size = int(model.config.vocab_size)
    lookup = torch.from_numpy(token_lookup(size, genes, np.arange(len(genes)), -1))
    sums = torch.zeros((len(genes), model.config.num_labels), dtype=torch.float64)
    counts = torch.zeros(len(genes), dtype=torch.float64)
    order = np.argsort(-cells.lengths, kind="stable")
    ordered = LabelledCells(cells.tokens, cells.rows[order], None)
    loader = DataLoader(ordered, batch_size=batch_size, collate_fn=CellCollator(pad_id))
    with torch.inference_mode():
        for batch in loader:
            inputs = {k: v.to(torch_device) for k, v in batch.items()}
            logits = model(**inputs).logits.float().cpu()
            which = lookup[batch["input_ids"]]
            which[batch["attention_mask"] == 0] = -1
            held = which >= 0
            sums.index_add_(0, which[held], torch.softmax(logits[held], dim=-1).double())
            counts.index_add_(0, which[held], torch.ones(int(held.sum()), dtype=torch.float64))
    probabilities = (sums / counts.clamp(min=1.0)[:, None]).numpy()
    return probabilities, counts.numpy().astype(np.int64)


class TokenEvalMetrics:
    """``compute_metrics``: accuracy of the labelled validation tokens at each evaluation."""

    def __call__(self, prediction: Any) -> dict[str, float]:
        predicted = np.asarray(prediction.predictions)
        labels = np.asarray(prediction.label_ids)
        labelled = labels != -100
        accuracy = (
            float((predicted[labelled] == labels[labelled]).mean()) if labelled.any() else 0.0
        )
        return {"accuracy": accuracy}


def _predicted_classes(logits: Any, labels: Any) -> Any:
    """Keep the arg-max of each token, not its logits (validation holds many tokens)."""
    return logits.argmax(dim=-1)


# ---------------------------------------------------------------------------------------------
# Training one fold


@dataclass
class _GeneData:
    """What every fold of a run shares."""

    tokens: _Tokens
    vocab: GeneVocabulary
    encoder: BertModel
    genes: GeneClasses
    pad_id: int
    origin: str
    source: str


def build_gene_classifier(data: _GeneData, options: GeneClassifySettings) -> Any:
    """A :class:`GeneClassifier` holding the encoder's weights, and its new head."""
    from genoformer.sc.finetuning import (
        GENE_CLASSIFIER_ARCHITECTURE,
        GeneClassifier,
        classifier_config,
        new_classifier,
        special_token_ids,
    )

    config = classifier_config(
        data.encoder.config,
        data.genes.classes,
        pooling="token",
        special_token_ids=special_token_ids(data.vocab),
        label="",
        vocabulary=data.vocab.name,
        architecture=GENE_CLASSIFIER_ARCHITECTURE,
    )
    config.problem_type = "token_classification"
    config.gene_classes = data.source
    return new_classifier(GeneClassifier, config, data.encoder, options)


def train_gene_fold(
    data: _GeneData, fold: Fold, out: Path, options: GeneClassifySettings
) -> dict[str, Any]:
    """Fine-tune with the fold's training genes labelled, validate on its validation genes,
    and score its held-out genes; the model goes to ``out/model``."""
    genes, size = data.genes, int(data.encoder.config.vocab_size)
    classifier = build_gene_classifier(data, options)

    def cells(which: np.ndarray, seed: int) -> GeneLabelledCells:
        rows = cells_holding(data.tokens, genes.tokens[which], options.max_cells, seed)
        lookup = token_lookup(size, genes.tokens[which], genes.codes[which], -100)
        return GeneLabelledCells(data.tokens, rows, lookup)

    train, held = cells(fold.train, options.seed), cells(fold.eval, options.seed + 1)
    tuned = fine_tune(
        classifier,
        train,
        held,
        out,
        options,
        pad_id=data.pad_id,
        compute_metrics=TokenEvalMetrics(),
        preprocess_logits_for_metrics=_predicted_classes,
    )
    trained = tuned.trained
    scored = cells(fold.test, options.seed + 2)
    probabilities, n_cells = gene_probabilities(
        tuned.model, scored, genes.tokens[fold.test], **scoring_options(options, data.pad_id)
    )
    info = {
        **tuned.parameters,
        "steps": trained.global_step,
        "train_genes": len(fold.train),
        "eval_genes": len(fold.eval),
        "test_genes": len(fold.test),
        "train_cells": len(train),
        "scored_cells": len(scored),
        "train_seconds": round(tuned.seconds, 3),
        "best_eval_loss": trained.best_eval_loss,
    }
    return {
        "probabilities": probabilities,
        "n_cells": n_cells,
        "model": trained.model_dir,
        "info": info,
    }


# ---------------------------------------------------------------------------------------------
# Tables and scores


def gene_frame(
    data: _GeneData, which: np.ndarray, probabilities: np.ndarray, n_cells: np.ndarray, fold: str
) -> pd.DataFrame:
    """One row per held-out gene: ``gene`` (as given), ``gene_id``, ``class``, ``fold``,
    ``n_cells``, ``predicted``, ``probability``, ``p_<class>``."""
    genes = data.genes
    by_token = {int(t): g for g, t in data.vocab.token_ids.items()}
    classes = np.asarray(genes.classes, dtype=object)
    best = probabilities.argmax(axis=1)
    frame = pd.DataFrame(
        {
            "gene": genes.names[which],
            "gene_id": [by_token.get(int(t), "") for t in genes.tokens[which]],
            "class": classes[genes.codes[which]],
            "fold": fold,
            "n_cells": n_cells,
            "predicted": classes[best],
            "probability": probabilities[np.arange(len(best)), best],
        }
    )
    columns = pd.DataFrame(probabilities, columns=[f"p_{name}" for name in genes.classes])
    return pd.concat([frame, columns], axis=1)


def _probabilities(table: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return table[[f"p_{name}" for name in classes]].to_numpy(np.float64)


def _codes(table: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return pd.Categorical(table["class"], categories=classes).codes.astype(np.int64)


def roc_table(table: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """ROC curve points of every fold and of the folds pooled (``fold`` ``pooled``): binary,
    the second class against the first; several classes, each against the rest."""
    from sklearn.metrics import roc_curve

    from genoformer.engine.metrics import one_vs_rest

    parts = []
    for fold, rows in [*table.groupby("fold", sort=True), ("pooled", table)]:
        for c, is_c, score in one_vs_rest(_codes(rows, classes), _probabilities(rows, classes)):
            fpr, tpr, threshold = roc_curve(is_c, score)
            parts.append(
                pd.DataFrame(
                    {
                        "fold": fold,
                        "class": classes[c],
                        "fpr": fpr,
                        "tpr": tpr,
                        "threshold": threshold,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def _fold_scores(table: pd.DataFrame, classes: list[str]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = _scores(_codes(table, classes), _probabilities(table, classes), classes)
    keep = ("accuracy", "macro_f1", "auroc", "auprc", "n")
    found = {key: scores[key] for key in keep}
    found.update({k: v for k, v in scores.items() if k.startswith("auroc_")})
    return found


def _evaluate(run: RunDir, table: pd.DataFrame, classes: list[str]) -> tuple[dict, dict]:
    """Pooled scores of every held-out gene, the ROC table, the pictures."""
    from genoformer.engine.plots import roc_pr_curves

    metrics = _fold_scores(table, classes)
    files: dict[str, Any] = {
        "gene_predictions": write_table(run.file(f"{GENE_PREDICTIONS}.parquet"), table),
        "gene_predictions_tsv": write_table(run.file(f"{GENE_PREDICTIONS}.tsv"), table),
        "roc": write_table(run.file("roc_curves.tsv"), roc_table(table, classes)),
    }
    codes, probabilities = _codes(table, classes), _probabilities(table, classes)
    files["roc_figure"] = roc_pr_curves(
        codes, probabilities, run.file("figures/roc_pr"), classes=classes
    )
    for fold, rows in table.groupby("fold", sort=True):
        if rows["class"].nunique() > 1:
            files[f"{fold}_roc_figure"] = roc_pr_curves(
                _codes(rows, classes),
                _probabilities(rows, classes),
                run.file(f"folds/{fold}/figures/roc_pr"),
                classes=classes,
            )
    return metrics, files


# ---------------------------------------------------------------------------------------------
# The public API


def _prepare(
    corpus: Path,
    model: Any,
    gene_classes: Path,
    vocabulary: Any,
    dictionaries: Any,
    options: GeneClassifySettings,
) -> tuple[_GeneData, list[Fold]]:
    """The corpus, the gene classes and folds, and the encoder, all checked before training."""
    from genoformer.sc.embeddings import _check_input_size

    if options.folds < 2:
        raise InputError(
            f"folds is {options.folds}: gene classification is cross-validated by gene",
            where="folds",
            fix="use 2 folds or more (5 is Geneformer's)",
        )
    if options.min_genes_per_class < 1:
        raise InputError(
            f"min_genes_per_class is {options.min_genes_per_class}",
            where="min_genes_per_class",
            fix="use 1 or more (5 is Geneformer's)",
        )
    tokens, vocab = _read_cells(corpus, vocabulary, dictionaries)
    size = max(len(vocab), int(tokens.values.max()) + 1)
    cells_per_token = np.bincount(tokens.values.astype(np.int64), minlength=size)
    genes = read_gene_classes(gene_classes, vocab, cells_per_token, options)
    folds = gene_folds(
        genes.codes, folds=options.folds, eval_share=options.eval_share, seed=options.seed
    )
    encoder, origin = pretrained_encoder(model, vocab, options.seed)
    _check_input_size(encoder, tokens, tokenize_record(corpus), str(model))
    pad = vocab.pad_id if vocab.pad_id is not None else int(encoder.config.pad_token_id or 0)
    source = os.path.abspath(gene_classes)
    return _GeneData(tokens, vocab, encoder, genes, pad, origin, source), folds


def _read_gene_table(saved: Path) -> pd.DataFrame:
    return pd.read_csv(saved, sep="\t", dtype={"gene": str, "gene_id": str})


def _train_and_save(
    run: RunDir, data: _GeneData, fold: Fold, saved: Path, options: GeneClassifySettings
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train one fold, write its held-out genes' table to ``saved``, record its model."""
    trained = train_gene_fold(data, fold, saved.parent, options)
    info = trained["info"]
    table = gene_frame(data, fold.test, trained["probabilities"], trained["n_cells"], fold.name)
    write_table(saved, table)
    run.record_outputs({f"{fold.name}_model": trained["model"]})
    run.record_results(fold.name, info)
    return table, info


def _run_folds(
    run: RunDir, data: _GeneData, folds: list[Fold], options: GeneClassifySettings
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Train every fold (a finished fold of a resumed run is read back) and score it."""
    tables, per_fold = [], []
    for fold in folds:
        saved = run.path / "folds" / fold.name / f"{GENE_PREDICTIONS}.tsv"
        table, info = trained_or_read_back(
            run,
            fold,
            [saved],
            functools.partial(_read_gene_table, saved),
            functools.partial(_train_and_save, run, data, fold, saved, options),
        )
        tables.append(table)
        per_fold.append({"fold": fold.name, **_fold_scores(table, data.genes.classes), **info})
    return pd.concat(tables, ignore_index=True), per_fold


@shared_docs
def classify_genes(
    corpus: str | os.PathLike,
    *,
    out: str | os.PathLike,
    model: str | os.PathLike,
    gene_classes: str | os.PathLike,
    vocabulary: GeneVocabulary | str | os.PathLike | None = None,
    dictionaries: str | os.PathLike | None = None,
    settings: GeneClassifySettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Fine-tune a Geneformer-compatible model to classify genes, cross-validated by gene.

    Parameters
    ----------
    corpus
        A corpus directory (``genoformer sc tokenize``, or Geneformer's tokenizer).
    out
        The run directory: ``folds/fold_<k>/model/`` (and ``checkpoints/``, loss curves,
        ``gene_predictions.tsv``, ``figures/roc_pr``), ``gene_predictions.parquet`` /
        ``.tsv`` (every gene, scored in the fold that held it out), ``roc_curves.tsv``,
        ``figures/roc_pr``, ``metrics.json``.
    model
        A Geneformer checkpoint directory, a ``sc pretrain`` run (or its ``model/``), or a
        preset initialised at random.
    gene_classes
        A tab-separated file: gene (Ensembl id or symbol), class; a header line is allowed.
    {corpus_vocabulary}
    {settings:GeneClassifySettings}

    Returns
    -------
    RunResult
        ``metrics``: ``auroc``, ``accuracy``, ``macro_f1`` of every held-out gene (pooled),
        ``folds`` (each fold's), ``auroc_mean`` / ``auroc_sd``, genes per class, the genes
        left out, trainable and total parameters, seconds.
    """
    start = time.perf_counter()
    options = with_overrides(GeneClassifySettings, settings, overrides, "classify_genes")
    _check_settings(options)
    corpus, out, gene_classes = Path(corpus), Path(out), Path(gene_classes)
    inputs = {"gene_classes": os.path.abspath(gene_classes)}
    arguments = run_arguments(corpus, out, model, inputs, vocabulary, dictionaries, options)
    check_out(out, arguments, options, "gene classification")
    data, folds = _prepare(corpus, model, gene_classes, vocabulary, dictionaries, options)
    run = finetune_run_dir(out, GENE_COMMAND, arguments, options)
    table, per_fold = _run_folds(run, data, folds, options)
    with run.step("evaluate"):
        metrics, outputs = _evaluate(run, table, data.genes.classes)
    aurocs = np.array([f["auroc"] for f in per_fold], dtype=np.float64)
    last = per_fold[-1]
    metrics.update(
        auroc_mean=float(np.nanmean(aurocs)) if np.isfinite(aurocs).any() else None,
        auroc_sd=float(np.nanstd(aurocs, ddof=1)),
        folds=per_fold,
        classes=data.genes.counts(),
        dropped_genes={
            k: {"n": len(v), "first": v[:_NAMED]} for k, v in data.genes.dropped.items()
        },
        vocabulary=data.vocab.name,
        model=data.origin,
        trainable_parameters=last.get("trainable_parameters"),
        total_parameters=last.get("total_parameters"),
        train_seconds=round(sum(f.get("train_seconds", 0.0) for f in per_fold), 3),
        seconds=round(time.perf_counter() - start, 3),
    )
    outputs["metrics"] = write_json(out / "metrics.json", metrics)
    run.record_results("classify_genes", metrics)
    return run.finish(metrics, outputs)
