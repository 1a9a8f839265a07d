// Draws the overview's charts from the JSON the page carries (no inline script: see the CSP).
(function () {
  var source = document.getElementById("chart-data");
  if (!source || !window.echarts) { return; }
  var data = JSON.parse(source.textContent);
  var font = { fontFamily: "Microsoft YaHei, PingFang SC, WenQuanYi Micro Hei, sans-serif" };
  var charts = [];

  var el = document.getElementById("chart-breaches");
  if (el) {
    var bars = echarts.init(el);
    bars.setOption({
      textStyle: font, animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 40, right: 16, top: 36, bottom: 28 },
      xAxis: { type: "category", data: data.months },
      yAxis: { type: "value", minInterval: 1, name: "违约数" },
      series: data.breaches.map(function (s) {
        return { name: s.name, type: "bar", stack: "all", data: s.data };
      })
    });
    charts.push(bars);
  }

  el = document.getElementById("chart-durations");
  if (el) {
    var dots = echarts.init(el);
    var lines = data.lines.map(function (l) {
      return { name: l.name, yAxis: l.value, label: { formatter: l.name, position: "insideEndTop" } };
    });
    var series = data.durations.map(function (s) {
      return { name: s.name, type: "scatter", symbol: s.symbol, symbolSize: 10, data: s.data };
    });
    if (series.length) {
      series[0].markLine = { silent: true, symbol: "none", lineStyle: { color: "#b3261e", type: "dashed" }, data: lines };
    }
    dots.setOption({
      textStyle: font, animation: false,
      legend: { bottom: 0 },
      tooltip: {
        formatter: function (p) { return p.value[2] + "<br>" + p.seriesName + "：" + p.value[1] + " 分钟"; }
      },
      grid: { left: 50, right: 16, top: 30, bottom: 56 },
      xAxis: { type: "time" },
      yAxis: { type: "log", name: "分钟", min: 1 },
      series: series
    });
    charts.push(dots);
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  window.addEventListener("beforeprint", function () { charts.forEach(function (c) { c.resize(); }); });
}());
