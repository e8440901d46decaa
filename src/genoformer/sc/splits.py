"""Cell labels and splits for classification: sorted label ids, class filtering, stratified
and grouped splits, k-fold cross-validation.

Label ids are the class names in sorted order (``0`` the first name), so a run's
``id2label`` does not depend on the order cells come in or on Python's hash seed (which
reorders a ``set``). Splits are stratified by class (each split keeps the class shares) and,
given a group attribute (donor, sample, batch), grouped: every cell of a group is in one
split, so that a model is never tested on a donor it was trained on. The folds come from
scikit-learn's ``StratifiedKFold`` / ``StratifiedGroupKFold``, seeded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError

__all__ = ["CellLabels", "Fold", "cell_folds", "cell_labels", "gene_folds"]


@dataclass(frozen=True)
class CellLabels:
    """The labelled cells a classifier trains on.

    Attributes
    ----------
    classes
        Class names, sorted; a cell's label id is its class's index here.
    rows
        The corpus rows kept (ascending).
    codes
        The label id of each kept row.
    dropped
        Cells left out, by reason (``unlabelled``, ``not_a_chosen_state``, ``rare_class``,
        ``over_class_cap``).
    """

    classes: list[str]
    rows: np.ndarray
    codes: np.ndarray
    dropped: dict[str, int]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.classes))

    def counts(self) -> dict[str, int]:
        counts = np.bincount(self.codes, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts, strict=True)}


def _as_names(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each value as a class name, and which values are labels at all (not missing/empty)."""
    present = values.notna().to_numpy()
    names = values.astype(str).to_numpy()
    present &= names != ""
    return names, present


def cell_labels(
    values: pd.Series,
    *,
    source: Any = None,
    attribute: str = "label",
    states: list[str] | tuple[str, ...] | None = None,
    rare_threshold: float = 0.0,
    max_cells_per_class: int | None = None,
    seed: int = 0,
) -> CellLabels:
    """The cells to classify and their label ids, after the class filters.

    Parameters
    ----------
    values
        The label attribute of every corpus cell (missing values leave the cell out).
    source, attribute
        The corpus and the attribute, for error messages.
    states
        Keep only cells of these classes (None: all).
    rare_threshold
        Leave out classes holding less than this share of the (kept) cells, as Geneformer's
        ``rare_threshold``.
    max_cells_per_class
        Keep at most this many cells of each class, chosen by ``seed``.

    Raises
    ------
    InputError
        A chosen state that no cell has, or fewer than two classes left.
    """
    names, keep = _as_names(values)
    dropped = {"unlabelled": int((~keep).sum())}
    if states is not None:
        wanted = [str(s) for s in states]
        missing = sorted(set(wanted) - set(names[keep]))
        if missing:
            raise InputError(
                f"no cell has {attribute} {missing[0]!r} (it has: "
                + ", ".join(sorted(set(names[keep]))[:20])
                + ")",
                file=source,
                where=attribute,
                fix="choose states among those values",
            )
        chosen = np.isin(names, wanted) & keep
        dropped["not_a_chosen_state"] = int(keep.sum() - chosen.sum())
        keep = chosen
    if rare_threshold > 0:
        classes, counts = np.unique(names[keep], return_counts=True)
        rare = classes[counts < rare_threshold * keep.sum()]
        is_rare = np.isin(names, rare) & keep
        dropped["rare_class"] = int(is_rare.sum())
        keep &= ~is_rare
    rows = np.flatnonzero(keep)
    if max_cells_per_class is not None:
        rows = _capped(rows, names[rows], max_cells_per_class, seed)
        dropped["over_class_cap"] = int(keep.sum() - rows.size)
    classes = sorted(set(names[rows]))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "no labelled cell"
        left_out = ", ".join(f"{k} {v:,}" for k, v in dropped.items() if v)
        raise InputError(
            f"{attribute} leaves {found} to classify ({rows.size:,} cells"
            + (f"; left out: {left_out})" if left_out else ")"),
            file=source,
            where=attribute,
            fix="classify an attribute with two or more classes (or loosen --state / "
            "--rare-threshold)",
        )
    lookup = {name: i for i, name in enumerate(classes)}
    codes = np.array([lookup[name] for name in names[rows]], dtype=np.int64)
    return CellLabels(classes, rows, codes, dropped)


def _capped(rows: np.ndarray, names: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """At most ``cap`` rows of each class, drawn by ``seed`` (class by class, sorted)."""
    if cap < 1:
        raise InputError(
            f"max_cells_per_class is {cap}", where="max_cells_per_class", fix="use 1 or more"
        )
    rng = np.random.default_rng(seed)
    kept = []
    for name in sorted(set(names)):
        members = rows[names == name]
        if members.size > cap:
            members = rng.choice(members, size=cap, replace=False)
        kept.append(members)
    return np.sort(np.concatenate(kept))


@dataclass(frozen=True)
class Fold:
    """One training run of a split: indices into :class:`CellLabels` (not corpus rows)."""

    name: str
    train: np.ndarray
    eval: np.ndarray
    test: np.ndarray


def _parts(codes: np.ndarray, groups: np.ndarray | None, n_parts: int, seed: int) -> np.ndarray:
    """The part (0 .. n_parts-1) of every cell: stratified by class, grouped when given."""
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    part = np.zeros(len(codes), dtype=np.int64)
    if len(codes) < 2:
        return part
    index = np.zeros(len(codes))
    with warnings.catch_warnings():
        # A class with fewer cells than parts is spread as far as it goes (checked before
        # the folds of a cross-validation, where it matters).
        warnings.simplefilter("ignore", UserWarning)
        largest = int(np.bincount(codes).max()) if len(codes) else 0
        if groups is None and largest < 2:
            # Every class a single cell (a few cells left to split): nothing to stratify.
            splitter = KFold(max(2, min(n_parts, len(codes))), shuffle=True, random_state=seed)
            splits = splitter.split(index)
        elif groups is None:
            # scikit-learn refuses more parts than the largest class has cells.
            splitter = StratifiedKFold(min(n_parts, largest), shuffle=True, random_state=seed)
            splits = splitter.split(index, codes)
        else:
            splitter = StratifiedGroupKFold(n_parts, shuffle=True, random_state=seed)
            splits = splitter.split(index, codes, groups)
        for k, (_, held) in enumerate(splits):
            part[held] = k
    return part


def _share_parts(share: float, what: str) -> int:
    if not 0 < share < 1:
        raise InputError(f"{what} is {share}", where=what, fix="use a share between 0 and 1")
    return max(2, round(1 / share))


def _held_part(
    codes: np.ndarray, groups: np.ndarray | None, share: float, seed: int, what: str
) -> np.ndarray:
    """A mask of the cells in one part of ``round(1 / share)``: a share held out."""
    n_parts = _share_parts(share, what)
    if groups is not None:
        n_groups = np.unique(groups).size
        if n_groups < 2:
            raise InputError(
                f"the cells to split for {what} come from one group only",
                where=what,
                fix="give cells of more groups, fewer folds, or no --group-by",
            )
        n_parts = min(n_parts, n_groups)
    return _parts(codes, groups, n_parts, seed) == 0


def cell_folds(
    labels: CellLabels,
    *,
    groups: np.ndarray | None = None,
    folds: int = 1,
    test_share: float = 0.2,
    eval_share: float = 0.1,
    seed: int = 0,
    source: Any = None,
    group_by: str | None = None,
) -> list[Fold]:
    """The training runs of a classification: one split, or ``folds`` cross-validation folds.

    With ``folds=1`` the test cells are one of ``round(1 / test_share)`` stratified parts;
    with ``folds=k`` each of ``k`` stratified parts is one fold's test cells. From the other
    cells of each fold, one of ``round(1 / eval_share)`` parts is the validation split
    (early stopping, best checkpoint). With ``groups`` (one value per cell of ``labels``)
    every part is a union of whole groups.

    Raises
    ------
    InputError
        A class with fewer cells than folds; a group attribute with one group (or fewer
        groups than folds).
    """
    codes = labels.codes
    if groups is not None:
        groups = pd.factorize(pd.Series(groups).astype(str), sort=True)[0]
        n_groups = int(np.unique(groups).size)
        needed = max(folds, 2) + 1
        if n_groups < needed:
            raise InputError(
                f"{group_by} puts the {len(codes):,} cells in {n_groups} group"
                f"{'s' if n_groups != 1 else ''}: a grouped split needs at least {needed} "
                f"(training, validation and test{' folds' if folds > 1 else ''})",
                file=source,
                where=group_by,
                fix="group by an attribute with more values (donor, sample, batch), use fewer "
                "--folds, or leave out --group-by",
            )
    if folds > 1:
        counts = labels.counts()
        small = {name: n for name, n in counts.items() if n < folds}
        if small:
            name, n = min(small.items(), key=lambda item: item[1])
            raise InputError(
                f"class {name!r} has {n} cell{'s' if n != 1 else ''}, fewer than the {folds} "
                f"folds ({len(small)} class{'es' if len(small) > 1 else ''} so)",
                file=source,
                where="folds",
                fix=f"use --folds {max(2, min(counts.values()))} or fewer, leave such classes out "
                "(--rare-threshold, --state), or give more cells",
            )
        part = _parts(codes, groups, folds, seed)
    elif folds == 1:
        part = np.where(_held_part(codes, groups, test_share, seed, "test_share"), 0, 1)
    else:
        raise InputError(f"folds is {folds}", where="folds", fix="use 1 (one split) or more")
    result = []
    for k in range(folds):
        test = np.flatnonzero(part == k) if folds > 1 else np.flatnonzero(part == 0)
        rest = np.flatnonzero(part != k) if folds > 1 else np.flatnonzero(part != 0)
        rest_groups = None if groups is None else groups[rest]
        held = _held_part(codes[rest], rest_groups, eval_share, seed + 1 + k, "eval_share")
        name = f"fold_{k}" if folds > 1 else "split"
        fold = Fold(name, rest[~held], rest[held], test)
        if not (len(fold.train) and len(fold.eval) and len(fold.test)):
            raise InputError(
                f"{len(codes):,} cells are too few to split into training, validation and "
                f"test cells ({name}: {len(fold.train)}, {len(fold.eval)}, {len(fold.test)})",
                file=source,
                where="folds",
                fix="give more cells, or fewer --folds",
            )
        result.append(fold)
    return result


def gene_folds(
    codes: np.ndarray,
    *,
    folds: int,
    eval_share: float = 0.1,
    seed: int = 0,
) -> list[Fold]:
    """Cross-validation by gene: ``folds`` stratified parts of the genes (``codes``: each
    gene's class id), each one fold's test genes; from the other genes of each fold, one of
    ``round(1 / eval_share)`` stratified parts validates (early stopping). A fold's test and
    validation genes are never labelled in its training. Indices are into ``codes``."""
    part = _parts(codes, None, folds, seed)
    result = []
    for k in range(folds):
        test, rest = np.flatnonzero(part == k), np.flatnonzero(part != k)
        held = _held_part(codes[rest], None, eval_share, seed + 1 + k, "eval_share")
        result.append(Fold(f"fold_{k}", rest[~held], rest[held], test))
    return result
