"""The report of a 1,000,000-variant association run in headless chromium, against plotly's own
page of every point (no thinning), in one run.

Writes random genotypes (1,000,000 variants on 22 chromosomes, 300 samples, a few causal
variants) as PLINK files, runs ``genoformer gwas assoc`` on them, writes the report of that
run (LD of the top hits from the genotypes) and a plain plotly page of all 1,000,000 points
(one scattergl trace with the same hover text), then opens both in the Debian chromium the
tests use. Prints, for each page: its size, the load time (navigation start to the load
event) and the drawing time after load (until every plotly figure has drawn); the last line
is the ratio of the plain page's time (load + drawing) to the report's.

    .venv/bin/python bench/bench_report.py                   # 1,000,000 variants
    .venv/bin/python bench/bench_report.py --variants 200000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "report"))

WAIT_DRAWN = """
var done = arguments[arguments.length - 1];
function drawn() {
  var plots = document.querySelectorAll(".plotly-graph-div");
  return plots.length > 0 && Array.prototype.every.call(plots, function (gd) {
    return gd._fullLayout && gd.querySelector(".main-svg") && !gd._transitioning;
  });
}
(function poll() {
  if (drawn()) {
    requestAnimationFrame(function () { requestAnimationFrame(function () {
      done([performance.now(), performance.getEntriesByType("navigation")[0].loadEventEnd]);
    }); });
  } else { setTimeout(poll, 20); }
})();
"""


def _cohort(folder: Path, n_variants: int, n_samples: int, seed: int = 0) -> str:
    """Random PLINK genotypes (MAF 0.05-0.5) and a phenotype with 20 causal variants."""
    from bed_reader import to_bed

    rng = np.random.default_rng(seed)
    chroms = np.repeat(np.arange(1, 23), n_variants // 22 + 1)[:n_variants]
    pos = np.concatenate([np.sort(rng.choice(200_000_000, (chroms == c).sum(), replace=False))
                          for c in range(1, 23)]) + 1  # fmt: skip
    maf = rng.uniform(0.05, 0.5, n_variants).astype(np.float32)
    genotypes = np.empty((n_samples, n_variants), dtype=np.int8)
    for start in range(0, n_variants, 100_000):
        part = slice(start, start + 100_000)
        genotypes[:, part] = rng.binomial(2, maf[part], (n_samples, maf[part].size))
    causal = rng.choice(n_variants, 20, replace=False)
    y = genotypes[:, causal].astype(float) @ rng.normal(0, 0.6, 20) + rng.normal(size=n_samples)
    prefix = folder / "cohort"
    properties = {
        "fid": [f"f{i}" for i in range(n_samples)], "iid": [f"i{i}" for i in range(n_samples)],
        "chromosome": chroms.astype(str), "bp_position": pos,
        "sid": [f"v{c}_{p}" for c, p in zip(chroms, pos, strict=True)],
        "allele_1": np.full(n_variants, "A"), "allele_2": np.full(n_variants, "G"),
    }  # fmt: skip
    to_bed(f"{prefix}.bed", genotypes, properties=properties, count_A1=True)
    pd.DataFrame({"FID": properties["fid"], "IID": properties["iid"], "y": y}).to_csv(
        folder / "cohort.pheno", sep="\t", index=False
    )
    return str(prefix)


def _plain_page(results: pd.DataFrame, path: Path) -> None:
    """Every point in one WebGL trace with the report's hover text: plotly's own page."""
    import plotly.graph_objects as go

    from genoformer.gwas.plots.association import _genome_axis, _hover, _prepare

    table, _, _ = _genome_axis(_prepare(results))
    fig = go.Figure(go.Scattergl(x=table["x"], y=table["logp"], mode="markers",
                                 text=_hover(table), hovertemplate="%{text}<extra></extra>"))  # fmt: skip
    path.write_text(fig.to_html(include_plotlyjs=True, full_html=True))


def _open(browser, path: Path) -> tuple[float, float]:
    """Seconds to the load event, and from it until every figure has drawn."""
    browser.set_script_timeout(600)
    browser.get(path.as_uri())
    now, load = browser.execute_async_script(WAIT_DRAWN)
    return load / 1000, (now - load) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()

    import conftest  # tests/report/conftest.py: the headless Debian chromium of the tests

    from genoformer import report
    from genoformer.gwas import api

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        prefix = _cohort(folder, args.variants, args.samples)
        print(f"genotypes: {args.variants:,} variants x {args.samples} samples "
              f"({time.perf_counter() - start:.1f} s)")  # fmt: skip
        start = time.perf_counter()
        run = api.assoc(prefix, out=folder / "assoc", pheno=folder / "cohort.pheno")
        print(f"gwas assoc: {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        ours = report(run.run_dir, out=folder / "report.html")
        print(f"report written: {time.perf_counter() - start:.1f} s")
        plain = folder / "plain.html"
        _plain_page(pd.read_parquet(run.outputs["results_parquet"]), plain)
        browser = conftest.start_chromium()
        try:
            figures = {}
            for name, path in (("genoformer report", ours), ("plotly, every point", plain)):
                load, drawn = _open(browser, path)
                errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
                figures[name] = load + drawn
                print(
                    f"{name}: {path.stat().st_size / 1e6:.1f} MB, load {load:.2f} s, "
                    f"drawn {drawn:.2f} s after load, console errors {len(errors)}"
                )
        finally:
            browser.quit()
    ratio = figures["plotly, every point"] / figures["genoformer report"]
    print(f"ratio plain plotly page / genoformer report (load + drawing time): {ratio:.1f}x")


if __name__ == "__main__":
    main()
