"""One figure description, rendered as a picture and as a page."""

from __future__ import annotations

import numpy as np

from genoformer.engine.figures import (
    Axis,
    Band,
    Chart,
    Heatmap,
    Line,
    Note,
    Panel,
    RefLine,
    Scatter,
    palette,
    render_html,
    render_png,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chart() -> Chart:
    x = np.arange(5.0)
    points = Panel(
        [
            Band(x, x - 1, x + 1, label="band"),
            Line([0, 4], [0, 4], dash="dash", label="y = x"),
            Scatter(x, x**2, "#1f4e79", hover=[f"point {i} of 5" for i in range(5)]),
            Scatter(x[:0], x[:0], "red", label="nothing here"),  # empty: drawn by neither
        ],
        [RefLine(3.5, color="red", label="threshold")],
        [Note(4.0, 16.0, "top point")],
        x=Axis(grid=False),
        y=Axis("value", tex=r"$v$", from_zero=True),
    )
    cells = Panel(
        [
            Heatmap(
                np.array([[0.0, 1.0], [1.0, 0.0]]),
                ["a", "b"],
                ["a", "b"],
                cmap="RdBu_r",
                vmin=-1,
                vmax=1,
                colorbar="contrast",
                hover=[["aa", "ab"], ["ba", "bb"]],
                marks=np.array([[False, True], [True, False]]),
            )
        ],
        x=Axis("position", ticks=[0, 1], tick_labels=["one", "two"], sparse_past=1),
    )
    return Chart([points, cells], title="demo", subtitle="n = 5", size=(4, 5))


def test_one_chart_makes_the_picture_and_the_page(tmp_path):
    chart = _chart()
    written = render_png(chart, tmp_path / "demo.png")
    assert [p.name for p in written] == ["demo.png", "demo.pdf"]
    assert written[0].read_bytes()[:8] == PNG_MAGIC
    assert written[1].read_bytes()[:5] == b"%PDF-"
    page = render_html(chart, tmp_path / "demo.html")
    assert page == tmp_path / "demo.html"
    html = page.read_text()
    # The page draws what the description holds: hover text, title, lines, ticks.
    assert "point 3 of 5" in html
    assert "demo: n = 5" in html
    assert '"y0":3.5' in html
    assert '"ticktext":["one","two"]' in html
    assert "scattergl" in html and "heatmap" in html and "top point" in html
    assert "nothing here" not in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.html", "demo.pdf", "demo.png"]


def test_a_single_panel_page_and_palette(tmp_path):
    chart = Chart([Panel([Scatter(np.zeros(1), np.zeros(1), palette(1)[0])], message="hi")])
    assert "hi" in render_html(chart, tmp_path / "one.html").read_text()
    (png,) = render_png(chart, tmp_path / "one", formats=("png",))
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert palette(12)[:2] == ["#1f77b4", "#ff7f0e"] and palette(12)[10] == "#1f77b4"
