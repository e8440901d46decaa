"""The report's page without a browser: what it holds for an association run, its LD numbers
against the genotypes, and the policy that keeps it offline."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import genoformer
from genoformer.gwas import api as gwas_api
from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.stats.adjust import genomic_control_lambda
from genoformer.gwas.stats.ld import r2_with
from genoformer.report.association import N_HITS, WINDOW, association_views
from genoformer.report.runs import Run

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def assoc_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("assoc")
    cohort = gwas_api.simulate(root / "cohort", n_samples=150, n_variants=200, seed=4)
    run = gwas_api.assoc(cohort.outputs["prefix"], out=root / "assoc",
                         pheno=cohort.outputs["pheno"], pheno_name="quant")  # fmt: skip
    page = genoformer.report(run.run_dir, out=root / "report.html")
    return cohort.outputs["prefix"], run, page.read_text()


def _regions(html: str) -> dict:
    block = re.search(r'<script type="application/json" id="[^"]*-regions">(.*?)</script>', html)
    return json.loads(block.group(1))


def test_page_is_self_contained(assoc_page):
    _, _, html = assoc_page
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert html.count("plotly.js v") == 1  # plotly.js inline, once
    # Nothing on the page points outside it. plotly.js itself is left out of the search: its
    # string constants hold links (its logo, map attributions) it never loads here; the
    # browser test checks that no request leaves the page.
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in html
    assert not re.search(r'(src|href)="(https?:)?//', html.replace(get_plotlyjs(), ""))


def test_summary_names_command_arguments_versions_and_metrics(assoc_page):
    _, run, html = assoc_page
    for text in ("genoformer gwas assoc", "pheno_name", "quant", "torch", "assoc.lambda_gc",
                 f"{run.metrics['lambda_gc']:.4g}"):  # fmt: skip
        assert text in html


def test_regional_ld_is_r2_with_the_hit_from_the_genotypes(assoc_page):
    prefix, run, html = assoc_page
    data = _regions(html)
    results = run.table("results").sort_values("P", kind="stable")
    assert data["genotypes_found"] and len(data["hits"]) == min(N_HITS, len(results))
    assert [hit["id"] for hit in data["hits"]] == results["ID"].head(N_HITS).tolist()
    with open_genotypes(prefix) as source:
        ids = source.variants["id"].astype(str).tolist()
        genotypes = source.read()
    for hit in data["hits"][:5]:
        near = [data["points"]["hover"][j].split("</b>")[0][3:] for j in hit["near"]]
        expected = r2_with(genotypes[:, ids.index(hit["id"])],
                           genotypes[:, [ids.index(v) for v in near]])  # fmt: skip
        got = np.array([np.nan if v is None else v for v in hit["r2"]])
        assert got == pytest.approx(expected, abs=1e-4, nan_ok=True)
        positions = np.array([data["points"]["pos"][j] for j in hit["near"]])
        assert (np.abs(positions - hit["pos"]) <= WINDOW).all()


def test_variants_without_an_id_get_the_ld_of_their_own_position(assoc_page, tmp_path):
    # The same cohort with every ID "." (as many VCFs have): each variant is found in the
    # genotypes by chromosome, position and alleles, not by its ID.
    prefix, run, _ = assoc_page
    bim = pd.read_csv(f"{prefix}.bim", sep="\t", header=None)
    bim[1] = "."
    bim.to_csv(tmp_path / "noid.bim", sep="\t", header=False, index=False)
    for suffix in ("bed", "fam"):
        shutil.copy(f"{prefix}.{suffix}", tmp_path / f"noid.{suffix}")
    pheno = json.loads((run.run_dir / "manifest.json").read_text())["arguments"]["pheno"]
    unnamed = gwas_api.assoc(tmp_path / "noid", out=tmp_path / "assoc", pheno=pheno,
                             pheno_name="quant")  # fmt: skip
    data = _regions(genoformer.report(unnamed.run_dir, out=tmp_path / "r.html").read_text())
    assert data["genotypes_found"]
    positions = bim[3].to_numpy()
    assert np.unique(positions).size == positions.size
    with open_genotypes(prefix) as source:
        genotypes = source.read()
    for hit in data["hits"][:5]:
        assert hit["id"] == "."
        near = [int(data["points"]["pos"][j]) for j in hit["near"]]
        column = {int(p): i for i, p in enumerate(positions)}
        expected = r2_with(genotypes[:, column[int(hit["pos"])]],
                           genotypes[:, [column[p] for p in near]])  # fmt: skip
        got = np.array([np.nan if v is None else v for v in hit["r2"]])
        assert np.isfinite(got).all()
        assert got == pytest.approx(expected, abs=1e-4)


def _view(html: str, kind: str) -> str:
    start = html.index(f'data-view="{kind}"')
    end = html.find('data-view="', start + 1)
    return html[start : end if end > 0 else None]


def test_qq_by_maf_strata_have_their_own_lambda_and_add_up_to_the_tested_variants(assoc_page):
    prefix, run, html = assoc_page
    names = re.findall(r'"name":"((?:[^"\\]|\\.)*)"', _view(html, "qq-maf"))
    labels = [json.loads(f'"{name}"') for name in names if name.startswith("MAF")]
    # The MAF of each tested variant over the genotype file's samples, counted here.
    with open_genotypes(prefix) as source:
        dosage = source.read()
        ids = source.variants["id"].astype(str).tolist()
    freq = np.nanmean(dosage, axis=0) / 2
    results = run.table("results")
    maf = np.minimum(freq, 1 - freq)[[ids.index(v) for v in results["ID"].astype(str)]]
    order = np.argsort(maf, kind="stable")
    counts = [int(re.search(r"n = ([0-9,]+)", label).group(1).replace(",", "")) for label in labels]
    assert len(labels) == 4 and sum(counts) == len(results) == run.metrics["variants_tested"]
    assert max(counts) - min(counts) <= 1
    starts = np.cumsum([0, *counts])
    for label, a, b in zip(labels, starts[:-1], starts[1:], strict=True):
        rows = order[a:b]
        lam = genomic_control_lambda(results["P"].to_numpy()[rows])
        assert label == (f"MAF {maf[rows].min():.3g} - {maf[rows].max():.3g}: "
                         f"n = {b - a:,}, λGC = {lam:.3f}")  # fmt: skip
    title = re.search(r'"title":\{"text":"((?:[^"\\]|\\.)*)"', _view(html, "qq-maf")).group(1)
    assert json.loads(f'"{title}"') == f"QQ plot by MAF: n = {len(results):,} in 4 strata"


def test_without_the_genotypes_the_qq_by_maf_view_says_why_in_one_line(assoc_page, tmp_path):
    _, run, _ = assoc_page
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    manifest["arguments"]["genotypes"] = str(tmp_path / "moved")
    views = association_views(Run(run.run_dir, manifest), "a")
    body = next(view.body for view in views if view.kind == "qq-maf")
    assert body.startswith("<p class='note'>QQ plot by MAF not drawn: the run's genotype input")
    assert body.count("<p") == 1 and "plotly" not in body
    assert "plotly" in next(view.body for view in views if view.kind == "qq")
