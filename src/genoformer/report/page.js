// genoformer report: the page's own script, for the two things plotly cannot do itself:
// (1) sort and search the tables, (2) a click on a hit of the top-hits table (or on that
// variant in the Manhattan plot) draws its regional view, points coloured by LD r2 with it.
// Everything else on the page is drawn by plotly.js from figures described in Python.
(function () {
  "use strict";

  function cellValue(row, column) {
    var text = row.cells[column].textContent;
    var number = parseFloat(text);
    return isNaN(number) || !/^[-+0-9.eE]+$/.test(text.trim()) ? text.toLowerCase() : number;
  }

  function sortBy(table, column, heading) {
    var ascending = heading.getAttribute("data-order") !== "asc";
    table.querySelectorAll("th").forEach(function (th) { th.removeAttribute("data-order"); });
    heading.setAttribute("data-order", ascending ? "asc" : "desc");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, column), y = cellValue(b, column);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (heading, column) {
      heading.addEventListener("click", function () { sortBy(table, column, heading); });
    });
  });

  document.querySelectorAll("input.search").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    input.addEventListener("input", function () {
      var query = input.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        row.style.display = row.textContent.toLowerCase().indexOf(query) >= 0 ? "" : "none";
      });
    });
  });

  // Regional views: data written by genoformer.report.association (positions, -log10 p and
  // hover text of the variants near the hits; per hit, its neighbours and their r2).
  function ldBin(bins, r2) {
    if (r2 === null) { return bins.length - 1; }  // the last bin: no r2
    for (var i = 0; i < bins.length - 1; i++) {
      if (r2 >= bins[i].from) { return i; }
    }
    return bins.length - 2;
  }

  function drawRegion(data, target, k) {
    var hit = data.hits[k], points = data.points, bins = data.bins;
    var traces = bins.map(function (bin) {
      return { x: [], y: [], text: [], type: "scatter", mode: "markers", name: bin.label,
               marker: { color: bin.color, size: 8, line: { width: 0.5, color: "#555" } },
               hovertemplate: "%{text}<extra></extra>" };
    });
    hit.near.forEach(function (j, n) {
      var r2 = hit.r2[n], trace = traces[ldBin(bins, r2)];
      trace.x.push(points.pos[j]); trace.y.push(points.logp[j]);
      trace.text.push(points.hover[j] + "<br>r2 with " + hit.id + ": " +
                      (r2 === null ? "NA" : r2.toFixed(3)));
    });
    traces.push({ x: [hit.pos], y: [hit.logp], text: [points.hover[hit.index]],
                  type: "scatter", mode: "markers", name: "lead " + hit.id,
                  marker: { color: data.lead_color, size: 14, symbol: "diamond",
                            line: { width: 1, color: "black" } },
                  hovertemplate: "%{text}<extra></extra>" });
    var layout = { title: { text: "region around " + hit.id + " (chr" + hit.chrom + ")" },
                   xaxis: { title: { text: "chr" + hit.chrom + " position (bp)" } },
                   yaxis: { title: { text: "-log10(p)" }, rangemode: "tozero" },
                   legend: { title: { text: "LD r2 with " + hit.id } },
                   template: data.template, height: 420, hovermode: "closest",
                   margin: { t: 50, r: 20, b: 50, l: 60 } };
    traces = traces.filter(function (t) { return t.x.length > 0; });
    if (data.genes_given) { addGeneTrack(hit, traces, layout); }
    target.setAttribute("data-hit", hit.id);
    // The "click a hit" hint goes once a region is drawn.
    target.querySelectorAll(":scope > p.note").forEach(function (p) { p.remove(); });
    Plotly.react(target, traces, layout, { displaylogo: false, responsive: true });
  }

  // The gene track: a lower panel on the same x axis, one row per gene overlapping another
  // (greedy packing in order of start), an arrow for its strand, its name on hover.
  function addGeneTrack(hit, traces, layout) {
    var ends = [], x = [], y = [], names = [], labels = { x: [], y: [], text: [] };
    hit.genes.forEach(function (gene) {
      var row = 0;
      while (row < ends.length && ends[row] >= gene.start) { row++; }
      ends[row] = gene.end + (gene.end - gene.start) * 0.05;
      var arrow = gene.strand === "+" ? " \u2192" : gene.strand === "-" ? "\u2190 " : "";
      var text = (gene.strand === "-" ? arrow : "") + gene.name + (gene.strand === "+" ? arrow : "");
      x.push(gene.start, gene.end, null); y.push(-row, -row, null);
      names.push(text, text, null);
      labels.x.push((gene.start + gene.end) / 2); labels.y.push(-row + 0.35);
      labels.text.push(text);
    });
    traces.push({ x: x, y: y, text: names, type: "scatter", mode: "lines", name: "genes",
                  line: { color: "#2c3e50", width: 8 }, yaxis: "y2", showlegend: false,
                  hovertemplate: "%{text}<extra></extra>" });
    traces.push({ x: labels.x, y: labels.y, text: labels.text, type: "scatter", mode: "text",
                  yaxis: "y2", showlegend: false, hoverinfo: "skip",
                  textfont: { size: 10 } });
    var rows = Math.max(1, ends.length);
    layout.height = 420 + 30 * rows;
    layout.yaxis.domain = [Math.min(0.5, 0.12 * rows) + 0.06, 1];
    layout.yaxis2 = { domain: [0, Math.min(0.5, 0.12 * rows)], range: [-rows + 0.4, 0.8],
                      showticklabels: false, showgrid: false, zeroline: false,
                      title: { text: hit.genes.length ? "genes" : "no genes" } };
  }

  document.querySelectorAll("table[data-regions]").forEach(function (table) {
    var data = JSON.parse(document.getElementById(table.getAttribute("data-regions")).textContent);
    var target = document.getElementById(table.getAttribute("data-target"));
    var byId = {};
    data.hits.forEach(function (hit, k) { byId[hit.id] = k; });
    function choose(k) {
      table.querySelectorAll("tr.chosen").forEach(function (r) { r.classList.remove("chosen"); });
      var row = table.querySelector('tr[data-hit="' + k + '"]');
      if (row) { row.classList.add("chosen"); }
      drawRegion(data, target, k);
    }
    table.addEventListener("click", function (event) {
      var row = event.target.closest("tr[data-hit]");
      if (row) { choose(parseInt(row.getAttribute("data-hit"), 10)); }
    });
    var manhattan = document.getElementById(table.getAttribute("data-manhattan"));
    var plot = manhattan && manhattan.querySelector(".plotly-graph-div");
    if (plot && plot.on) {
      plot.on("plotly_click", function (event) {
        var text = event.points.length ? String(event.points[0].text || "") : "";
        var id = (text.match(/^<b>(.*?)<\/b>/) || [])[1];
        if (id !== undefined && byId[id] !== undefined) { choose(byId[id]); }
      });
    }
  });
})();
