/* global document, window, uPlot */
// The console dashboard's charts (services/admin/src/dashboard.ts). Runs in the browser: reads the series from the
// page's JSON data block (no fetch, no inline script — the page's CSP allows scripts from the admin only) and
// draws each with uPlot, loaded just before this file from /console/assets.
(function () {
  'use strict';
  var INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];
  var data = JSON.parse(document.getElementById('dashboard-data').textContent);
  var charts = [
    {
      id: 'chart-throughput',
      label: 'accepted',
      values: data.accepted,
      stroke: '#127a3a',
      fill: 'rgba(18,122,58,0.15)',
    },
    { id: 'chart-rejects', label: 'refused', values: data.refused, stroke: '#b3261e', fill: 'rgba(179,38,30,0.15)' },
    { id: 'chart-lag', label: 'lag (records)', values: data.lag, stroke: '#9a6700', fill: 'rgba(154,103,0,0.15)' },
  ];
  // Tests and curious operators: the uPlot instances by element id.
  window.mailgateCharts = {};
  charts.forEach(function (c) {
    var el = document.getElementById(c.id);
    if (!el) return;
    var width = Math.max(320, (el.parentElement || el).clientWidth - 20);
    var u = new uPlot(
      {
        width: width,
        height: 200,
        scales: {
          x: { time: true },
          y: {
            range: function (_u, min, max) {
              return [0, Math.max(1, max)];
            },
          },
        },
        series: [{}, { label: c.label, stroke: c.stroke, fill: c.fill, width: 2, spanGaps: false }],
        // Whole-number steps: every series counts messages or records.
        axes: [{}, { size: 60, incrs: INCRS }],
        legend: { show: true },
      },
      [data.t, c.values],
      el,
    );
    window.mailgateCharts[c.id] = u;
    el.setAttribute(
      'data-points',
      String(
        c.values.filter(function (v) {
          return v !== null;
        }).length,
      ),
    );
  });
  document.body.setAttribute('data-charts-ready', String(charts.length));
})();
