// FinPulse sentiment dashboard. Every server string goes through textContent (no HTML injection).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const state = { ticker: null, chart: null, series: null };
  const params = new URLSearchParams(location.search);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function sourceCell(source) {  /* a long feed name is cut, not left to squeeze the titles; hover shows it */
    const text = String(source ?? "");
    const td = el("td", text.length > 40 ? text.slice(0, 39) + "\u2026" : text, "source");
    td.title = text;
    return td;
  }
  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await r.json();
    if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
    return body;
  }
  const iso = (s) => (s || "").replace("T", " ").replace("Z", "").slice(0, 16);
  const num = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(2));

  // ---- alerts -------------------------------------------------------------
  function alertItem(a, fresh) {
    const li = el("li", null, a.severity + (fresh ? " new" : ""));
    li.dataset.id = a.id;
    const head = el("div");
    head.append(el("span", a.ticker, "ticker"), el("span", a.kind.replace(/_/g, " ") + " · " + a.severity));
    li.append(head, el("div", a.message), el("div", iso(a.at) + " UTC · " + a.article_ids.length + " articles", "meta"));
    const open = () => { $("ticker").value = a.ticker; $("end").value = a.at.slice(0, 10); load(); };
    li.tabIndex = 0;  // reachable and opened by keyboard too, not by mouse only
    li.setAttribute("role", "button");  // announced as something that acts, not as plain text
    li.addEventListener("click", open);
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } });
    return li;
  }
  function addAlert(a, fresh) {
    const list = $("alerts");
    const known = list.querySelector('li[data-id="' + CSS.escape(a.id) + '"]');
    const sig = JSON.stringify(a, Object.keys(a).sort());  // list and stream order keys differently
    // the stream also sends what the list already shows (it looks a second back): leave that
    // item be, or the one an analyst has focused would vanish under the keyboard
    if (known && (!fresh || known.dataset.sig === sig)) return;
    const focused = known !== null && document.activeElement === known;
    if (known) known.remove();  // sent again: the bucket's alert changed kind or severity
    const li = alertItem(a, fresh);
    li.dataset.sig = sig;
    fresh ? list.prepend(li) : list.append(li);
    if (focused) li.focus();
    $("no-alerts").hidden = true;
    if (fresh && a.ticker === state.ticker) load();
  }
  function retractAlert(id) {  // re-evaluation no longer supports it: drop it, and its chart marker
    const known = $("alerts").querySelector('li[data-id="' + CSS.escape(id) + '"]');
    if (!known) return;
    const ticker = known.querySelector(".ticker").textContent;
    known.remove();
    $("no-alerts").hidden = $("alerts").children.length > 0;
    if (ticker === state.ticker) load();
  }
  let listed = null;  // the first fill of the list: stream events wait for it, so none it holds reads as new
  const afterList = (fn) => listed.then(fn, fn);
  async function loadAlerts() {
    const data = await getJSON("/v1/alerts?limit=100");
    data.alerts.forEach((a) => addAlert(a, false));
    $("alerts").setAttribute("aria-live", "polite");  // after the first fill: announce only new alerts
    return data.alerts;
  }
  function stream() {
    const es = new EventSource("/v1/alerts/stream?max_s=300");
    es.onopen = () => { $("live").textContent = "live"; $("live").className = "live on"; };
    es.onerror = () => {
      $("live").textContent = "reconnecting"; $("live").className = "live off";
      // EventSource retries by itself, except after an answer that is not a stream (a 503 when
      // every stream slot is taken): then it is closed for good, and a new one is opened later
      if (es.readyState === EventSource.CLOSED) setTimeout(stream, 15000);
    };
    es.addEventListener("alert", (ev) => afterList(() => addAlert(JSON.parse(ev.data), true)));
    es.addEventListener("retract", (ev) => afterList(() => retractAlert(JSON.parse(ev.data).id)));
  }

  // ---- filters ------------------------------------------------------------
  async function loadTickers() {
    const data = await getJSON("/v1/tickers");
    const dl = $("tickers");
    data.tickers.forEach((t) => { const o = el("option"); o.value = t.ticker; o.label = t.articles + " articles"; dl.append(o); });
    data.sources.forEach((s) => { const o = el("option", s); o.value = s; $("source").append(o); });
    return data.tickers;
  }

  // ---- chart --------------------------------------------------------------
  function alertMarkers(u, alerts) {
    const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
    alerts.forEach((a) => {
      const x = u.valToPos(Date.parse(a.at) / 1000, "x", true);
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
      ctx.save();
      ctx.strokeStyle = a.severity === "critical" ? "#e63946" : "#e9c46a";
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
      ctx.fillStyle = ctx.strokeStyle;
      ctx.font = 12 * devicePixelRatio + "px sans-serif";
      const nearRight = x > u.bbox.left + u.bbox.width - 160 * devicePixelRatio;
      ctx.textAlign = nearRight ? "right" : "left";
      ctx.fillText(a.kind.replace(/_/g, " ") + " ▲", nearRight ? x - 4 : x + 4, top + 14 * devicePixelRatio);
      ctx.restore();
    });
  }
  function drawChart(data) {
    const xs = data.points.map((p) => Date.parse(p.at) / 1000);
    const sent = data.points.map((p) => p.sentiment);
    const ewma = data.points.map((p) => p.ewma);
    const vol = data.points.map((p) => p.volume);
    const opts = {
      width: Math.max(400, $("chart").clientWidth - 10), height: 320,
      scales: { x: { time: true }, s: { range: [-1, 1] }, v: { range: (u, lo, hi) => [0, Math.max(1, hi) * 1.2] } },
      axes: [{}, { scale: "s", label: "sentiment" }, { scale: "v", side: 1, label: "articles", grid: { show: false } }],
      series: [
        { label: "time (UTC)" },
        { label: "volume", scale: "v", stroke: "#8d99ae", fill: "rgba(141,153,174,.35)", paths: uPlot.paths.bars({ size: [0.6, 40] }) },
        { label: "sentiment", scale: "s", stroke: "#457b9d", width: 1, points: { show: true } },
        { label: "EWMA", scale: "s", stroke: "#1d3557", width: 2, spanGaps: true },
      ],
      hooks: { draw: [(u) => alertMarkers(u, data.alerts)],
               setCursor: [(u) => { state.cursorIdx = u.cursor.idx; }] },
    };
    if (state.chart) state.chart.destroy();
    $("chart").textContent = "";
    state.chart = new uPlot(opts, [xs, vol, sent, ewma], $("chart"));
    state.chart.over.addEventListener("click", () => {
      const i = state.cursorIdx;
      if (i === null || i === undefined) return;
      const p = data.points[i];
      const bucketS = data.bucket === "1h" ? 3600 : 86400;
      const end = new Date(Date.parse(p.at) + bucketS * 1000).toISOString();
      loadArticles(p.at, end, iso(p.at) + " (" + p.volume + " articles, sentiment " + num(p.sentiment) + ")");
    });
  }

  // ---- articles -------------------------------------------------------------
  async function loadArticles(start, end, label) {
    const q = new URLSearchParams({ limit: "100" });
    if (start) q.set("start", start);
    if (end) q.set("end", end);
    if ($("source").value) q.set("source", $("source").value);
    const data = await getJSON("/v1/tickers/" + encodeURIComponent(state.ticker) + "/articles?" + q);
    $("articles-title").textContent = "Articles · " + state.ticker + (label ? " · " + label : "");
    const body = $("articles").tBodies[0];
    body.textContent = "";
    if (!data.articles.length) {
      const tr = el("tr"); const td = el("td", "No articles in this period.", "muted"); td.colSpan = 6;
      tr.append(td); body.append(tr);
    }
    data.articles.forEach((a) => {
      const tr = el("tr");
      const title = el("td", null, "title");
      if (a.url && /^https?:\/\//i.test(a.url)) {
        const link = el("a", a.title); link.href = a.url; link.target = "_blank"; link.rel = "noopener noreferrer";
        title.append(link);
      } else title.textContent = a.title;
      const s = a.scores || {};
      tr.append(el("td", iso(a.published_at), "when"), sourceCell(a.source), title, el("td", a.label || "unscored", a.label),
                el("td", num(s.negative) + " / " + num(s.neutral) + " / " + num(s.positive), "probs"), el("td", a.model_version || "–", "model"));
      body.append(tr);
    });
  }

  async function load() {
    const t = $("ticker").value.trim().replace(/^\$/, "").toUpperCase();
    if (!t) return;
    state.ticker = t;
    const q = new URLSearchParams({ window: $("window").value, bucket: $("bucket").value });
    if ($("source").value) q.set("source", $("source").value);
    if ($("end").value) q.set("end", $("end").value + "T23:59:59Z");
    history.replaceState(null, "", "?ticker=" + encodeURIComponent(t));
    try {
      const data = await getJSON("/v1/tickers/" + encodeURIComponent(t) + "/sentiment?" + q);
      $("chart-title").textContent = t + " · sentiment and volume (" + data.bucket + " buckets)";
      $("chart-note").textContent = iso(data.start) + " → " + iso(data.end) + " UTC · alerts " + data.alerts.length +
        " · models " + (data.model_versions.join(", ") || "–");
      drawChart(data);
      await loadArticles(data.start, data.end, "window");
    } catch (err) {  // nothing of the ticker shown before may pass for this one's
      if (state.chart) { state.chart.destroy(); state.chart = null; }
      $("chart").textContent = "";
      $("chart-title").textContent = t + " · sentiment and volume";
      $("chart-note").textContent = "Could not load " + t + ": " + err.message;
      $("articles-title").textContent = "Articles · " + t;
      $("articles").tBodies[0].textContent = "";
    }
  }

  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  (async function init() {
    listed = loadAlerts();
    stream();  // opened with the list: an alert raised while the page loads falls in neither's gap
    const [tickers, alerts] = await Promise.all([loadTickers(), listed]);
    const first = params.get("ticker") || (alerts[0] && alerts[0].ticker) || (tickers[0] && tickers[0].ticker);
    if (first) { $("ticker").value = first; await load(); }
  })();
})();
