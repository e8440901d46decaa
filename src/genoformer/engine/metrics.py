"""Regression and classification metrics shared by every pillar.

Every function returns a flat dict of plain Python numbers (``float``/``int``, never numpy
scalars) so it can be written to ``metrics.json`` as is. A metric that is undefined on the
given data (a correlation of a constant, an AUROC when only one class is present) is
``float("nan")``: Python's ``json`` writes it as ``NaN``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

__all__ = [
    "as_class_arrays",
    "classification_metrics",
    "one_vs_rest",
    "per_class_metrics",
    "regression_metrics",
    "softmax",
]

REGRESSION_KEYS = ("r2", "pearson_r", "spearman_r", "mse", "mae")


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax.

    Parameters
    ----------
    logits
        Unnormalised scores; any shape.
    axis
        The class axis.

    Returns
    -------
    np.ndarray
        Probabilities (float64) that sum to 1 along ``axis``.
    """
    x = np.asarray(logits, dtype=np.float64)
    # Subtracting the max keeps exp() from overflowing; it cancels in the ratio.
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    # Hand-rolled rather than scipy.stats.pearsonr: a constant input is a normal outcome
    # here (an untrained model), and must give NaN without a warning.
    if x.size < 2:
        return float("nan")
    xc = x - x.mean()
    yc = y - y.mean()
    denom = np.sqrt(np.dot(xc, xc) * np.dot(yc, yc))
    if denom == 0 or not np.isfinite(denom):
        return float("nan")
    return float(np.clip(np.dot(xc, yc) / denom, -1.0, 1.0))


def _single_target(t: np.ndarray, p: np.ndarray) -> dict[str, float | int]:
    # Missing targets (NaN) are normal in multi-task tables: score the pairs that exist.
    keep = np.isfinite(t) & np.isfinite(p)
    t, p = t[keep], p[keep]
    n = int(t.size)
    if n == 0:
        return {**dict.fromkeys(REGRESSION_KEYS, float("nan")), "n": 0}
    err = p - t
    return {
        "r2": float(r2_score(t, p)) if n >= 2 else float("nan"),
        "pearson_r": _pearson(t, p),
        "spearman_r": _pearson(rankdata(t), rankdata(p)),
        "mse": float(np.mean(err**2)),
        "mae": float(np.mean(np.abs(err))),
        "n": n,
    }


def regression_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    target_names: Sequence[str] | None = None,
) -> dict[str, float | int]:
    """R2, Pearson and Spearman correlation, MSE and MAE of predictions.

    Parameters
    ----------
    y_true, y_pred
        Shape ``(N,)`` or ``(N, T)`` for ``T`` targets. Pairs where either value is not
        finite are left out (per target).
    target_names
        Names of the ``T`` targets, used as key suffixes; default ``"0"``, ``"1"``, ...

    Returns
    -------
    dict
        Single target: ``r2, pearson_r, spearman_r, mse, mae, n``. Several targets: those
        keys per target as ``r2_<name>`` ... ``n_<name>``, plus the unsuffixed keys holding
        the mean over targets (ignoring undefined ones) and ``n`` the number of rows.
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    # (N,) against (N, 1) is the usual mismatch between labels and a model's output.
    t = t.reshape(len(t), -1) if t.ndim == 1 else t
    p = p.reshape(len(p), -1) if p.ndim == 1 else p
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(
            f"y_true {np.shape(y_true)} and y_pred {np.shape(y_pred)} must have the same "
            "shape, (N,) or (N, targets)"
        )
    n_targets = t.shape[1]
    if n_targets == 1:
        return _single_target(t[:, 0], p[:, 0])

    names = [str(i) for i in range(n_targets)] if target_names is None else list(target_names)
    if len(names) != n_targets:
        raise ValueError(f"{len(names)} target_names for {n_targets} targets")
    per_target = [_single_target(t[:, j], p[:, j]) for j in range(n_targets)]
    out: dict[str, float | int] = {}
    for key in REGRESSION_KEYS:
        values = np.array([m[key] for m in per_target], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[key] = float(finite.mean()) if finite.size else float("nan")
    out["n"] = int(t.shape[0])
    for name, m in zip(names, per_target, strict=True):
        for key, value in m.items():
            out[f"{key}_{name}"] = value
    return out


def as_class_arrays(y_true: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate class labels and class probabilities.

    Parameters
    ----------
    y_true
        Integer class indices, shape ``(N,)``.
    probabilities
        Shape ``(N, C)``; or ``(N,)`` for a binary task, read as the probability of class 1.

    Returns
    -------
    tuple of np.ndarray
        ``y`` as int64 ``(N,)`` and ``probabilities`` as float64 ``(N, C)``.
    """
    y = np.asarray(y_true)
    prob = np.asarray(probabilities, dtype=np.float64)
    if prob.ndim == 1:
        prob = np.stack([1.0 - prob, prob], axis=1)
    if y.ndim != 1 or prob.ndim != 2 or len(y) != len(prob):
        raise ValueError(
            f"y_true {np.shape(y_true)} must be (N,) and probabilities "
            f"{np.shape(probabilities)} (N, classes) with the same N"
        )
    if len(y) == 0:
        raise ValueError("no samples to score")
    if y.dtype.kind == "f":
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("y_true must hold integer class indices")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iub":
        raise ValueError(f"y_true must hold integer class indices, not {y.dtype}")
    y = y.astype(np.int64)
    n_classes = prob.shape[1]
    if n_classes < 2:
        raise ValueError("probabilities need at least 2 class columns")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"y_true has class indices outside 0..{n_classes - 1}")
    return y, prob


def one_vs_rest(
    y_true: np.ndarray, probabilities: np.ndarray
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """The binary problems that ROC and precision-recall are computed on.

    Binary tasks give one problem (class 1 against class 0); multi-class tasks one per
    class, that class against the rest. Classes absent from ``y_true``, or equal to all of
    it, have no ROC curve and are left out.

    Returns
    -------
    list of (class index, is_class bool array, score array)
    """
    y, prob = as_class_arrays(y_true, probabilities)
    classes = [1] if prob.shape[1] == 2 else range(prob.shape[1])
    problems = []
    for c in classes:
        is_c = y == c
        if 0 < is_c.sum() < len(y):
            problems.append((c, is_c, prob[:, c]))
    return problems


def _class_names(classes: Sequence[str] | None, n_classes: int) -> list[str]:
    names = [str(i) for i in range(n_classes)] if classes is None else [str(c) for c in classes]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names for {n_classes} probability columns")
    return names


def _mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def classification_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    *,
    classes: Sequence[str] | None = None,
) -> dict[str, object]:
    """Accuracy, F1, precision, recall, AUROC, AUPRC and the confusion matrix.

    Parameters
    ----------
    y_true
        Integer class indices, shape ``(N,)``.
    probabilities
        Class probabilities (e.g. :func:`softmax` of logits), shape ``(N, C)``; the predicted
        class is the arg-max. For ``C == 2`` column 1 is the positive-class score.
    classes
        Class names (length ``C``) for per-class keys and the ``classes`` entry.

    Returns
    -------
    dict
        ``accuracy, macro_f1, precision, recall, auroc, auprc, confusion_matrix, classes, n``.
        Binary: precision/recall of class 1. Multi-class: macro averages over the classes
        present in truth or prediction; AUROC/AUPRC are one-vs-rest macro averages over the
        classes present in ``y_true``, with ``auroc_<class>``/``auprc_<class>`` per class.
        ``confusion_matrix[i][j]`` counts true class ``i`` predicted as ``j``.
    """
    y, prob = as_class_arrays(y_true, probabilities)
    n_classes = prob.shape[1]
    names = _class_names(classes, n_classes)
    pred = prob.argmax(axis=1)
    binary = n_classes == 2
    # Macro averages over classes that never occur would add spurious zeros.
    present = np.union1d(y, pred)
    average = {"average": "binary", "pos_label": 1} if binary else {"average": "macro"}
    out: dict[str, object] = {
        "accuracy": float(np.mean(pred == y)),
        "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0)),
        "precision": float(
            precision_score(y, pred, labels=None if binary else present, zero_division=0, **average)
        ),
        "recall": float(
            recall_score(y, pred, labels=None if binary else present, zero_division=0, **average)
        ),
    }
    aurocs: list[float] = []
    auprcs: list[float] = []
    per_class: dict[str, float] = {}
    for c, is_c, score in one_vs_rest(y, prob):
        aurocs.append(float(roc_auc_score(is_c, score)))
        auprcs.append(float(average_precision_score(is_c, score)))
        if not binary:
            per_class[f"auroc_{names[c]}"] = aurocs[-1]
            per_class[f"auprc_{names[c]}"] = auprcs[-1]
    out["auroc"] = _mean_or_nan(aurocs)
    out["auprc"] = _mean_or_nan(auprcs)
    if not aurocs:
        held = sorted({names[c] for c in np.unique(y)})
        out["note"] = (
            f"AUROC and AUPRC are undefined: the {len(y):,} sequences scored hold only "
            f"{', '.join(held)}; score more, of every class"
        )
        warnings.warn(out["note"], stacklevel=2)
    out.update(per_class)
    out["confusion_matrix"] = confusion_matrix(y, pred, labels=np.arange(n_classes)).tolist()
    out["classes"] = names
    out["n"] = int(len(y))
    return out


def per_class_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, *, classes: Sequence[str] | None = None
) -> list[dict[str, object]]:
    """Precision, recall, F1 and support of each class (the arg-max is the prediction).

    Returns
    -------
    list of dict
        One ``{class, precision, recall, f1, support, predicted}`` per class, in class order;
        a class never predicted (or never true) has precision (recall) 0.
    """
    y, prob = as_class_arrays(y_true, probabilities)
    names = _class_names(classes, prob.shape[1])
    pred = prob.argmax(axis=1)
    labels = np.arange(prob.shape[1])
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    predicted = np.bincount(pred, minlength=prob.shape[1])
    return [
        {
            "class": names[c],
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(support[c]),
            "predicted": int(predicted[c]),
        }
        for c in labels
    ]
