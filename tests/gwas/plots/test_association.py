"""Manhattan and QQ plots: files written, chromosome order, thresholds, hover text, lambda."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from genoformer.engine.genome import chromosome_order_key
from genoformer.gwas.plots.association import (
    _qq_chart,
    genomic_control_lambda,
    manhattan,
    manhattan_html,
    qq,
    qq_html,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _in_page(text: str) -> str:
    """``text`` as plotly escapes it inside the page's JSON (HTML-safe unicode escapes)."""
    escaped = json.dumps(text)[1:-1]
    for char in "<>/&":
        escaped = escaped.replace(char, f"\\u{ord(char):04x}")
    return escaped


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    """plink2 --glm-like linear results: uniform p-values plus one strong locus on chr 6."""
    rng = np.random.default_rng(5)
    chroms = ["MT", "X", "10", "2", "1", "22", "6"]
    n = 20_000
    table = pd.DataFrame(
        {
            "#CHROM": rng.choice(chroms, n),
            "POS": rng.integers(1, 50_000_000, n),
            "ID": [f"rs{i}" for i in range(n)],
            "REF": "A",
            "ALT": "G",
            "A1": "G",
            "TEST": "ADD",
            "OBS_CT": 1000,
            "BETA": rng.normal(0, 0.05, n),
            "SE": 0.05,
            "P": rng.uniform(size=n),
        }
    )
    table.loc[0, ["#CHROM", "POS", "ID", "BETA", "P"]] = ["6", 31_000_000, "rsHIT", 0.8, 1e-30]
    # A covariate row with a tiny p that must not be drawn.
    covar = table.iloc[[1]].assign(TEST="COVAR1", P=1e-200, ID="rsCOVAR")
    return pd.concat([table, covar], ignore_index=True)


def test_chromosome_order_is_natural():
    names = ["chrX", "10", "MT", "2", "Y", "1", "chr22", "XY", "scaffold_9"]
    assert sorted(names, key=chromosome_order_key) == [
        "1", "2", "10", "chr22", "chrX", "Y", "XY", "MT", "scaffold_9"
    ]  # fmt: skip


def test_genomic_control_lambda():
    p = np.random.default_rng(1).uniform(size=50_001)
    assert genomic_control_lambda(p) == pytest.approx(1.0, abs=0.03)
    # Inflate every chi-square by 1.2: lambda measures it.
    inflated = stats.chi2.sf(1.2 * stats.chi2.isf(p, 1), 1)
    assert genomic_control_lambda(inflated) == pytest.approx(1.2, rel=1e-9 + 0.03)


def test_manhattan_png_and_pdf(results, tmp_path):
    written = manhattan(results, tmp_path / "manhattan.png", title="test")
    assert [p.name for p in written] == ["manhattan.png", "manhattan.pdf"]
    assert written[0].read_bytes()[:8] == PNG_MAGIC
    assert written[1].read_bytes()[:5] == b"%PDF-"
    assert not list(tmp_path.glob(".*tmp"))


def test_manhattan_html_hover_and_order(results, tmp_path):
    path = manhattan_html(results, tmp_path / "manhattan.html")
    html = path.read_text()
    assert "scattergl" in html
    # Hovering the hit shows id, chrom:pos, alleles, effect, its SE and p.
    hover = "<b>rsHIT</b><br>6:31000000<br>REF A  ALT G  A1 G<br>BETA 0.8<br>SE 0.05<br>p 1e-30"
    assert _in_page(hover) in html
    assert "rsCOVAR" not in html  # only the ADD rows are drawn
    ticks = json.loads(re.search(r'"ticktext":(\[[^\]]*\])', html).group(1))
    assert ticks == ["1", "2", "6", "10", "22", "X", "MT"]
    # Threshold lines at -log10(5e-8) and -log10(1e-5).
    ys = [float(v) for v in re.findall(r'"y0":([0-9.]+)', html)]
    assert any(abs(y - 7.30103) < 1e-4 for y in ys) and any(abs(y - 5.0) < 1e-9 for y in ys)


def test_qq_png_and_html(results, tmp_path):
    add = results[results["TEST"] == "ADD"]
    lam = genomic_control_lambda(add["P"])
    written = qq(results, tmp_path / "qq", formats=("png",))
    assert written == [tmp_path / "qq.png"]
    assert written[0].read_bytes()[:8] == PNG_MAGIC
    html = qq_html(results, tmp_path / "qq.html", title="demo").read_text()
    assert _in_page(f"λGC = {lam:.3f}") in html
    assert _in_page("<b>rsHIT</b><br>p 1e-30") in html
    assert "95% band" in html
    # A given lambda is shown as given; a bare table of p-values is enough.
    html = qq_html(pd.DataFrame({"P": add["P"]}), tmp_path / "bare.html", lambda_gc=1.234)
    assert _in_page("λGC = 1.234") in html.read_text()


def test_plots_need_p_values(tmp_path):
    with pytest.raises(ValueError, match="P"):
        manhattan(pd.DataFrame({"#CHROM": ["1"], "POS": [1]}), tmp_path / "x")


def test_a_table_without_a_testable_variant_says_so(tmp_path):
    from genoformer.engine.errors import InputError

    results = pd.DataFrame({"#CHROM": ["1", "2"], "POS": [10, 20], "ID": ["a", "b"]})
    results["P"] = np.nan  # e.g. a collinear covariate: every test fails
    with pytest.raises(InputError, match="none of the 2 variants has a p-value to plot"):
        manhattan(results, tmp_path / "m")
    with pytest.raises(InputError, match="ERRCODE"):
        manhattan_html(results, tmp_path / "m.html")


def test_a_million_variants_are_thinned_for_drawing_not_for_the_table():
    """PheWeb's thinning: every p < 1e-3 drawn, one point per grid cell above it, so the
    points drawn stay bounded by the grid whatever the number of variants."""
    from genoformer.gwas.plots.association import THIN_ABOVE_P, _thin

    rng = np.random.default_rng(0)
    n = 1_000_000
    x = np.sort(rng.uniform(0, 3e9, n))
    p = rng.uniform(size=n)
    logp = -np.log10(p)
    bins, rows = 500, 150
    drawn = _thin(x, logp, p, bins=bins, rows=rows, top=8.0)
    assert np.all(np.diff(drawn) > 0)  # in order, no point twice
    strong = np.flatnonzero(p < THIN_ABOVE_P)
    assert np.isin(strong, drawn).all()
    assert drawn.size <= strong.size + bins * (rows + 1)
    assert drawn.size < n / 10
    # every occupied cell keeps a point: the band looks the same
    weak = p >= THIN_ABOVE_P
    column = np.minimum(((x - x.min()) / (np.ptp(x) / bins)).astype(int), bins - 1)
    cells = set(zip(column[weak], (logp[weak] / (8.0 / rows)).astype(int), strict=True))
    kept = drawn[weak[drawn]]
    assert len(cells) == len(
        set(zip(column[kept], (logp[kept] / (8.0 / rows)).astype(int), strict=True))
    )


def test_few_variants_are_all_drawn():
    from genoformer.gwas.plots.association import _thin

    p = np.linspace(0.01, 1, 300)
    assert _thin(np.arange(300.0), -np.log10(p), p, bins=500, rows=150, top=8.0).size == 300


def test_qq_by_maf_draws_each_stratum_with_its_count_and_lambda(results, tmp_path):
    """PheWeb's strata: the tested variants sorted by MAF (an A1 frequency folded to the
    minor allele), cut into four of equal count, each with the lambda of its own p-values."""
    rng = np.random.default_rng(1)
    table = results.assign(A1_FREQ=rng.uniform(0.0, 1.0, len(results)))
    add = table[table["TEST"] == "ADD"].reset_index(drop=True)
    maf = np.minimum(add["A1_FREQ"], 1 - add["A1_FREQ"]).to_numpy()
    chart = _qq_chart(table, by_maf="A1_FREQ")
    series = [layer for layer in chart.panels[0].layers if str(layer.label).startswith("MAF")]
    order = np.argsort(maf, kind="stable")
    for k, (layer, rows) in enumerate(zip(series, np.array_split(order, 4), strict=True)):
        lam = genomic_control_lambda(add["P"].to_numpy()[rows])
        assert layer.label == (f"MAF {maf[rows].min():.3g} - {maf[rows].max():.3g}: "
                               f"n = {len(rows):,}, λGC = {lam:.3f}"), k  # fmt: skip
        # Each stratum against the quantiles of its own size, not of all the variants.
        assert layer.x.max() == pytest.approx(-np.log10(0.5 / len(rows)))
    assert chart.subtitle == f"n = {len(add):,} in 4 strata"
    assert qq(table, tmp_path / "qq", by_maf="A1_FREQ", formats=("png",))[0].exists()
    with pytest.raises(ValueError, match="no MAF column"):
        _qq_chart(table, by_maf="MAF")
