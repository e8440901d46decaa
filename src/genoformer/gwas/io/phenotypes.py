"""Phenotype and covariate tables in PLINK's layout (FID IID + named columns).

A table read here is a DataFrame with ``FID`` and ``IID`` (str) first, then one column per
phenotype or covariate: float64 where every value is a number, strings otherwise (categorical
covariates); ``-9`` and ``NA`` are missing (NaN). Its index is the 1-based line number in the
file (the row number for in-memory input), so later errors can still name the line; the file
name is in ``table.attrs["path"]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genoformer.engine.errors import InputError

#: Values read as missing, as PLINK does (``--missing-phenotype`` -9, and NA/nan).
MISSING = frozenset({"-9", "-9.0", "NA", "na", "NaN", "nan", ""})
ID_COLUMNS = ("FID", "IID")


def read_table(
    path: str | os.PathLike | pd.DataFrame | np.ndarray,
    *,
    columns: list[str] | None = None,
    prefix: str = "PHENO",
) -> pd.DataFrame:
    """Read a PLINK-style phenotype or covariate table.

    Parameters
    ----------
    path
        A whitespace-separated file: ``FID IID value...`` per line, with an optional header
        whose first token is ``FID`` or ``#FID`` (or ``IID``/``#IID`` for a file without
        family ids, which is then matched on IID alone). Also a DataFrame (with ``FID``/``IID``
        columns, or ``IID`` only, or neither: then rows are taken to be in the genotype
        file's sample order) or a numpy array (rows in sample order).
    columns
        Keep only these value columns (in this order).
    prefix
        Names of value columns when there is no header, numbered from 1 as PLINK does:
        ``PHENO1, PHENO2...`` for phenotypes, pass ``"COVAR"`` for covariates.
    """
    if isinstance(path, np.ndarray):
        array = path.reshape(len(path), -1) if path.ndim == 1 else path
        frame = pd.DataFrame(array, columns=[f"{prefix}{i + 1}" for i in range(array.shape[1])])
        table = _normalise(frame, source=None, first_line=1)
    elif isinstance(path, pd.DataFrame):
        table = _normalise(path.reset_index(drop=True), source=None, first_line=1)
    else:
        table = _read_file(Path(path), prefix)
    if columns is not None:
        missing = [c for c in columns if c not in table.columns]
        if missing:
            values = [c for c in table.columns if c not in ID_COLUMNS]
            raise InputError(
                f"no column {', '.join(missing)} (columns: {', '.join(values)})",
                file=table.attrs.get("path"),
                fix="name a column from the header, or PHENO1.. / COVAR1.. without a header",
            )
        ids = [c for c in ID_COLUMNS if c in table.columns]
        table = table[ids + list(columns)]
    return table


def _read_file(path: Path, prefix: str) -> pd.DataFrame:
    if not path.exists():
        raise InputError("file not found", file=path, fix="check the path")
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = [(n, line.split()) for n, line in enumerate(handle, start=1)]
    lines = [(n, fields) for n, fields in lines if fields]
    if not lines:
        raise InputError("empty table", file=path, fix="expected FID IID and value columns")
    first = lines[0][1][0].lstrip("#").upper()
    if first in ("FID", "IID"):
        header = [f.lstrip("#") if i == 0 else f for i, f in enumerate(lines[0][1])]
        header = [h.upper() if h.lstrip("#").upper() in ID_COLUMNS else h for h in header]
        body = lines[1:]
        n_ids = 2 if first == "FID" else 1
        if n_ids == 2 and (len(header) < 2 or header[1] != "IID"):
            raise InputError(
                f"header starts with FID but the second column is {header[1:2] or 'missing'}",
                file=path,
                where=f"line {lines[0][0]}",
                fix="a PLINK header is `FID IID name1 name2 ...`",
            )
    else:
        width = len(lines[0][1])
        if width < 3:
            raise InputError(
                f"{width} columns, expected FID IID and at least one value",
                file=path,
                where=f"line {lines[0][0]}",
                fix="each line is `FID IID value...`; add a header `FID IID name...`",
            )
        header = ["FID", "IID"] + [f"{prefix}{i + 1}" for i in range(width - 2)]
        body = lines
    for number, fields in body:
        if len(fields) != len(header):
            raise InputError(
                f"{len(fields)} columns, expected {len(header)}",
                file=path,
                where=f"line {number}",
                fix="every line needs one value per header column (use NA or -9 for missing)",
            )
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise InputError(
            f"column {dup!r} appears twice in the header",
            file=path,
            where=f"line {lines[0][0]}",
            fix="give each column its own name",
        )
    frame = pd.DataFrame([fields for _, fields in body], columns=header, dtype=str)
    frame.index = pd.Index([n for n, _ in body], name="line")
    return _normalise(frame, source=path, first_line=None)


def _normalise(frame: pd.DataFrame, source: Path | None, first_line: int | None) -> pd.DataFrame:
    """IDs as str, numbers as float64 (missing -> NaN), other columns as str with None."""
    frame = frame.copy()
    rename = {c: str(c).lstrip("#").upper() for c in frame.columns}
    rename = {c: n for c, n in rename.items() if n in ID_COLUMNS}
    frame = frame.rename(columns=rename)
    if first_line is not None:
        frame.index = pd.RangeIndex(first_line, first_line + len(frame), name="row")
    out: dict[str, Any] = {}
    for column in frame.columns:
        values = frame[column]
        if column in ID_COLUMNS:
            out[column] = values.astype(str)
            continue
        out[column] = _convert(values)
    table = pd.DataFrame(out, index=frame.index)
    table.attrs["path"] = None if source is None else str(source)
    if "IID" in table.columns:
        fid = table["FID"] if "FID" in table.columns else pd.Series("", index=table.index)
        _check_unique(fid, table["IID"], source)
    return table


def _convert(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype(np.float64)
        return numbers.where(numbers != -9.0)
    text = values.astype(object).where(values.notna(), None)
    text = text.map(lambda v: None if v is None or str(v).strip() in MISSING else str(v))
    numbers = pd.to_numeric(text, errors="coerce")
    if (numbers.notna() | text.isna()).all():
        numbers = numbers.astype(np.float64)
        return numbers.where(numbers != -9.0)
    return text


def _check_unique(fid: pd.Series, iid: pd.Series, source: Path | None) -> None:
    key = fid.str.cat(iid, sep="\t")
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        second = int(np.flatnonzero(dup & (key.to_numpy() == key.iloc[first]))[1])
        lines = key.index
        label = "line" if source is not None else "row"
        raise InputError(
            f"duplicate sample id FID={fid.iloc[first]} IID={iid.iloc[first]} "
            f"({label}s {lines[first]} and {lines[second]})",
            file=source,
            where=f"{label} {lines[second]}",
            fix="each FID+IID pair may appear once; remove or merge the repeated row",
        )


def match_samples(
    source_samples: pd.DataFrame, table: pd.DataFrame
) -> tuple[np.ndarray, pd.DataFrame, int]:
    """Match a table to the genotype file's samples on FID+IID.

    Parameters
    ----------
    source_samples
        ``GenotypeSource.samples`` (columns ``fid``, ``iid``).
    table
        From :func:`read_table`. Without ``FID`` it is matched on IID alone; without either,
        its rows must already be in the genotype file's sample order.

    Returns
    -------
    sample_index
        Indices into ``source_samples`` of the samples that have a row, in genotype order.
    aligned_table
        The table's rows in that order (index: the original line numbers).
    n_dropped
        Genotype samples without a row in the table. Rows without a genotype are counted
        in ``aligned_table.attrs["n_unmatched_rows"]``.
    """
    source = table.attrs.get("path")
    if "IID" not in table.columns:
        if len(table) != len(source_samples):
            raise InputError(
                f"{len(table)} rows without sample ids, but the genotypes have "
                f"{len(source_samples)} samples",
                file=source,
                fix="give FID and IID columns, or one row per genotype sample in its order",
            )
        aligned = table.copy()
        aligned.attrs.update(table.attrs, n_unmatched_rows=0)
        return np.arange(len(table)), aligned, 0
    if "FID" in table.columns:
        genotype_key = source_samples["fid"].astype(str) + "\t" + source_samples["iid"].astype(str)
        table_key = table["FID"] + "\t" + table["IID"]
    else:
        genotype_key = source_samples["iid"].astype(str)
        table_key = table["IID"]
    position = pd.Index(table_key.to_numpy()).get_indexer(genotype_key.to_numpy())
    found = position >= 0
    sample_index = np.flatnonzero(found)
    if sample_index.size == 0:
        example = table_key.iloc[0].replace("\t", " ") if len(table) else "(empty table)"
        wanted = genotype_key.iloc[0].replace("\t", " ") if len(genotype_key) else "(none)"
        raise InputError(
            f"no sample left after matching on FID+IID (table has e.g. {example!r}, "
            f"genotypes e.g. {wanted!r})",
            file=source,
            fix="the table's FID and IID must be those of the .fam (or the VCF sample names)",
        )
    aligned = table.iloc[position[found]].copy()
    aligned.attrs.update(table.attrs, n_unmatched_rows=int(len(table) - sample_index.size))
    return sample_index, aligned, int(len(source_samples) - sample_index.size)


def _no_column(table: pd.DataFrame, name: str, what: str, first: str) -> InputError:
    """The error for a ``what`` column ``name`` that ``table`` lacks; ``first`` is the name
    of the first such column in a file without a header (``PHENO1``, ``COVAR1``)."""
    values = [c for c in table.columns if c not in ID_COLUMNS]
    return InputError(
        f"no {what} column {name!r} (columns: {', '.join(values)})",
        file=table.attrs.get("path"),
        fix=f"name a column from the header, or {first}.. without a header",
    )


def phenotype_vector(
    table: pd.DataFrame, column: str, *, kind: str | None = None
) -> tuple[np.ndarray, str]:
    """A phenotype as float64 (NaN missing) and its kind, ``"quantitative"`` or ``"binary"``.

    The kind is recognised as PLINK 2 does, unless ``kind`` forces it:

    - all non-missing values in {0, 1, 2} with both 1 and 2 present: 1/2 coding, 1 control,
      2 case, 0 missing (PLINK's default; -9 and NA are missing anyway);
    - exactly the two values {0, 1}: 0/1 coding, 0 control, 1 case;
    - anything else: quantitative.

    Binary phenotypes come back as 0.0 (control) / 1.0 (case) / NaN.
    """
    if column not in table.columns:
        raise _no_column(table, column, "phenotype", "PHENO1")
    y = _numeric(table, column, "phenotype")
    if np.isnan(y).all():
        matched = " matched to a genotype sample" if "n_unmatched_rows" in table.attrs else ""
        raise InputError(
            f"phenotype {column!r} is all missing (-9, NA or empty in each of its "
            f"{len(table):,} rows{matched})",
            file=table.attrs.get("path"),
            where=f"column {column}",
            fix="fill in the values, or choose another phenotype column",
        )
    levels = set(np.unique(y[~np.isnan(y)]).tolist())
    if kind is None:
        # plink2's rule: values in {1, 2} (0 missing) are case/control, even one of them only
        if levels <= {0.0, 1.0, 2.0} and levels & {1.0, 2.0} and levels != {0.0, 1.0}:
            kind = "binary12"
        elif levels == {0.0, 1.0}:
            kind = "binary01"
        else:
            kind = "quantitative"
    elif kind == "binary":
        kind = "binary12" if levels <= {0.0, 1.0, 2.0} and 2.0 in levels else "binary01"
    elif kind != "quantitative":
        raise ValueError(f"kind must be 'quantitative' or 'binary', got {kind!r}")
    if kind == "quantitative":
        return y, "quantitative"
    if kind == "binary12":
        y = np.where(y == 0.0, np.nan, y - 1.0)
    bad = ~np.isnan(y) & (y != 0.0) & (y != 1.0)
    if bad.any():
        raise InputError(
            f"case/control phenotype {column!r} has value {y[bad][0]:g}",
            file=table.attrs.get("path"),
            where=_place(table, int(np.flatnonzero(bad)[0])),
            fix="code case/control as 1/2 (0, -9, NA missing) or 0/1",
        )
    _check_both_classes(table, column, y, kind)
    return y, "binary"


def _check_both_classes(table: pd.DataFrame, column: str, y: np.ndarray, kind: str) -> None:
    """Refuse a case/control phenotype without cases or without controls (plink2 does)."""
    cases, controls = int((y == 1.0).sum()), int((y == 0.0).sum())
    if cases and controls:
        return
    control, case = ("1", "2") if kind == "binary12" else ("0", "1")
    have = f"{cases:,} cases and no controls" if cases else f"{controls:,} controls and no cases"
    raise InputError(
        f"case/control phenotype {column!r} has {have} (1/2 coding: 1 control, 2 case; 0/1 "
        "coding: 0 control, 1 case)",
        file=table.attrs.get("path"),
        where=f"column {column}",
        fix=f"a case/control test needs both: code controls as {control} and cases as {case}, "
        "or choose a quantitative phenotype",
    )


def covariate_matrix(
    table: pd.DataFrame, columns: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Covariates as a float64 matrix (NaN missing) and its column names.

    Numeric columns are used as they are. A non-numeric column is categorical: one 0/1 column
    per level except the first in sorted order (the reference level), named ``column=level``;
    a missing value gives NaN in all of its columns.
    """
    names = [c for c in table.columns if c not in ID_COLUMNS] if columns is None else columns
    blocks: list[np.ndarray] = []
    out_names: list[str] = []
    for name in names:
        if name not in table.columns:
            raise _no_column(table, name, "covariate", "COVAR1")
        values = table[name]
        if pd.api.types.is_numeric_dtype(values):
            blocks.append(values.to_numpy(dtype=np.float64)[:, None])
            out_names.append(name)
            continue
        _check_categorical(table, name)
        missing = values.isna().to_numpy()
        levels = sorted(values[~missing].astype(str).unique())
        text = values.astype(str).to_numpy()
        for level in levels[1:]:
            column = (text == level).astype(np.float64)
            column[missing] = np.nan
            blocks.append(column[:, None])
            out_names.append(f"{name}={level}")
    if not blocks:
        return np.empty((len(table), 0), dtype=np.float64), []
    return np.hstack(blocks), out_names


def _check_categorical(table: pd.DataFrame, name: str) -> None:
    """Refuse a covariate column that mixes numbers and text, as plink2 does: the first
    value says whether the column is numeric or categorical (a numeric column with one typo
    would otherwise become one 0/1 column per distinct number)."""
    values = table[name]
    present = values.notna().to_numpy()
    number = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    if not (number & present).any():
        return
    first = int(np.flatnonzero(present)[0])
    odd = np.flatnonzero(present & (number != number[first]))
    if odd.size == 0:
        return
    row = int(odd[0])
    value = values.iloc[row]
    if number[first]:
        problem = f"covariate {name!r} is numeric, but has the text value {value!r}"
        fix = "correct the value, or write NA (or -9) for a missing one"
    else:
        problem = f"covariate {name!r} is categorical (text), but has the number {value!r}"
        fix = "give a categorical covariate's levels as names that are not numbers (e.g. batch3)"
    raise InputError(
        f"{problem} (the first value, {_place(table, first)}, is {values.iloc[first]!r})",
        file=table.attrs.get("path"),
        where=_place(table, row),
        fix=fix,
    )


def sample_phenotype(
    samples: pd.DataFrame, pheno: Any, column: str | None
) -> tuple[np.ndarray, str, str, int]:
    """A phenotype in the genotype file's sample order (NaN for samples without a row).

    ``pheno`` is anything :func:`read_table` reads; ``column`` the phenotype (default: the
    first value column). Returns the values (0/1 for case/control), the kind, the column
    and how many genotype samples have no row.
    """
    table = read_table(pheno)
    values = [c for c in table.columns if c not in ID_COLUMNS]
    if column is None and not values:
        raise InputError("no phenotype column", file=table.attrs.get("path"), fix="add one")
    column = column or values[0]
    if column not in table.columns:
        raise _no_column(table, column, "phenotype", "PHENO1")
    index, aligned, n_dropped = match_samples(samples, table)
    y, kind = phenotype_vector(aligned, column)
    full = np.full(len(samples), np.nan)
    full[index] = y
    return full, kind, column, n_dropped


def sample_covariates(
    samples: pd.DataFrame, covar: Any, names: list[str] | None
) -> tuple[np.ndarray, list[str], list[str]]:
    """Covariates in the genotype file's sample order (NaN rows for samples without one),
    the matrix's column names (categorical levels expanded) and the table columns used."""
    table = read_table(covar, prefix="COVAR")
    index, aligned, _ = match_samples(samples, table)
    used = list(names) if names else [c for c in table.columns if c not in ID_COLUMNS]
    X, columns = covariate_matrix(aligned, used)
    full = np.full((len(samples), X.shape[1]), np.nan)
    full[index] = X
    return full, columns, used


def _numeric(table: pd.DataFrame, column: str, what: str) -> np.ndarray:
    values = table[column]
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()).to_numpy()
    raise InputError(
        f"{what} {column!r} is not numeric: {values[bad].iloc[0]!r}",
        file=table.attrs.get("path"),
        where=_place(table, int(np.flatnonzero(bad)[0])),
        fix="use numbers, with -9 or NA for missing values",
    )


def _place(table: pd.DataFrame, row: int) -> str:
    """``line N`` for a table read from a file, ``row N`` for one given in memory."""
    label = "line" if table.attrs.get("path") else "row"
    return f"{label} {table.index[row]}"
