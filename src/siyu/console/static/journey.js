// Draws a journey's steps (nodes placed by the server: column, row) with the live counts; redrawn
// when htmx swaps in fresh counts.
(function () {
  var chart = null;
  function draw() {
    var el = document.getElementById("journey-graph");
    var src = document.getElementById("journey-graph-data");
    if (!el || !src || !window.echarts) return;
    var d = JSON.parse(src.textContent);
    if (chart) chart.dispose();
    chart = echarts.init(el);
    var colour = { end: "#5c6470", exit: "#5c6470", wait: "#8a6d00", wait_for: "#8a6d00", branch: "#6b3fa0", split: "#6b3fa0" };
    chart.setOption({
      tooltip: { formatter: function (p) { return p.dataType === "node" ? p.data.tip : p.data.text; } },
      series: [{
        type: "graph", layout: "none", roam: true, symbol: "roundRect", symbolSize: [128, 54],
        edgeSymbol: ["none", "arrow"], edgeSymbolSize: 9,
        label: { show: true, color: "#fff", fontSize: 12, lineHeight: 16 },
        edgeLabel: { show: true, fontSize: 11, color: "#1f2329", formatter: function (p) { return p.data.text; } },
        lineStyle: { color: "#9aa3ad", width: 1.5, curveness: 0.15 },
        data: d.nodes.map(function (n) {
          return { name: n.id, x: n.column * 190, y: n.row * 90, tip: n.label + " · " + n.kind_label + "<br>" + n.counts,
                   label: { formatter: n.label + "\n" + n.kind_label + "\n" + n.counts }, itemStyle: { color: colour[n.kind] || "#0b5cad" } };
        }),
        links: d.edges.map(function (e) { return { source: e.source, target: e.target, text: e.label }; })
      }]
    });
    window.addEventListener("resize", function () { if (chart) chart.resize(); });
    document.body.dataset.graphDrawn = "yes";
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
