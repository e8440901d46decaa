"""The gwas pillar's public functions: simulate, qc, pca, assoc, epistasis, plot, train,
predict, explain.

Each is what one ``genoformer gwas ...`` command calls, with the same arguments; each writes
a run directory (manifest.json, tables, figures) and returns a small result object.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genoformer._lazy import lazy_exports
from genoformer.engine.errors import InputError
from genoformer.engine.options import with_overrides
from genoformer.engine.paths import require_path
from genoformer.engine.runs import RunDir, RunResult, write_table
from genoformer.gwas.io.genotypes import GenotypeSource, open_genotypes, warn_sex_chromosomes
from genoformer.gwas.io.phenotypes import sample_covariates, sample_phenotype
from genoformer.gwas.io.simulate import SimulateSettings, simulate
from genoformer.gwas.plots.run_figures import FigureProcess, more_than_one_core
from genoformer.gwas.plots.run_figures import draw as draw_figures
from genoformer.gwas.stats.adjust import adjust, genomic_control_lambda
from genoformer.gwas.stats.association import associate, write_results
from genoformer.gwas.stats.pca import pca as run_pca
from genoformer.gwas.stats.pca import write_pca
from genoformer.gwas.stats.qc import QCResult, check_thresholds, usable_covariates
from genoformer.gwas.stats.qc import qc as run_qc
from genoformer.gwas.stats.wgr import (
    WGRResult,
    WGRSettings,
    associate_loco,
    fit_wgr,
    write_loco,
)

# The model commands load torch and transformers: only when they are used, so that the
# association commands start quickly.
_MODEL_EXPORTS = {
    "train": "genoformer.gwas.model.training",
    "GenotypeTrainSettings": "genoformer.gwas.model.training",
    "predict": "genoformer.gwas.model.training",
    "explain": "genoformer.gwas.model.explain",
    "ExplainSettings": "genoformer.gwas.model.explain",
}
__all__ = [
    "AssocSettings",
    "RunResult",
    "SimulateSettings",
    "assoc",
    "epistasis",
    "pca",
    "plot",
    "qc",
    "simulate",
    *_MODEL_EXPORTS,
]
__getattr__ = lazy_exports("genoformer.gwas.api", _MODEL_EXPORTS)


#: The figure files ``gwas assoc`` writes unless told otherwise.
ASSOC_FIGURES = ("png", "html")
#: The figure files ``gwas plot`` writes unless told otherwise.
PLOT_FIGURES = ("png", "pdf", "html")
_FIGURE_FORMATS = ("png", "pdf", "svg", "html")


def _filters(maf, geno, mind, hwe) -> dict[str, float]:
    """The QC filters asked for (0 is a threshold, as in plink2: ``--geno 0``)."""
    given = {"maf": maf, "geno": geno, "mind": mind, "hwe": hwe}
    check_thresholds(**given)
    return {k: v for k, v in given.items() if v is not None}


def _apply_qc(source: GenotypeSource, filters: dict[str, float], run: RunDir) -> QCResult:
    with run.step("qc"):
        result = run_qc(source, **filters)
    run.record_results("qc", {"removed": result.removed, **_kept(result, source)})
    return result


def _passing(
    source: GenotypeSource, filters: dict[str, float], run: RunDir
) -> dict[str, np.ndarray | None]:
    """The ``samples`` and the ``variants`` that pass QC with ``filters`` (``None``: all of
    them, when there is no filter), as the keyword arguments of the analyses."""
    if not filters:
        return {"samples": None, "variants": None}
    kept = _apply_qc(source, filters, run)
    for what, left in (("sample", kept.samples), ("variant", kept.variants)):
        if len(left) == 0:
            removed = ", ".join(
                f"{kept.removed[k]:,} by --{k} {v:g}" for k, v in filters.items() if kept.removed[k]
            )
            raise InputError(
                f"QC removed every {what} ({removed})",
                file=source.path,
                fix=f"loosen the thresholds (plink2 stops too: no {what}s remaining after main "
                "filters)",
            )
    return {"samples": kept.samples, "variants": kept.variants}


def _kept(result: QCResult, source: GenotypeSource) -> dict[str, int]:
    return {
        "samples_in": source.n_samples,
        "samples_kept": len(result.samples),
        "variants_in": source.n_variants,
        "variants_kept": len(result.variants),
    }


def qc(
    genotypes: str | os.PathLike,
    *,
    out: str | os.PathLike,
    maf: float | None = None,
    geno: float | None = None,
    mind: float | None = None,
    hwe: float | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Quality control as plink2 does it (--mind, --geno, --hwe, --maf, in that order).

    Writes ``variants.tsv`` (frequency, missingness, HWE p, kept), ``samples.keep`` and
    ``variants.extract`` (plink --keep / --extract lists of what passed).
    """
    run = RunDir(out, command="gwas qc", arguments=locals(), overwrite=overwrite)
    with open_genotypes(genotypes) as source:
        warn_sex_chromosomes(source)
        result = _apply_qc(source, _filters(maf, geno, mind, hwe), run)
        kept = source.samples.iloc[result.samples][["fid", "iid"]]
        outputs = {
            "variant_stats": write_table(run.file("variants.tsv"), result.variant_stats),
            "samples_keep": write_table(run.file("samples.keep"), kept),
            "variants_extract": write_table(
                run.file("variants.extract"), source.variants.iloc[result.variants][["id"]]
            ),
        }
        metrics = {"removed": result.removed, **_kept(result, source)}
    for key, path in outputs.items():
        run.record_output(key, path)
    run.finish()
    return RunResult(run.path, metrics, outputs)


def pca(
    genotypes: str | os.PathLike,
    *,
    out: str | os.PathLike,
    n_components: int = 10,
    method: str = "auto",
    seed: int = 0,
    maf: float | None = None,
    geno: float | None = None,
    mind: float | None = None,
    hwe: float | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Principal components of standardised genotypes, as plink2 --pca computes them.

    Writes ``pca.eigenval``, ``pca.eigenvec`` (plink2's layout) and a PC1/PC2 scatter.
    """
    run = RunDir(out, command="gwas pca", arguments=locals(), seed=seed, overwrite=overwrite)
    with open_genotypes(genotypes) as source:
        passing = _passing(source, _filters(maf, geno, mind, hwe), run)
        _check_components(n_components, source, passing, "--components")
        with run.step("pca"):
            result = run_pca(source, n_components=n_components, method=method, seed=seed, **passing)
    outputs = {f"pca_{p.suffix[1:]}": p for p in write_pca(result, run.path / "pca")}
    from genoformer.gwas.plots import association as plots  # matplotlib: see _figures

    outputs["pc_scatter"] = plots.pc_scatter(result.eigenvectors, run.path / "pca_pc1_pc2.png")[0]
    for key, path in outputs.items():
        run.record_output(key, path)
    metrics = {"eigenvalues": result.eigenvalues.tolist(), "method": result.method}
    run.record_results("pca", metrics)
    run.finish()
    return RunResult(run.path, metrics, outputs)


def _check_components(k: int, source: GenotypeSource, passing: dict, option: str) -> None:
    """Refuse a number of principal components the samples cannot give."""
    n = source.n_samples if passing["samples"] is None else len(passing["samples"])
    if not 1 <= k <= n:
        raise InputError(
            f"{option} is {k}, and {n:,} samples pass QC",
            file=source.path,
            where=option,
            fix=f"use 1 to {n:,} components (plink2 uses 10)",
        )


@dataclass(frozen=True)
class AssocSettings:
    """How :func:`assoc` tests (each also a keyword argument of it, and a CLI flag).

    Attributes
    ----------
    pcs
        Principal components (of the samples and variants that pass QC) added to the
        covariates.
    test
        ``auto`` (from the phenotype), ``linear``, ``logistic`` or ``chisq`` (plink1.9
        ``--assoc``).
    firth
        Firth-penalised logistic regression: ``fallback`` (where the plain fit fails, as
        plink2's ``firth-fallback``), ``always`` or ``never``.
    a1
        The counted allele: ``minor`` (plink2), ``alt`` or ``ref``.
    maf, geno, mind, hwe
        QC filters applied first, as plink2's ``--maf``, ``--geno``, ``--mind``, ``--hwe``
        (None: not applied).
    chunk_size
        Variants per chunk.
    engine, scheduler
        ``numpy`` or ``dask``, and the address of a Dask scheduler.
    seed
        Seed of the principal components and of whole-genome regression.
    overwrite
        Replace what an earlier run wrote to ``out`` (without it, such an ``out`` is refused).
    wgr, wgr_block_size, wgr_folds
        Whole-genome regression first, as regenie's step 1: ridge over blocks of
        ``wgr_block_size`` variants in ``wgr_folds`` folds, then level 1.
    figures
        Figure formats: ``png``, ``pdf``, ``svg``, ``html`` (or one comma-separated string of
        them; none when empty).
    """

    pcs: int = 0
    test: str = "auto"
    firth: str = "fallback"
    a1: str = "minor"
    maf: float | None = None
    geno: float | None = None
    mind: float | None = None
    hwe: float | None = None
    chunk_size: int = 4096
    engine: str = "numpy"
    scheduler: str | None = None
    seed: int = 0
    overwrite: bool = False
    wgr: bool = False
    wgr_block_size: int = 200
    wgr_folds: int = 5
    figures: Sequence[str] = ASSOC_FIGURES


#: The settings of assoc that the tests take as they are.
_TEST_SETTINGS = ("test", "firth", "a1", "chunk_size", "engine", "scheduler")


def assoc(
    genotypes: str | os.PathLike,
    *,
    out: str | os.PathLike,
    pheno: str | os.PathLike | pd.DataFrame,
    pheno_name: str | None = None,
    covar: str | os.PathLike | pd.DataFrame | None = None,
    covar_names: Sequence[str] | None = None,
    settings: AssocSettings | None = None,
    **overrides: Any,
) -> RunResult:
    """Association of every variant with a phenotype, as plink2 --glm (or plink1.9 --assoc).

    QC filters are applied first; ``pcs`` principal components (of the samples and variants
    that pass QC) join the covariates. Writes ``assoc.tsv`` and ``assoc.parquet`` (plink2
    columns), ``adjust.tsv`` (plink2 --adjust), Manhattan and QQ plots in each of
    ``figures`` (``png``, ``pdf``, ``svg``, ``html``; none when empty). PDF is not drawn by
    default: it doubles the time of the pictures, and ``genoformer gwas plot`` draws it
    from the table when a publication copy is wanted.

    ``wgr=True`` first fits whole-genome regression as regenie's step 1
    (:mod:`genoformer.gwas.stats.wgr`: ridge over blocks of ``wgr_block_size`` variants in
    ``wgr_folds`` folds, then level 1) on the variants that pass QC, writes its
    leave-one-chromosome-out predictions (``wgr.loco`` in regenie's layout, ``wgr_pred.list``)
    and tests each chromosome's variants with its LOCO prediction as an offset.

    Parameters
    ----------
    genotypes
        PLINK .bed (or its prefix), or a VCF/BCF file.
    out
        The run directory.
    pheno, pheno_name
        The phenotype table (a file in PLINK's layout, or a DataFrame with FID and IID) and
        its column (default: the first after FID and IID).
    covar, covar_names
        Covariates (a file or a DataFrame) and the columns used (default: all).
    settings, **overrides
        How to test: an :class:`AssocSettings`, and/or any of its fields by name
        (``pcs=4, maf=0.01, wgr=True``).
    """
    options = with_overrides(AssocSettings, settings, overrides, "assoc")
    options = replace(options, figures=_figure_formats(options.figures))
    given = {
        "genotypes": genotypes, "out": out, "pheno": pheno, "pheno_name": pheno_name,
        "covar": covar, "covar_names": covar_names, **asdict(options),
    }  # fmt: skip
    arguments = {k: v for k, v in given.items() if not isinstance(v, pd.DataFrame)}
    figures, seed = options.figures, options.seed
    with ExitStack() as stack:
        # Started first: they load the plotting modules while this process works.
        groups = _figure_groups(figures) if more_than_one_core() else []
        drawers = [stack.enter_context(FigureProcess(group)) for group in groups]
        control = {"seed": seed, "overwrite": options.overwrite}
        run = RunDir(out, command="gwas assoc", arguments=arguments, **control)
        with open_genotypes(genotypes) as source:
            passing = _passing(
                source, _filters(options.maf, options.geno, options.mind, options.hwe), run
            )
            warn_sex_chromosomes(source)
            y, kind, column, n_dropped = sample_phenotype(source.samples, pheno, pheno_name)
            _check_test(options.test, kind, column, y, pheno)
            X, names = _covariates(source, passing, y, run, covar, covar_names, options.pcs, seed)
            wgr = WGRSettings(options.wgr_block_size, options.wgr_folds, seed=seed)
            results, step1, outputs = _association(
                source, y, run, column, wgr if options.wgr else None, covariates=X,
                **{k: getattr(options, k) for k in _TEST_SETTINGS}, **passing,
            )  # fmt: skip
        parquet = write_results(results, run.file("assoc.parquet"))
        for drawer in drawers:  # they draw from the Parquet table while this writes the rest
            drawer.request(parquet, run.path)
        outputs["results"] = write_results(results, run.file("assoc.tsv"))
        outputs["results_parquet"] = parquet
        outputs["adjust"] = write_table(run.file("adjust.tsv"), adjust(results))
        outputs.update(_figures(results, run.path, figures, drawers))
    metrics = {
        "phenotype": column,
        "kind": kind,
        "covariates": names,
        "samples_without_phenotype_row": n_dropped,
        "variants_tested": int(len(results)),
        "lambda_gc": genomic_control_lambda(results["P"].to_numpy(dtype=float)),
        "min_p": _min_p(results),
    }
    if step1 is not None:
        run.record_results("wgr", step1.metrics)
    for key, path in outputs.items():
        run.record_output(key, path)
    run.record_results("assoc", metrics)
    run.finish()
    return RunResult(run.path, metrics, outputs)


def _covariates(
    source: GenotypeSource,
    passing: dict,
    y: np.ndarray,
    run: RunDir,
    covar: object,
    covar_names: Sequence[str] | None,
    pcs: int,
    seed: int,
) -> tuple[np.ndarray | None, list[str]]:
    """The covariate matrix of the tests (the file's covariates, then ``pcs`` principal
    components of what passes QC), checked as plink2 checks it; None when there are none."""
    blocks, names = [], []
    if covar is not None:
        X, covariate_names, _ = sample_covariates(source.samples, covar, covar_names)
        blocks.append(X)
        names += covariate_names
    if pcs:
        _check_components(pcs, source, passing, "--pcs")
        with run.step("pca"):
            components = run_pca(source, n_components=pcs, seed=seed, **passing)
        pc = np.full((source.n_samples, pcs), np.nan)
        samples = passing["samples"]
        pc[samples if samples is not None else slice(None)] = components.components
        blocks.append(pc)
        names += [f"PC{i + 1}" for i in range(pcs)]
    if blocks:
        blocks, names = _checked_covariates(np.column_stack(blocks), names, y, passing, covar)
    return (np.column_stack(blocks) if blocks else None), names


def _check_test(test: str, kind: str, column: str, y: np.ndarray, pheno: object) -> None:
    """Refuse a case/control test of a quantitative phenotype, naming the file and column."""
    if test in ("logistic", "chisq") and kind == "quantitative":
        odd = y[np.isfinite(y) & ~np.isin(y, (0.0, 1.0, 2.0))]
        example = f", e.g. {odd[0]:g}" if odd.size else ""
        raise InputError(
            f"--test {test} needs a case/control phenotype, and {column!r} is quantitative "
            f"(values other than 1/2 or 0/1{example})",
            file=None if isinstance(pheno, pd.DataFrame) else str(pheno),
            where=f"column {column}",
            fix="code it 1 control, 2 case (0, -9 or NA missing), or use --test linear",
        )


def _min_p(results: pd.DataFrame) -> float | None:
    p = results["P"].to_numpy(dtype=float)
    return float(np.nanmin(p)) if np.isfinite(p).any() else None


def _checked_covariates(
    X: np.ndarray, names: list[str], y: np.ndarray, passing: dict, covar: object
) -> tuple[list[np.ndarray], list[str]]:
    """The covariates that enter the tests, checked as plink2 checks them on the analysed
    samples (phenotype and every covariate, passing QC): constant ones left out with a
    warning, collinear ones refused."""
    use = np.isfinite(y) & np.isfinite(X).all(axis=1)
    if passing["samples"] is not None:
        chosen = np.zeros(len(y), dtype=bool)
        chosen[passing["samples"]] = True
        use &= chosen
    file = None if isinstance(covar, pd.DataFrame) or covar is None else str(covar)
    keep = usable_covariates(X, names, use, file=file)
    return [X[:, keep]], [n for n, k in zip(names, keep, strict=True) if k]


def _association(
    source: GenotypeSource,
    y: np.ndarray,
    run: RunDir,
    phenotype: str,
    wgr: WGRSettings | None,
    **options,
) -> tuple[pd.DataFrame, WGRResult | None, dict[str, Path]]:
    """The association table (with ``associate``'s ``options``), after whole-genome
    regression when ``wgr`` gives its settings: then also its fit and LOCO files."""
    step1, outputs = None, {}
    if wgr is not None:
        keys = ("covariates", "test", "samples", "variants")
        with run.step("wgr"):
            step1 = fit_wgr(source, y, settings=wgr, **{k: options[k] for k in keys})
        outputs = write_loco(step1, source.samples, run.path, phenotype)
    with run.step("assoc"):
        if step1 is None:
            return associate(source, y, **options), None, outputs
        return associate_loco(source, y, step1, **options), step1, outputs


def _figure_formats(figures: Sequence[str] | str) -> tuple[str, ...]:
    """``figures`` as a tuple of known formats (a comma-separated string too; ``none`` or
    nothing: no figures), refused in one line when a format is unknown."""
    names = figures.split(",") if isinstance(figures, str) else list(figures)
    names = [name.strip().lower() for name in names if name.strip()]
    if names == ["none"]:
        return ()
    unknown = [name for name in names if name not in _FIGURE_FORMATS]
    if unknown:
        raise InputError(
            f"unknown figure format {unknown[0]!r}",
            where="--figures",
            fix=f"use a comma-separated list of {', '.join(_FIGURE_FORMATS)}, or none",
        )
    return tuple(dict.fromkeys(names))


def _figure_groups(formats: Sequence[str]) -> list[list[str]]:
    """``formats`` in the groups two processes draw side by side: the pictures (matplotlib)
    and the pages (plotly)."""
    pictures = [fmt for fmt in formats if fmt != "html"]
    return [group for group in (pictures, ["html"] if "html" in formats else []) if group]


def _figures(
    results: pd.DataFrame,
    out_dir: Path,
    formats: Sequence[str],
    drawers: Sequence[FigureProcess] = (),
) -> dict[str, Path]:
    """The Manhattan and QQ plots in each of ``formats`` (by ``drawers`` when given: the
    processes asked for them); none, with a warning, when no variant has a p-value."""
    if not formats:
        return {}
    if drawers:
        drawn = [drawer.files() for drawer in drawers]
        files = None if None in drawn else {k: v for d in drawn for k, v in d.items()}
    else:
        files = draw_figures(results, out_dir, formats)
    if files is None:
        errors = results.get("ERRCODE", pd.Series(dtype=str)).value_counts()
        why = ", ".join(f"{code} {n:,}" for code, n in errors.items() if code != ".")
        warnings.warn(
            f"{out_dir}: none of the {len(results):,} variants has a p-value ({why or 'no variant tested'}"
            "): no Manhattan or QQ plot drawn; the tables are written",
            stacklevel=2,
        )
        return {}
    return files


def plot(
    results: str | os.PathLike,
    *,
    out: str | os.PathLike,
    figures: Sequence[str] = PLOT_FIGURES,
) -> RunResult:
    """Manhattan and QQ plots of an association results table, in each of ``figures``
    (``png``, ``pdf``, ``svg``, ``html``: the interactive page)."""
    figures = _figure_formats(figures)
    from genoformer.gwas.plots import association as plots  # matplotlib: see _figures

    path = require_path(results, "no such results file", fix="give assoc.tsv or .parquet")
    table = (
        pd.read_parquet(path)
        if path.suffix == ".parquet"
        else pd.read_csv(path, sep="\t", na_values=["NA"])
    )
    if "P" not in table.columns:
        raise InputError("no P column", file=path, fix="give the output of `genoformer gwas assoc`")
    if not plots.plottable(table):
        raise InputError(
            f"none of the {len(table):,} variants has a p-value to plot (every test failed or "
            "was not run: see the ERRCODE column)",
            file=path,
            where="column P",
            fix="check the covariates and the QC of the association run",
        )
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = _figures(table, out_dir, figures)
    return RunResult(out_dir, {}, outputs)


def _variant_list(path: str | os.PathLike, source: GenotypeSource) -> np.ndarray:
    """File indices of the variant IDs listed in ``path`` (one per line, first column, as
    plink's --extract / --set take them); an unknown ID is bad input naming its line."""
    path = require_path(path, "no such variant list", fix="give a file of variant IDs")
    position = pd.Series(np.arange(source.n_variants), index=source.variants["id"].to_numpy())
    position = position[~position.index.duplicated()]
    found = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if fields[0] not in position.index:
                raise InputError(
                    f"variant {fields[0]!r} is not in the genotypes",
                    file=path,
                    where=f"line {number}",
                    fix=f"list IDs of the .bim's second column ({source.path})",
                )
            found.append(int(position[fields[0]]))
    if not found:
        raise InputError("no variant IDs in the list", file=path, fix="one variant ID per line")
    return np.asarray(found, dtype=np.int64)


def epistasis(
    genotypes: str | os.PathLike,
    *,
    out: str | os.PathLike,
    pheno: str | os.PathLike | pd.DataFrame,
    pheno_name: str | None = None,
    test: str = "auto",
    threshold: float = 1e-4,
    summary_threshold: float = 0.01,
    against: str | os.PathLike | None = None,
    threads: int | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Exhaustive scan of variant pairs for interaction, as plink1.9 ``--epistasis``
    (``test="linear"`` / ``"logistic"``, chosen from the phenotype by ``"auto"``) or
    ``--fast-epistasis`` (``test="fast"``, case/control).

    Every pair of variants is tested (or each variant listed in the file ``against`` with
    every variant: plink1.9's ``set-by-all``); pairs with P below ``threshold`` (plink's
    ``--epi1``) are written to ``epistasis.tsv`` in plink1.9's columns (``.epi.qt``: CHR1
    SNP1 CHR2 SNP2 BETA_INT STAT P; ``.epi.cc``: OR_INT instead of BETA_INT; fast: STAT P),
    and ``epistasis.summary.tsv`` is plink's ``.summary`` (per variant: pairs with P below
    ``summary_threshold``, its ``--epi2``, valid tests, best partner). See
    :mod:`genoformer.gwas.stats.epistasis` for the tests and plink1.9's rules they follow.
    """
    arguments = {k: v for k, v in locals().items() if not isinstance(v, pd.DataFrame)}
    from genoformer.gwas.stats.epistasis import ScanSettings, check_settings, scan_pairs

    settings = ScanSettings(
        test=test, threshold=threshold, summary_threshold=summary_threshold, threads=threads
    )
    check_settings(settings)
    run = RunDir(out, command="gwas epistasis", arguments=arguments, overwrite=overwrite)
    with open_genotypes(genotypes, num_threads=threads) as source:
        y, kind, column, n_dropped = sample_phenotype(source.samples, pheno, pheno_name)
        if against is not None:
            settings.against = _variant_list(against, source)
        with run.step("scan"):
            result = scan_pairs(source, y, kind, settings)
    outputs = {
        "pairs": write_table(run.file("epistasis.tsv"), result.pairs),
        "summary": write_table(run.file("epistasis.summary.tsv"), result.summary),
    }
    p = result.pairs["P"].to_numpy(dtype=float)
    metrics = {
        "phenotype": column,
        **result.counts,
        "samples_without_phenotype_row": n_dropped,
        "min_p": float(p.min()) if p.size else None,
    }
    run.record_results("epistasis", metrics)
    return run.finish(metrics, outputs)
