"""Baselines for the genotype model, fitted on the same samples and inputs.

- ``ridge``: ridge regression on standardised genotypes (and covariates), the penalty chosen
  by efficient leave-one-out over a grid (``RidgeCV``). With every variant standardised and
  one shared penalty this is GBLUP's best linear prediction; for case/control traits it is
  fitted on the 0/1 scale (the observed-scale GBLUP) and read as a probability, clipped.
- ``boosting``: gradient-boosted trees (``HistGradientBoosting``, early stopping).
- ``mlp``: a plain multilayer perceptron (scikit-learn, early stopping, L2 penalty) on the
  standardised trait. Where it predicts the validation samples worse than the training mean
  does (a net too large for the samples overfits), the training mean (class shares) is its
  prediction: a baseline below the mean predictor tells the user nothing.

Missing genotypes are filled with the training samples' mean dosage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genoformer.engine.errors import InputError
from genoformer.gwas.model.inputs import CohortInputs

BASELINES = ("ridge", "boosting", "mlp")
#: Ridge penalties tried, relative to the number of input columns (the GBLUP penalty is
#: m * (1 - h2) / h2 for m standardised variants: h2 from about 0.001 to 0.99).
RIDGE_GRID = np.logspace(-2, 3, 26)


class Features:
    """Training-sample statistics that turn model inputs into a standardised matrix."""

    def __init__(self, train: CohortInputs) -> None:
        G = np.where(train.missing, np.nan, train.genotypes).astype(np.float64)
        self.mean = np.nan_to_num(np.nanmean(G, axis=0), nan=0.0)
        std = np.nan_to_num(np.nanstd(G, axis=0), nan=0.0)
        std[std == 0] = 1.0
        self.std = std

    def __call__(self, inputs: CohortInputs) -> np.ndarray:
        G = np.where(inputs.missing, self.mean, inputs.genotypes)
        Z = ((G - self.mean) / self.std).astype(np.float32)
        if inputs.covariates is not None:
            Z = np.concatenate([Z, inputs.covariates.astype(np.float32)], axis=1)
        return Z


def _estimator(name: str, task: str, n_columns: int, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if name == "ridge":
        return RidgeCV(alphas=RIDGE_GRID * n_columns)
    if name == "boosting":
        kind = (
            HistGradientBoostingRegressor
            if task == "regression"
            else HistGradientBoostingClassifier
        )
        return kind(
            learning_rate=0.05,
            max_iter=300,
            max_leaf_nodes=15,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=20,
            random_state=seed,
        )
    if name == "mlp":
        kind = MLPRegressor if task == "regression" else MLPClassifier
        return kind(
            hidden_layer_sizes=(64,),
            alpha=1.0,
            learning_rate_init=1e-3,
            max_iter=200,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=10,
            random_state=seed,
        )
    raise InputError(
        f"unknown baseline '{name}'", where="baselines_to_fit", fix=f"use {', '.join(BASELINES)}"
    )


def fit_predict(
    train: CohortInputs,
    test: CohortInputs,
    *,
    task: str,
    names: Sequence[str] = BASELINES,
    seed: int = 0,
    validation: CohortInputs | None = None,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Fit each baseline on ``train`` and predict ``test``.

    Returns
    -------
    dict
        Per baseline: predicted values ``[n]`` (regression) or class probabilities
        ``[n, 2]`` (case/control).
    list of str
        The baselines that predicted ``validation`` worse than the training mean and so
        predict the mean instead (only ``mlp`` is checked).
    """
    features = Features(train)
    X_train, X_test = features(train), features(test)
    y = np.asarray(train.y, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    to_mean: list[str] = []
    for name in names:
        estimator = _estimator(name, task, X_train.shape[1], seed)
        if name == "mlp" and task == "regression":
            from sklearn.compose import TransformedTargetRegressor
            from sklearn.preprocessing import StandardScaler

            estimator = TransformedTargetRegressor(estimator, transformer=StandardScaler())
        fitted = estimator.fit(
            X_train, y if task == "regression" or name == "ridge" else y.astype(np.int64)
        )
        if (
            name == "mlp"
            and validation is not None
            and _worse_than_mean(fitted, features(validation), validation.y, y, task)
        ):
            to_mean.append(name)
            out[name] = _mean_prediction(y, len(test.y), task)
            continue
        out[name] = _predict(fitted, X_test, task, name)
    return out, to_mean


def _predict(fitted, X: np.ndarray, task: str, name: str) -> np.ndarray:
    if task == "regression" or name == "ridge":
        predicted = fitted.predict(X).astype(np.float64)
        if task == "classification":
            case = np.clip(predicted, 0.0, 1.0)
            predicted = np.stack([1.0 - case, case], axis=1)
        return predicted
    return fitted.predict_proba(X).astype(np.float64)


def _mean_prediction(y_train: np.ndarray, n: int, task: str) -> np.ndarray:
    """The training mean (regression) or the training class shares, for ``n`` samples."""
    if task == "regression":
        return np.full(n, y_train.mean())
    case = float(np.mean(y_train == 1))
    return np.tile([1.0 - case, case], (n, 1))


def _worse_than_mean(
    fitted, X_validation: np.ndarray, y_validation, y_train: np.ndarray, task: str
) -> bool:
    """Whether ``fitted`` predicts the validation samples worse than the training mean:
    squared error (regression) or log loss (case/control)."""
    from sklearn.metrics import log_loss, mean_squared_error

    y_validation = np.asarray(y_validation, dtype=np.float64)
    mean = _mean_prediction(y_train, len(y_validation), task)
    if task == "regression":
        predicted = fitted.predict(X_validation)
        return mean_squared_error(y_validation, predicted) > mean_squared_error(y_validation, mean)
    predicted = fitted.predict_proba(X_validation)
    labels = [0, 1]
    return log_loss(y_validation, predicted, labels=labels) > log_loss(
        y_validation, mean, labels=labels
    )
