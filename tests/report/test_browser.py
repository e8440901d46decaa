"""The report in a real browser (headless Debian chromium through selenium), on tiny runs of
each pillar: it loads without a console error and without a request leaving the file; a
Manhattan point shows its statistics on hover; a hit's click draws its regional view in LD
colours; the UMAP colour menu recolours the cells; no view is blank."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from genoformer import report
from genoformer.gwas import api as gwas_api
from genoformer.report.association import LD_BINS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny association run; tiny sc embed, classify, predict, perturb and perturb-stats
    runs over one corpus; a tiny seq train run."""
    root = tmp_path_factory.mktemp("runs")
    cohort = gwas_api.simulate(root / "cohort", n_samples=200, n_variants=300, seed=3)
    gwas_api.assoc(
        cohort.outputs["prefix"], out=root / "assoc", pheno=cohort.outputs["pheno"],
        pheno_name="quant", seed=0,
    )  # fmt: skip
    _sc_embed_run(root)
    from genoformer.seq import api as seq_api
    from genoformer.seq.tasks import teaching_task

    seq_api.train(teaching_task(300, seed=0), out=root / "seq", model="linear", epochs=1,
                  batch_size=64, eval_every=2, seed=0, device="cpu")  # fmt: skip
    names = ("assoc", "embed", "classify", "predict", "perturb_stats", "seq")
    return {name: root / name for name in names}


def _sc_embed_run(root: Path) -> None:
    """Cells embedded by a small random Geneformer-style model (no pretraining needed)."""
    from genoformer import sc
    from genoformer.sc.models import build_model
    from genoformer.sc.simulate import simulate_cells

    cells = simulate_cells(60, 120, n_types=3, markers_per_type=10, seed=0)
    vocabulary = sc.gene_medians(cells, out=root / "vocabulary", name="t", input_size=64)
    sc.tokenize(cells, out=root / "corpus", vocabulary=vocabulary,
                cell_attributes=["cell_type", "n_counts"], progress=False)  # fmt: skip
    build_model("tiny", vocabulary, seed=1).save_pretrained(root / "model")
    sc.embed(root / "model", root / "corpus", out=root / "embed", vocabulary=vocabulary,
             progress=False)  # fmt: skip
    # A few steps of fine-tuning: the views need a classification run, not a good classifier.
    sc.classify(root / "corpus", out=root / "classify", label="cell_type", model=root / "model",
                max_steps=4, eval_every=2, batch_size=8, learning_rate=1e-3, device="cpu")  # fmt: skip
    sc.predict(root / "classify", root / "corpus", out=root / "predict", device="cpu")
    # Every gene deleted in cells 0-7, against the same in cells 8-15 (the null).
    for name, cells in (("perturb", range(8)), ("perturb_null", range(8, 16))):
        sc.perturb(root / "model", root / "corpus", out=root / name, all_genes=True,
                   cells=tuple(cells), device="cpu", progress=False)  # fmt: skip
    sc.perturb_stats(root / "perturb", null=root / "perturb_null", out=root / "perturb_stats")


@pytest.fixture(scope="module")
def page(runs, tmp_path_factory, browser) -> Path:
    folder = tmp_path_factory.mktemp("page")
    path = report(*runs.values(), out=folder / "report.html", genes=_genes(runs, folder))
    browser.get(path.as_uri())
    browser.execute_script("return document.readyState")
    return path


def _genes(runs, folder: Path) -> Path:
    """A BED file of made-up genes, 40 kb long every 100 kb of each chromosome tested (a
    gene track needs genes, not real ones), alternating strands."""
    import pandas as pd

    results = pd.read_csv(runs["assoc"] / "assoc.tsv", sep="\t")
    lines = []
    for chrom, group in results.groupby("#CHROM"):
        for k, start in enumerate(range(0, int(group["POS"].max()) + 100_000, 100_000)):
            strand = "+-"[k % 2]
            lines.append(f"chr{chrom}\t{start}\t{start + 40_000}\tG{chrom}_{k}\t0\t{strand}\n")
    path = folder / "genes.bed"
    path.write_text("".join(lines))
    return path


def _plot(browser, selector: str):
    return browser.find_element("css selector", f"{selector} .plotly-graph-div")


def test_page_loads_with_no_console_error_and_no_request(page, browser):
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    # Every resource the page loaded is the file itself (the policy forbids the rest).
    entries = browser.execute_script(
        """return performance.getEntriesByType("navigation")
          .concat(performance.getEntriesByType("resource")).map(function (e) { return e.name; })"""
    )
    assert entries and entries[0] == page.as_uri()
    assert [name for name in entries if not name.startswith(("file:", "data:", "blob:"))] == []
    policy = browser.find_element("css selector", 'meta[http-equiv="Content-Security-Policy"]')
    assert "default-src 'none'" in policy.get_attribute("content")
    # One copy of plotly.js, and the figures drawn by it.
    assert browser.execute_script("return typeof Plotly") == "object"
    assert page.read_text().count("plotly.js v") == 1
    # Blocked requests would be console errors: check that the policy does block one.
    browser.execute_script("var i = new Image(); i.src = 'https://example.org/x.png';")
    browser.implicitly_wait(0)
    import time

    time.sleep(0.5)
    assert any("Content Security Policy" in e["message"] for e in browser.get_log("browser"))


def _hover_point(browser, plot, x: float, y: float) -> str:
    """Move the mouse over data point (x, y) of ``plot``; return the hover label's text."""
    from selenium.webdriver.common.action_chains import ActionChains

    offset = browser.execute_script(
        """var gd = arguments[0], l = gd._fullLayout, r = gd.getBoundingClientRect();
        return [l._size.l + l.xaxis.l2p(arguments[1]) - r.width / 2,
                l._size.t + l.yaxis.l2p(arguments[2]) - r.height / 2];""",
        plot, x, y,
    )  # fmt: skip
    ActionChains(browser).move_to_element_with_offset(plot, *[int(v) for v in offset]).perform()
    import time

    for _ in range(20):
        labels = plot.find_elements("css selector", ".hoverlayer .hovertext")
        if labels and labels[0].text:
            return labels[0].text
        time.sleep(0.1)
    return ""


def test_hovering_a_manhattan_point_shows_its_statistics(page, runs, browser):
    plot = _plot(browser, '[data-view="manhattan"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    data = browser.execute_script(
        """var gd = arguments[0], best = null;
        gd._fullData.forEach(function (t) { for (var i = 0; i < t.y.length; i++) {
          if (best === null || t.y[i] > best[1]) { best = [t.x[i], t.y[i], t.text[i]]; } } });
        return best;""",
        plot,
    )
    text = _hover_point(browser, plot, data[0], data[1])
    from genoformer.engine.runs import RunResult

    results = RunResult(runs["assoc"], outputs={"r": runs["assoc"] / "assoc.tsv"}).table("r")
    top = results.nsmallest(1, "P").iloc[0]
    assert top["ID"] in text
    for field in (f"{top['#CHROM']}:{top['POS']}", f"REF {top['REF']}", f"ALT {top['ALT']}",
                  f"BETA {top['BETA']:.4g}", f"SE {top['SE']:.4g}", f"p {top['P']:.3g}"):  # fmt: skip
        assert field in text


def test_qq_by_maf_draws_four_strata_with_their_lambda_in_the_legend(page, browser):
    plot = _plot(browser, '[data-view="qq-maf"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    strata = browser.execute_script(
        "return arguments[0]._fullData.filter(function (t) { return /^MAF/.test(t.name); })"
        ".map(function (t) { return [t.name, t.x.length]; })",
        plot,
    )
    assert len(strata) == 4 and all(n > 0 for _, n in strata)
    legend = [e.text for e in plot.find_elements("css selector", ".legend .legendtext")]
    assert [name for name, _ in strata] == [text for text in legend if text.startswith("MAF")]
    assert all("λGC = " in name and "n = " in name for name, _ in strata)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_clicking_a_hit_draws_its_region_in_ld_colours(page, browser):
    row = browser.find_element("css selector", '[data-view="hits"] tr[data-hit="0"]')
    hit = row.find_elements("css selector", "td")[0].text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.click()
    plot = browser.find_element("css selector", '[data-view="regional"] .regional')
    assert plot.get_attribute("data-hit") == hit
    traces = browser.execute_script(
        "return arguments[0].data.map(function (t) {"
        " return [t.name, t.marker ? t.marker.color : null, t.x.length]; })",
        plot,
    )
    colours = {bin_["color"] for bin_ in LD_BINS}
    drawn = {colour for _, colour, n in traces if n}
    assert any(name == f"lead {hit}" for name, _, _ in traces)
    # The neighbours are coloured by their r2 (genotypes read): more than the no-r2 grey.
    assert drawn & colours - {LD_BINS[-1]["color"]}
    assert "chosen" in row.get_attribute("class")
    # The gene track: the genes of the region, on the same x axis, below the points.
    genes = browser.execute_script(
        "return arguments[0].data.filter(function (t) { return t.name === 'genes'; })"
        ".map(function (t) { return [t.yaxis, t.text.filter(function (s) { return s; })]; })",
        plot,
    )
    assert genes and genes[0][0] == "y2" and genes[0][1]
    assert all(name.strip("\u2190\u2192 ").startswith("G") for name in genes[0][1])


def test_hits_table_sorts_and_searches(page, browser):
    table = browser.find_element("css selector", '[data-view="hits"] table')
    heading = table.find_elements("css selector", "th")[-1]  # P
    heading.click()
    heading.click()  # descending
    p = [float(r.find_elements("css selector", "td")[-1].text)
         for r in table.find_elements("css selector", "tbody tr")]  # fmt: skip
    assert p == sorted(p, reverse=True)
    first = table.find_elements("css selector", "tbody tr td")[0].text
    search = browser.find_element("css selector", '[data-view="hits"] input.search')
    search.send_keys(first)
    shown = [r for r in table.find_elements("css selector", "tbody tr") if r.is_displayed()]
    assert 1 <= len(shown) < len(p)
    browser.execute_script(
        "arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input'))", search
    )
    assert all(r.is_displayed() for r in table.find_elements("css selector", "tbody tr"))


def _marker_colours(browser, plot) -> list:
    return browser.execute_script(
        """return arguments[0]._fullData.filter(function (t) { return t.visible === true; })
          .map(function (t) { return JSON.stringify(Array.isArray(t.marker.color) ||
            ArrayBuffer.isView(t.marker.color) ? Array.from(t.marker.color) : t.marker.color); });""",
        plot,
    )


def test_umap_colour_menu_recolours_the_cells(page, browser):
    plot = _plot(browser, '[data-view="umap"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    before = _marker_colours(browser, plot)
    assert len(before) == 3  # cell_type: three categories
    plot.find_element("css selector", ".updatemenu-header").click()
    buttons = plot.find_elements("css selector", ".updatemenu-dropdown-button")
    labels = [b.get_attribute("textContent") for b in buttons]
    # The corpus's attributes, then the labels of the classification runs of the report.
    assert labels == [
        "cell_type",
        "n_counts",
        "predicted (sc classify: classify)",
        "predicted (sc predict: predict)",
    ]
    buttons[1].click()
    after = _marker_colours(browser, plot)
    assert after != before and len(after) == 1  # one trace on a colour scale
    assert len(json.loads(after[0])) == 60


def test_no_view_is_blank(page, browser):
    from PIL import Image

    row = browser.find_element("css selector", '[data-view="hits"] tr[data-hit="1"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.click()
    views = browser.find_elements("css selector", ".view")
    kinds = [v.get_attribute("data-view") for v in views]
    for kind in ("manhattan", "qq", "qq-maf", "hits", "regional", "umap", "loss", "parity",
                 "confusion", "per-class", "roc", "volcano", "perturb-stats"):  # fmt: skip
        assert kind in kinds
    for view, kind in zip(views, kinds, strict=True):
        browser.execute_script("arguments[0].scrollIntoView()", view)
        image = np.asarray(Image.open(io.BytesIO(view.screenshot_as_png)).convert("L"))
        # Not one flat colour: the view drew something (lines, points, text).
        dark = (image < 200).mean()
        assert image.std() > 5 and dark > 0.002, f"view {kind} looks blank"


def test_umap_colours_by_a_classifier_s_labels(page, runs, browser):
    import pandas as pd

    plot = _plot(browser, '[data-view="umap"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    plot.find_element("css selector", ".updatemenu-header").click()
    plot.find_elements("css selector", ".updatemenu-dropdown-button")[3].click()
    shown = browser.execute_script(
        """return arguments[0]._fullData.filter(function (t) { return t.visible === true; })
          .map(function (t) { return [t.name, t.text.map(function (s) {
            return s.split("<br>")[0]; })]; });""",
        plot,
    )
    predictions = pd.read_csv(runs["predict"] / "predictions.tsv", sep="\t")
    given = dict(zip(predictions["cell_id"].astype(str), predictions["predicted"], strict=True))
    for name, cells in shown:
        # Each trace is one predicted class, and holds the cells the run gave that class.
        label = name.rsplit(" (", 1)[0]
        assert cells and {given[c] for c in cells} == {label}
    assert sum(len(cells) for _, cells in shown) == len(predictions)


def test_confusion_matrix_and_volcano_show_the_run_s_numbers(page, runs, browser):
    import pandas as pd

    plot = _plot(browser, '[data-view="confusion"]')
    cells = browser.execute_script("return arguments[0].data[0].text", plot)
    written = pd.read_csv(runs["classify"] / "confusion_matrix.tsv", sep="\t")
    assert [[int(v) for v in row] for row in cells] == written.drop(
        columns="true"
    ).to_numpy().tolist()
    volcano = _plot(browser, '[data-view="volcano"]')
    points = browser.execute_script(
        "return arguments[0]._fullData.reduce(function (n, t) { return n + (t.mode === 'markers' ?"
        " t.x.length : 0); }, 0)",
        volcano,
    )
    stats = pd.read_parquet(runs["perturb_stats"] / "stats.parquet")
    assert points == len(stats) > 0
