"""Baselines for the genotype model, fitted on the same samples.

- ``gblup``: GBLUP over every variant of the genotype file, not only the model's inputs: the
  genomic relationship matrix of all variants (standardised with the training samples'
  frequencies), covariates as fixed effects, the ridge penalty (1 - h2) / h2 chosen by exact
  leave-one-out over the training samples. It is the first row of every comparison: what a
  geneticist's whole-genome prediction reaches, which a model over screened inputs must beat.

The others see the model's own input columns:

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
from typing import Any

import numpy as np

from genoformer.engine.errors import InputError
from genoformer.gwas.model.inputs import CohortInputs

BASELINES = ("gblup", "ridge", "boosting", "mlp")
#: The baselines fitted on the model's input columns (gblup reads every variant).
ON_INPUTS = ("ridge", "boosting", "mlp")
#: GBLUP penalties tried: (1 - h2) / h2 for h2 from about 0.001 to 0.999.
GBLUP_GRID = np.logspace(-3, 3, 31)
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
    names: Sequence[str] = ON_INPUTS,
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


def gblup_all_variants(
    source: Any,
    samples: np.ndarray,
    split: np.ndarray,
    y: np.ndarray,
    covariates: np.ndarray | None,
    *,
    task: str,
    chunk_size: int = 4096,
) -> np.ndarray:
    """GBLUP over every variant of ``source`` fitted on the ``split == "train"`` samples:
    predictions of the ``split == "test"`` samples (class probabilities ``[n, 2]`` for
    case/control, the 0/1 trait's prediction clipped, as ``ridge``).

    ``samples`` are the cohort's rows in ``source``. The relationship matrix is accumulated
    chunk by chunk (memory: samples x samples, plus one chunk), each variant standardised with
    the training samples' mean and standard deviation, a missing call counted as the mean;
    monomorphic variants are left out.
    """
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    kernel = np.zeros((len(samples), len(samples)))
    used = 0
    for _, G in source.chunks(chunk_size, samples=samples):
        G = G.astype(np.float64)
        mean, std = np.nanmean(G[train], axis=0), np.nanstd(G[train], axis=0)
        keep = np.isfinite(mean) & (std > 0)
        Z = np.nan_to_num((G[:, keep] - mean[keep]) / std[keep])
        kernel += Z @ Z.T
        used += int(keep.sum())
    kernel /= max(used, 1)
    y = np.asarray(y, dtype=np.float64)
    fixed = np.ones((len(samples), 1))
    if covariates is not None and covariates.shape[1]:
        fixed = np.column_stack([fixed, covariates])
    beta = np.linalg.lstsq(fixed[train], y[train], rcond=None)[0]
    alpha = _loo_kernel_ridge(kernel[np.ix_(train, train)], y[train] - fixed[train] @ beta)
    predicted = fixed[test] @ beta + kernel[np.ix_(test, train)] @ alpha
    if task == "classification":
        case = np.clip(predicted, 0.0, 1.0)
        return np.stack([1.0 - case, case], axis=1)
    return predicted


def _loo_kernel_ridge(kernel: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Kernel ridge weights of ``residual`` with the penalty of :data:`GBLUP_GRID` whose exact
    leave-one-out error is smallest (one eigendecomposition serves every penalty)."""
    values, vectors = np.linalg.eigh(kernel)
    values = np.clip(values, 0.0, None)
    projected = vectors.T @ residual
    best, weights = np.inf, np.zeros_like(residual)
    for penalty in GBLUP_GRID:
        inverse = 1.0 / (values + penalty)
        alpha = vectors @ (inverse * projected)
        # (K + penalty I)^-1 diagonal; leave-one-out residual = alpha_i / that diagonal
        loo = np.mean((alpha / ((vectors**2) @ inverse)) ** 2)
        if loo < best:
            best, weights = loo, alpha
    return weights
