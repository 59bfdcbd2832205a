// jwtguard console: the live decision-rate chart of the overview, drawn
// from the server-sent counters (one message a second) without a library.
"use strict";
(function () {
  const canvas = document.getElementById("rates");
  if (!canvas || !window.EventSource) { return; }
  const ctx = canvas.getContext("2d");
  const tbody = document.querySelector("#rates-table tbody");
  const points = 120; // two minutes of history
  const series = { allowed: [], denied: [], unavailable: [] };
  const colours = { allowed: "#146c2e", denied: "#b3261e", unavailable: "#b06000" };
  const unavailable = new Set(["not_ready", "revocation_unavailable"]);
  let last = null;

  function row(reason) {
    let tr = tbody.querySelector('tr[data-reason="' + CSS.escape(reason) + '"]');
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.reason = reason;
      for (const cls of ["name", "rate", "total"]) {
        const td = document.createElement("td");
        td.className = cls;
        tr.appendChild(td);
      }
      tr.querySelector(".name").textContent = reason;
      tbody.appendChild(tr);
    }
    return tr;
  }

  function draw() {
    const w = canvas.width, h = canvas.height, pad = 30;
    ctx.clearRect(0, 0, w, h);
    let max = 1;
    for (const k in series) { for (const v of series[k]) { max = Math.max(max, v); } }
    ctx.fillStyle = getComputedStyle(document.body).color;
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(max.toFixed(0) + "/s", 2, 12);
    ctx.fillText("0", 2, h - 4);
    let legend = pad;
    for (const k in series) {
      const s = series[k];
      ctx.strokeStyle = colours[k];
      ctx.lineWidth = 2;
      ctx.beginPath();
      s.forEach(function (v, i) {
        const x = pad + (w - pad) * (i + points - s.length) / (points - 1);
        const y = h - 4 - (h - 20) * v / max;
        if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
      });
      ctx.stroke();
      ctx.fillStyle = colours[k];
      ctx.fillText(k + " " + (s.length ? s[s.length - 1].toFixed(0) : "0") + "/s", legend + 40, 12);
      legend += 150;
    }
  }

  const es = new EventSource(canvas.dataset.stream);
  es.onmessage = function (ev) {
    const cur = JSON.parse(ev.data);
    if (last) {
      const secs = Math.max((cur.t - last.t) / 1000, 0.001);
      const sums = { allowed: 0, denied: 0, unavailable: 0 };
      for (const reason in cur.counts) {
        const d = (cur.counts[reason] - (last.counts[reason] || 0)) / secs;
        const tr = row(reason);
        tr.querySelector(".rate").textContent = d.toFixed(1);
        tr.querySelector(".total").textContent = cur.counts[reason];
        if (reason === "ok") { sums.allowed += d; } else if (unavailable.has(reason)) { sums.unavailable += d; } else { sums.denied += d; }
      }
      for (const k in sums) {
        series[k].push(sums[k]);
        if (series[k].length > points) { series[k].shift(); }
      }
      canvas.dataset.allowed = sums.allowed.toFixed(1);
      canvas.dataset.points = String(series.allowed.length);
      draw();
    }
    last = cur;
  };
})();
