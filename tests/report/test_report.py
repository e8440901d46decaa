"""The report's page without a browser: what it holds for an association run, its LD numbers
against the genotypes, and the policy that keeps it offline."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import genoformer
from genoformer.gwas import api as gwas_api
from genoformer.gwas.io.genotypes import open_genotypes
from genoformer.gwas.stats.ld import r2_with
from genoformer.report.association import N_HITS, WINDOW

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
