"""Multi-task cell classification: several cell attributes from one encoder.

``genoformer sc classify CORPUS --label a --label b ...`` trains a
:class:`~genoformer.sc.finetuning.MultiTaskClassifier` (one head per attribute over the same
pooled cell vector, the loss the tasks' cross-entropies weighted by ``--task-weight``). A
cell is classified when it has a label for every task; the class filters (``--state``,
``--rare-threshold``, ``--max-cells-per-class``) and the stratification of the splits
follow the first label. Each task's head is saved with the shared encoder as a
:class:`~genoformer.sc.finetuning.CellClassifier` of its own, which ``sc predict --task``
uses (and ``CellClassifier.from_pretrained`` loads).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError
from genoformer.sc.splits import CellLabels, cell_labels

if TYPE_CHECKING:
    from transformers import BertModel

    from genoformer.sc.finetuning import MultiTaskClassifier
    from genoformer.sc.vocabulary import GeneVocabulary

__all__ = ["TaskEvalMetrics", "build_multitask", "split_by_task", "task_labels", "task_weights"]

TASKS = "tasks"


def task_weights(labels: list[str], weights: tuple[float, ...] | None) -> list[float]:
    """Each task's weight in the loss (equal when None), checked against the labels."""
    if len(set(labels)) < len(labels):
        twice = next(name for name in labels if labels.count(name) > 1)
        raise InputError(
            f"label {twice!r} is given twice", where="label", fix="give each label once"
        )
    if weights is None:
        return [1.0] * len(labels)
    if len(labels) < 2:
        raise InputError(
            "task_weights weigh the tasks of a multi-task classifier, and one label is given",
            where="task_weights",
            fix="give several labels (--label a --label b), or no task weights",
        )
    if len(weights) != len(labels) or not all(w > 0 for w in weights):
        raise InputError(
            f"task_weights are {list(weights)} for {len(labels)} labels",
            where="task_weights",
            fix=f"give {len(labels)} positive weights, one per label, in the labels' order",
        )
    return [float(w) for w in weights]


def task_labels(
    columns: dict[str, pd.Series], *, source: Any, options: Any
) -> list[tuple[str, CellLabels]]:
    """Every task's labels over the same cells: those with a label for every task, after
    the class filters of the first task (the one the splits are stratified by)."""
    names = list(columns)
    first = cell_labels(
        columns[names[0]],
        source=source,
        attribute=names[0],
        states=options.states,
        rare_threshold=options.rare_threshold,
        max_cells_per_class=options.max_cells_per_class,
        seed=options.seed,
    )
    kept = np.zeros(len(columns[names[0]]), dtype=bool)
    kept[first.rows] = True
    for name in names[1:]:
        values = columns[name]
        kept &= values.notna().to_numpy() & (values.astype(str).to_numpy() != "")
    tasks = []
    for name in names:
        values = columns[name].where(kept)
        labels = cell_labels(values, source=source, attribute=name)
        dropped = dict(first.dropped)
        dropped["unlabelled_in_a_task"] = int(first.rows.size - labels.rows.size)
        tasks.append((name, CellLabels(labels.classes, labels.rows, labels.codes, dropped)))
    return tasks


def build_multitask(
    encoder: BertModel,
    tasks: list[tuple[str, CellLabels]],
    vocab: GeneVocabulary,
    options: Any,
    pooling: str,
) -> MultiTaskClassifier:
    """A :class:`MultiTaskClassifier` holding ``encoder``'s weights, a new head per task."""
    from genoformer.sc.finetuning import (
        MULTITASK_ARCHITECTURE,
        MultiTaskClassifier,
        classifier_config,
        new_classifier,
        special_token_ids,
    )

    config = classifier_config(
        encoder.config,
        tasks[0][1].classes,
        pooling=pooling,
        special_token_ids=special_token_ids(vocab),
        label=tasks[0][0],
        vocabulary=vocab.name,
        architecture=MULTITASK_ARCHITECTURE,
    )
    config.tasks = [{"attribute": name, "classes": list(labels.classes)} for name, labels in tasks]
    config.task_weights = task_weights([name for name, _ in tasks], options.task_weights)
    return new_classifier(MultiTaskClassifier, config, encoder, options)


def split_by_task(values: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """The tasks' columns of side-by-side logits or probabilities."""
    return np.split(values, np.cumsum(sizes)[:-1], axis=1)


class TaskEvalMetrics:
    """``compute_metrics``: each task's accuracy and macro F1 on the validation cells, and
    their means (``accuracy``, ``macro_f1``)."""

    def __init__(self, tasks: list[tuple[str, CellLabels]]) -> None:
        self.names = [name for name, _ in tasks]
        self.sizes = [len(labels.classes) for _, labels in tasks]

    def __call__(self, prediction: Any) -> dict[str, float]:
        from genoformer.engine.metrics import classification_metrics, softmax

        logits = split_by_task(np.asarray(prediction.predictions), self.sizes)
        labels = np.asarray(prediction.label_ids)
        found: dict[str, float] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t, name in enumerate(self.names):
                scores = classification_metrics(labels[:, t], softmax(logits[t]))
                found[f"{name}_accuracy"] = scores["accuracy"]
                found[f"{name}_macro_f1"] = scores["macro_f1"]
        for key in ("accuracy", "macro_f1"):
            found[key] = float(np.mean([found[f"{name}_{key}"] for name in self.names]))
        return found
