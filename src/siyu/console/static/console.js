// Draws the overview's ECharts from the JSON the server put in the fragment (no inline handlers).
(function () {
  function draw(root) {
    var src = root.querySelector("#overview-charts");
    if (!src || !window.echarts) return;
    var d = JSON.parse(src.textContent);
    var opts = {
      layers: { tooltip: {}, grid: { containLabel: true }, xAxis: { type: "category", data: d.layers.names, axisLabel: { interval: 0, rotate: 20 } }, yAxis: { type: "value" }, series: [{ type: "bar", data: d.layers.values }] },
      sankey: { tooltip: {}, series: [{ type: "sankey", data: d.sankey.nodes, links: d.sankey.links, emphasis: { focus: "adjacency" } }] },
      connection: { tooltip: {}, xAxis: { type: "value", max: 100 }, yAxis: { type: "category", data: d.connection.fields }, series: [{ type: "bar", data: d.connection.rates }], grid: { left: 110 } },
      clv: { tooltip: {}, legend: {}, grid: { containLabel: true }, xAxis: { type: "category", data: d.clv.names, axisLabel: { interval: 0, rotate: 20 } }, yAxis: { type: "value" }, series: [{ name: "CLV", type: "bar", data: d.clv.values }, { name: "predicted", type: "bar", data: d.clv.predicted }] },
      matrix: { tooltip: { formatter: function (p) { return d.matrix.y[p.value[1]] + "<br>" + d.matrix.x[p.value[0]] + "<br>¥" + p.value[2] + " · " + p.value[3]; } }, grid: { containLabel: true, bottom: 60 }, xAxis: { type: "category", data: d.matrix.x, axisLabel: { interval: 0, rotate: 30 } }, yAxis: { type: "category", data: d.matrix.y }, visualMap: { min: 0, max: d.matrix.max || 1, calculable: true, orient: "horizontal", left: "center", bottom: 0 }, series: [{ type: "heatmap", data: d.matrix.cells, label: { show: true, formatter: function (p) { return p.value[3]; } } }] },
      trend: { tooltip: { trigger: "axis" }, grid: { containLabel: true }, xAxis: { type: "category", data: d.trend.periods }, yAxis: { type: "value" }, series: [{ type: "line", data: d.trend.capital, smooth: true }] }
    };
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var chart = echarts.init(el);
      chart.setOption(opts[el.dataset.chart]);
      window.addEventListener("resize", function () { chart.resize(); });
    });
    document.body.dataset.chartsDrawn = "yes";
  }
  document.addEventListener("htmx:afterSettle", function (e) { draw(e.target); });
})();
