"""Metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from genoformer.engine.metrics import classification_metrics, regression_metrics, softmax


def _plain(value: object) -> bool:
    """True if value is built only from plain Python numbers, strings and lists."""
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return type(value) in (int, float, str)


def test_softmax_is_stable_and_exact():
    probs = softmax(np.array([[1000.0, 1001.0], [0.0, 0.0]]))
    e = math.e
    np.testing.assert_allclose(probs[0], [1 / (1 + e), e / (1 + e)])
    np.testing.assert_allclose(probs[1], [0.5, 0.5])
    np.testing.assert_allclose(softmax(np.zeros((3, 4)), axis=0).sum(axis=0), 1.0)


def test_regression_perfect_prediction():
    y = np.array([0.5, 1.0, 3.0, -2.0])
    m = regression_metrics(y, y.copy())
    assert m == {"r2": 1.0, "pearson_r": 1.0, "spearman_r": 1.0, "mse": 0.0, "mae": 0.0, "n": 4}


def test_regression_hand_computed():
    m = regression_metrics([1, 2, 3, 4], [1, 2, 3, 5])
    # SS_res = 1, SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5
    assert m["r2"] == pytest.approx(0.8)
    assert m["mse"] == pytest.approx(0.25)
    assert m["mae"] == pytest.approx(0.25)
    assert m["pearson_r"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 2, 3, 5])[0, 1])
    assert m["spearman_r"] == pytest.approx(1.0)  # monotone
    assert m["n"] == 4
    assert all(_plain(v) for v in m.values())
    json.dumps(m)


def test_regression_accepts_column_vector_and_rejects_mismatch():
    y = np.arange(5.0)
    assert regression_metrics(y, y[:, None])["r2"] == 1.0
    with pytest.raises(ValueError, match="same shape"):
        regression_metrics(y, y[:4])


def test_regression_constant_prediction_is_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert math.isnan(m["pearson_r"]) and math.isnan(m["spearman_r"])
    assert m["r2"] == pytest.approx(0.0)


def test_regression_multi_target_suffixes_means_and_missing_values():
    t = np.array([[1.0, 1.0], [2.0, np.nan], [3.0, 3.0], [4.0, 5.0]])
    p = np.array([[1.0, 2.0], [2.0, 9.0], [3.0, 3.0], [4.0, 4.0]])
    m = regression_metrics(t, p, target_names=["expr", "acc"])
    assert m["r2_expr"] == 1.0 and m["n_expr"] == 4
    assert m["n_acc"] == 3  # the NaN pair is left out
    assert m["mse_acc"] == pytest.approx((1 + 0 + 1) / 3)
    assert m["mse"] == pytest.approx((0 + 2 / 3) / 2)
    assert m["n"] == 4
    with pytest.raises(ValueError, match="target_names"):
        regression_metrics(t, p, target_names=["one"])


def test_classification_known_confusion_matrix():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), pred] = 0.8
    m = classification_metrics(y, probs, classes=["a", "b", "c"])
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class F1: a 0.5, b 0.8, c 2/3; precision: 0.5, 2/3, 1; recall: 0.5, 1, 0.5
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["recall"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["auroc_a"] == pytest.approx(roc_auc_score(y == 0, probs[:, 0]))
    assert m["auroc"] == pytest.approx(
        roc_auc_score(y, probs / probs.sum(1, keepdims=True), multi_class="ovr", average="macro")
    )
    assert m["classes"] == ["a", "b", "c"] and m["n"] == 6
    assert all(_plain(v) for v in m.values())
    json.dumps(m)


def test_classification_binary_hand_computed():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y, np.c_[1 - p1, p1])
    assert m["auroc"] == pytest.approx(0.75)
    assert m["auprc"] == pytest.approx(average_precision_score(y, p1))
    assert m["auprc"] == pytest.approx(0.8333333)
    # arg-max predicts [0, 0, 0, 1]: one true positive, no false positive
    assert m["precision"] == 1.0 and m["recall"] == 0.5
    assert m["confusion_matrix"] == [[2, 0], [1, 1]]
    assert classification_metrics(y, p1) == m  # (N,) scores read as P(class 1)


def test_classification_perfect_binary():
    y = np.array([0, 1, 1, 0, 1])
    m = classification_metrics(y, np.eye(2)[y])
    assert m["auroc"] == 1.0 and m["auprc"] == 1.0 and m["accuracy"] == 1.0
    assert m["macro_f1"] == 1.0


def test_classification_skips_classes_absent_from_truth():
    y = np.array([0, 1, 0, 1])
    probs = softmax(np.array([[2.0, 0, 1], [0, 2, 1], [1, 0, 0], [0, 1, 3]]))
    m = classification_metrics(y, probs, classes=["x", "y", "z"])
    assert "auroc_z" not in m
    expected = np.mean([roc_auc_score(y == c, probs[:, c]) for c in (0, 1)])
    assert m["auroc"] == pytest.approx(expected)
    single = classification_metrics(np.zeros(3, int), softmax(np.zeros((3, 3))))
    assert math.isnan(single["auroc"]) and math.isnan(single["auprc"])


def test_classification_rejects_bad_labels():
    with pytest.raises(ValueError, match="outside 0..1"):
        classification_metrics([0, 2], np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="integer"):
        classification_metrics([0.5, 1.0], np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="class names"):
        classification_metrics([0, 1], np.full((2, 2), 0.5), classes=["a"])


def test_one_class_scored_says_auroc_is_undefined():
    # A test split of one sequence: no ranking to score, and the result says so.
    with pytest.warns(UserWarning, match="AUROC and AUPRC are undefined: the 1 sequences"):
        m = classification_metrics(np.array([1]), np.array([[0.3, 0.7]]), classes=["a", "b"])
    assert np.isnan(m["auroc"]) and "only b" in m["note"]
