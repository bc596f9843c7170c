// FinPulse sentiment dashboard. Every server string goes through textContent (no HTML injection).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  // data: the chart's series; query: what it was asked with (a live redraw asks again); loads: load() calls
  // so far (an answer to an older one is dropped); older: the cursor of the next, older page of alerts;
  // articleLoads: article tables asked for so far (only the newest may fill the table)
  const state = { ticker: null, chart: null, series: null, data: null, cursorIdx: null, query: null, loads: 0,
                  older: null, articleLoads: 0 };
  const params = new URLSearchParams(location.search);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  /* what a reader counts as characters: slice() on UTF-16 units cut an emoji in half (a "\ufffd"),
   * and code points would still split a ZWJ sequence (👩🏽‍💻); older browsers get code points */
  const GRAPHEMES = typeof Intl !== "undefined" && Intl.Segmenter ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;
  const characters = (text) => (GRAPHEMES ? Array.from(GRAPHEMES.segment(text), (g) => g.segment) : Array.from(text));
  function sourceCell(source) {  /* a long feed name is cut, not left to squeeze the titles; hover shows it */
    const text = String(source ?? "");
    const chars = characters(text);
    const td = el("td", chars.length > 40 ? chars.slice(0, 39).join("") + "\u2026" : text, "source");
    td.title = text;
    return td;
  }
  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await r.json().catch(() => null);  // an HTML error page (a proxy's): its status says enough
    if (r.ok && body) return body;
    throw new Error((body && body.error && body.error.message) ||
                    (r.ok ? "the server's answer is not JSON" : "HTTP " + r.status + " " + r.statusText).trim());
  }
  const iso = (s) => (s || "").replace("T", " ").replace("Z", "").slice(0, 16);
  const num = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(2));

  // ---- alerts -------------------------------------------------------------
  /* an alert is a list item holding a real button: a screen reader hears a list of N alerts (an item
   * with role=button lost the list), and the button takes the keyboard (Enter, Space) and focus itself */
  function alertItem(a, fresh) {
    const li = el("li", null, a.severity + (fresh ? " new" : ""));
    li.dataset.id = a.id;
    li.dataset.at = a.at;  // where it stands in the list (placeAlert)
    const button = el("button");
    button.type = "button";
    const head = el("span", null, "head");
    // the space keeps a screen reader's name of the item "ACME sentiment shift", not "ACMEsentiment shift"
    head.append(el("span", a.ticker, "ticker"), " ", el("span", a.kind.replace(/_/g, " ") + " · " + a.severity));
    // article_ids holds at most 50 of them: the count is article_count (absent from an older server)
    const count = a.article_count ?? a.article_ids.length;
    // spans (a button holds phrasing content only) shown as lines; the spaces keep the name's words apart
    button.append(head, " ", el("span", a.message, "message"), " ",
                  el("span", iso(a.at) + " UTC · " + count + " articles", "meta"));
    li.append(button);
    // the chart around the alert, then the articles of its bucket: the ones behind it, not the window's
    const open = async () => {
      $("ticker").value = a.ticker; $("end").value = a.at.slice(0, 10);
      await load();
      if (!state.data || !state.data.alert_bucket_s) return;
      const end = new Date(Date.parse(a.at) + state.data.alert_bucket_s * 1000).toISOString();
      // all of them (up to the endpoint's 1000), so the table agrees with the count it is titled with
      // of every source, as the alert counted them: under a source filter the table said none
      await loadArticles(a.at, end, "alert " + iso(a.at) + " · " + count + " articles" + ($("source").value ? " (all sources)" : ""),
                         Math.min(Math.max(count, 100), 1000), false);
    };
    button.addEventListener("click", open);  // a native button: Enter and Space click it too
    return li;
  }
  const itemOf = (id) => $("alerts").querySelector('li[data-id="' + CSS.escape(id) + '"]');  // its item, or null
  const buttonOf = (li) => li.querySelector("button");  // what takes the focus in an item
  const hasFocus = (li) => li !== null && li.contains(document.activeElement);
  // the list's order, the server's: event time, newest first, then id on a tie
  function precedes(a, li) {
    const t = Date.parse(a.at), u = Date.parse(li.dataset.at);
    return t !== u ? t > u : a.id < li.dataset.id;
  }
  /* an item put where it belongs by its time: a live alert for an older bucket (a late article, a
   * backfill's update) sat on top of the list said to be newest first; from the end, as a page of
   * older alerts and most of the first fill go there */
  function placeAlert(li, a) {
    const list = $("alerts");
    let next = null;
    for (let item = list.lastElementChild; item && precedes(a, item); item = item.previousElementSibling) next = item;
    list.insertBefore(li, next);
  }
  const signature = (a) => JSON.stringify(a, Object.keys(a).sort());  // list and stream order keys differently
  function addAlert(a, fresh) {
    const known = itemOf(a.id);
    const sig = signature(a);
    // the stream also sends what the list already shows (it looks a second back): leave that
    // item be, or the one an analyst has focused would vanish under the keyboard
    if (known && (!fresh || known.dataset.sig === sig)) return;
    const focused = hasFocus(known);
    if (known) known.remove();  // sent again: the bucket's alert changed kind or severity
    const li = alertItem(a, fresh);
    li.dataset.sig = sig;
    placeAlert(li, a);
    if (focused) buttonOf(li).focus();
    $("no-alerts").hidden = true;
    if (fresh) chartChanged(a.ticker);
  }
  /* the same alert with other numbers (its bucket got more articles): replaced where it stands, its
   * focus and "new" mark kept; one not listed (raised before the page, or past the first 100) is added */
  function updateAlert(a) {
    const known = itemOf(a.id);
    if (!known) return addAlert(a, true);
    const focused = hasFocus(known);
    const li = alertItem(a, known.classList.contains("new"));
    li.dataset.sig = signature(a);
    known.replaceWith(li);  // the same id is the same bucket: its place stays
    if (focused) buttonOf(li).focus();
    chartChanged(a.ticker);  // its bucket's volume and sentiment moved with it
  }
  // an alert id is TICKER-YYYYMMDDTHHMM: a retraction names the ticker even of an alert not listed
  const tickerOf = (id) => id.replace(/-\d{8}T\d{4}$/, "");
  function retractAlert(id) {  // re-evaluation no longer supports it: drop it, and its chart marker
    chartChanged(tickerOf(id));
    const known = itemOf(id);
    if (!known) return;
    // the focused one gone: focus its neighbour (or the list), not <body>, where the keyboard starts over
    const neighbour = hasFocus(known) ? known.nextElementSibling || known.previousElementSibling : null;
    const next = hasFocus(known) ? (neighbour ? buttonOf(neighbour) : $("alerts")) : null;
    known.remove();
    if (next) next.focus();
    $("no-alerts").hidden = $("alerts").children.length > 0 || !$("alerts-error").hidden;
  }
  let listed = null;  // the first fill of the list: stream events wait for it, so none it holds reads as new
  const afterList = (fn) => listed.then(fn, fn);
  const PAGE = 100;  // alerts a page of the list holds
  async function loadAlerts() {
    const data = await getJSON("/v1/alerts?limit=" + PAGE);
    data.alerts.forEach((a) => addAlert(a, false));
    $("alerts").setAttribute("aria-live", "polite");  // after the first fill: announce only new alerts
    showOlder(data.next);
    return data.alerts;
  }
  function showOlder(next) {  // the button stays while the server says there is an older page
    state.older = next || null;
    $("older").hidden = !state.older;
  }
  /* the next page after the oldest listed: the cursor is (event time, id), so alerts raised since
   * the first page neither shift it nor come twice; focus goes to the first alert it added */
  async function loadOlder() {
    const button = $("older"), list = $("alerts");
    if (!state.older || button.disabled) return;
    button.disabled = true;
    button.textContent = "Loading older alerts\u2026";
    try {
      const data = await getJSON("/v1/alerts?" + new URLSearchParams({ limit: String(PAGE), before: state.older }));
      const first = data.alerts.find((a) => !itemOf(a.id));
      list.setAttribute("aria-live", "off");  // asked for, not news: not read out one by one
      data.alerts.forEach((a) => addAlert(a, false));
      $("alerts-error").hidden = true;
      showOlder(data.next);
      if (first) buttonOf(itemOf(first.id)).focus();
    } catch (err) {
      $("alerts-error").textContent = "Could not load older alerts: " + err.message;
      $("alerts-error").hidden = false;
    } finally {
      button.disabled = false;
      button.textContent = "Older alerts";
      setTimeout(() => list.setAttribute("aria-live", "polite"), 0);  // after the additions are seen
    }
  }
  $("older").addEventListener("click", loadOlder);
  function stream() {
    const es = new EventSource("/v1/alerts/stream?max_s=300");
    es.onopen = () => { $("live").textContent = "live"; $("live").className = "live on"; };
    es.onerror = () => {
      $("live").textContent = "reconnecting"; $("live").className = "live off";
      // EventSource retries by itself, except after an answer that is not a stream (a 503 when
      // every stream slot is taken): then it is closed for good, and a new one is opened later
      if (es.readyState === EventSource.CLOSED) setTimeout(stream, 15000);
    };
    es.addEventListener("alert", (ev) => afterList(() => { const a = JSON.parse(ev.data); addAlert(a, true); tickerSeen(a.ticker); }));
    es.addEventListener("update", (ev) => afterList(() => { const a = JSON.parse(ev.data); updateAlert(a); tickerSeen(a.ticker); }));
    es.addEventListener("retract", (ev) => afterList(() => retractAlert(JSON.parse(ev.data).id)));
  }

  // ---- filters ------------------------------------------------------------
  /* the ticker suggestions and the Source list follow the store, not the page's first second: asked
   * again when the stream names a ticker they lack, or when a filter gets the focus and they are over
   * FILTERS_STALE_MS old; one request at a time, at most one per FILTERS_MIN_MS (a burst of events
   * for new tickers makes one) */
  const FILTERS_STALE_MS = 30000, FILTERS_MIN_MS = 5000;
  const filters = { at: 0, busy: null, again: false, timer: 0, known: new Set() };
  async function loadTickers() {
    const data = await getJSON("/v1/tickers");
    const dl = $("tickers");
    dl.replaceChildren(...data.tickers.map((t) => { const o = el("option"); o.value = t.ticker; o.label = t.articles + " articles"; return o; }));
    data.tickers.forEach((t) => filters.known.add(t.ticker));
    // new sources join in the server's order; none is removed, and the one picked stays picked
    const select = $("source"), shown = new Map(Array.from(select.options, (o) => [o.value, o]));
    let prev = select.options[0];  // "all"
    data.sources.forEach((s) => {
      let o = shown.get(s);
      if (!o) { o = el("option", s); o.value = s; prev.after(o); }
      prev = o;
    });
    return data.tickers;
  }
  function fetchFilters() {
    filters.at = Date.now();
    filters.busy = loadTickers().finally(() => {
      filters.busy = null;
      filters.at = Date.now();
      if (filters.again) { filters.again = false; refreshFilters(); }  // asked for while this one was out
    });
    return filters.busy;
  }
  function refreshFilters() {
    if (filters.busy) { filters.again = true; return; }
    if (filters.timer) return;  // one is due already
    const wait = filters.at + FILTERS_MIN_MS - Date.now();
    if (wait > 0) { filters.timer = setTimeout(() => { filters.timer = 0; refreshFilters(); }, wait); return; }
    fetchFilters().catch(() => null);  // the suggestions shown stay; the next focus or event asks again
  }
  // once per ticker (one beyond the list's 200 would otherwise ask with each of its events), judged
  // against the answer under way, if any: it may hold the ticker already
  function tickerSeen(t) {
    if (!t) return;
    if (filters.busy) { const later = () => tickerSeen(t); filters.busy.then(later, later); return; }
    if (filters.known.has(t)) return;
    filters.known.add(t);
    refreshFilters();
  }
  const refreshIfStale = () => { if (!filters.busy && Date.now() - filters.at > FILTERS_STALE_MS) refreshFilters(); };
  $("ticker").addEventListener("focus", refreshIfStale);
  $("source").addEventListener("focus", refreshIfStale);

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
  const bucketText = (p) => iso(p.at) + " (" + p.volume + " articles, sentiment " + num(p.sentiment) + ")";
  const chartWidth = () => $("chart").clientWidth;  // the card's width, however narrow the screen
  function pickBucket(i) {  // the articles behind one point
    const data = state.data, p = data && data.points[i];
    if (!p) return;
    const bucketS = data.bucket === "1h" ? 3600 : 86400;
    loadArticles(p.at, new Date(Date.parse(p.at) + bucketS * 1000).toISOString(), bucketText(p));
  }
  function drawChart(data) {
    const xs = data.points.map((p) => Date.parse(p.at) / 1000);
    const half = (data.bucket === "1h" ? 3600 : 86400) / 2;  // a bucket's bar is centred on its start
    const sent = data.points.map((p) => p.sentiment);
    const ewma = data.points.map((p) => p.ewma);
    const vol = data.points.map((p) => p.volume);
    const opts = {
      width: chartWidth(), height: 320,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),  // axis and legend in UTC, as labelled
      scales: { x: { time: true, range: (u, lo, hi) => [lo - half, hi + half] },  // the end bars whole
                s: { range: [-1, 1] }, v: { range: (u, lo, hi) => [0, Math.max(1, hi) * 1.2] } },
      axes: [{}, { scale: "s", label: "sentiment" }, { scale: "v", side: 1, label: "articles", grid: { show: false } }],
      series: [
        { label: "time (UTC)" },
        // bars without uPlot's automatic point markers (a dot on each bar's top, and one on the axis for an empty bucket)
        { label: "volume", scale: "v", stroke: "#8d99ae", fill: "rgba(141,153,174,.35)", paths: uPlot.paths.bars({ size: [0.6, 40] }),
          points: { show: false } },
        { label: "sentiment", scale: "s", stroke: "#457b9d", width: 1, points: { show: true } },
        { label: "EWMA", scale: "s", stroke: "#1d3557", width: 2, spanGaps: true },
      ],
      hooks: { draw: [(u) => alertMarkers(u, data.alerts)],
               setCursor: [(u) => {
                 state.cursorIdx = u.cursor.idx;
                 const p = data.points[u.cursor.idx];  // what a screen reader says for the chart (a slider)
                 if (p) { $("chart").setAttribute("aria-valuenow", u.cursor.idx + 1); $("chart").setAttribute("aria-valuetext", bucketText(p)); }
               }] },
    };
    if (state.chart) state.chart.destroy();
    $("chart").textContent = "";
    state.data = data;
    state.cursorIdx = null;
    $("chart").setAttribute("aria-valuemax", Math.max(1, xs.length));
    $("chart").setAttribute("aria-valuetext", "no bucket picked");
    state.chart = new uPlot(opts, [xs, vol, sent, ewma], $("chart"));
    state.chart.over.addEventListener("click", () => pickBucket(state.cursorIdx));
  }
  // the keyboard's way to what a click on the chart does: arrows, Home and End move between buckets
  // (↓ and ↑ as ← and →, as on any slider: a screen reader's user is told to use them)
  $("chart").addEventListener("keydown", (ev) => {
    const u = state.chart, last = u ? u.data[0].length - 1 : -1, i = state.cursorIdx;
    if (last < 0) return;
    const back = i == null ? last : Math.max(0, i - 1), on = i == null ? 0 : Math.min(last, i + 1);
    const next = { Home: 0, End: last, ArrowLeft: back, ArrowDown: back, ArrowRight: on, ArrowUp: on }[ev.key];
    if (ev.key === "Enter") pickBucket(i);
    else if (next === undefined) return;
    else u.setCursor({ left: u.valToPos(u.data[0][next], "x"), top: u.over.clientHeight / 2 });
    ev.preventDefault();
  });
  let resizing = 0;  // the chart is drawn at a width in pixels: follow the window (a phone turned, a resize)
  addEventListener("resize", () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(() => state.chart && state.chart.setSize({ width: chartWidth(), height: 320 }));
  });

  // ---- articles -------------------------------------------------------------
  function articlesNote(text, cls) {  // the table's one row when it has no articles to show
    const body = $("articles").tBodies[0];
    body.textContent = "";
    const tr = el("tr"); const td = el("td", text, cls); td.colSpan = 6;
    tr.append(td); body.append(tr);
  }
  /* the articles of the open ticker from start to end; only the newest request fills the table (a slow
   * answer for a bucket picked before, or for the ticker shown before, is dropped), and one that fails
   * says so in place of the rows: the table never goes on showing other articles under the new title */
  async function loadArticles(start, end, label, limit = 100, bySource = true) {
    const mine = ++state.articleLoads, t = state.ticker;
    const q = new URLSearchParams({ limit: String(limit) });
    if (start) q.set("start", start);
    if (end) q.set("end", end);
    if (bySource && $("source").value) q.set("source", $("source").value);
    let data;
    try {
      data = await getJSON("/v1/tickers/" + encodeURIComponent(t) + "/articles?" + q);
    } catch (err) {
      if (mine !== state.articleLoads) return;
      $("articles-title").textContent = "Articles · " + t + (label ? " · " + label : "");
      articlesNote("Could not load the articles: " + err.message, "error");
      return;
    }
    if (mine !== state.articleLoads) return;  // a newer table was asked for meanwhile
    $("articles-title").textContent = "Articles · " + t + (label ? " · " + label : "");
    const body = $("articles").tBodies[0];
    body.textContent = "";
    if (!data.articles.length) articlesNote("No articles in this period.", "muted");
    data.articles.forEach((a) => {
      const tr = el("tr");
      const title = el("td", null, "title");
      if (a.url && /^https?:\/\//i.test(a.url)) {
        const link = el("a", a.title); link.href = a.url; link.target = "_blank"; link.rel = "noopener noreferrer";
        title.append(link);
      } else title.textContent = a.title;
      const s = a.scores || {};
      // an article in a language the model does not read is listed, not scored: say so and why
      const label = el("td", a.label || (a.skip_reason ? "not scored (" + a.language + ")" : "unscored"), a.label);
      if (a.skip_reason) label.title = a.skip_reason;
      tr.append(el("td", iso(a.published_at), "when"), sourceCell(a.source), title, label,
                el("td", num(s.negative) + " / " + num(s.neutral) + " / " + num(s.positive), "probs"), el("td", a.model_version || "–", "model"));
      body.append(tr);
    });
  }

  const TICKER = /^[A-Z0-9][A-Z0-9.\-]{0,15}$/;  // the server's TICKER (services/sentiment/linking.py)
  const seriesURL = (t, q) => "/v1/tickers/" + encodeURIComponent(t) + "/sentiment?" + q;
  function showChart(t, data) {
    $("chart-title").textContent = t + " · sentiment and volume (" + data.bucket + " buckets)";
    $("chart-note").textContent = iso(data.start) + " → " + iso(data.end) + " UTC · alerts " + data.alerts.length +
      " · models " + (data.model_versions.join(", ") || "–");
    drawChart(data);
  }
  async function load() {
    let t = $("ticker").value.trim().replace(/^\$/, "").toUpperCase();
    if (!t) return;
    state.ticker = t;
    state.articleLoads++;  // the articles of what was shown before no longer fill the table
    const q = new URLSearchParams({ window: $("window").value, bucket: $("bucket").value });
    if ($("source").value) q.set("source", $("source").value);
    if ($("end").value) q.set("end", $("end").value + "T23:59:59Z");
    history.replaceState(null, "", "?ticker=" + encodeURIComponent(t));
    const mine = ++state.loads;
    state.query = null;  // no live redraw of a chart not shown yet
    try {  // a "/" in it would reach another URL: say what is wrong instead of the server's 404 text
      if (!TICKER.test(t)) throw new Error("not a ticker symbol (up to 16 letters, digits, \".\" or \"-\")");
      const data = await getJSON(seriesURL(t, q));
      if (mine !== state.loads) return;  // another ticker or filter was asked for meanwhile
      // the server's spelling ("brk-b" is BRK.B), which alerts and stream events name: a live
      // event for the open ticker must find it to redraw the chart
      if (data.ticker && data.ticker !== t) {
        t = state.ticker = data.ticker;
        $("ticker").value = t;
        history.replaceState(null, "", "?ticker=" + encodeURIComponent(t));
      }
      showChart(t, data);
      state.query = q.toString();
      await loadArticles(data.start, data.end, "window");
    } catch (err) {  // nothing of the ticker shown before may pass for this one's
      if (mine !== state.loads) return;
      if (state.chart) { state.chart.destroy(); state.chart = null; }
      state.data = null;
      $("chart").setAttribute("aria-valuetext", "no data");
      $("chart").textContent = "";
      $("chart-title").textContent = t + " · sentiment and volume";
      $("chart-note").textContent = "Could not load " + t + ": " + err.message;
      $("articles-title").textContent = "Articles · " + t;
      $("articles").tBodies[0].textContent = "";
    }
  }

  /* a stream event for the open ticker (raised, updated, retracted) moves its series and markers:
   * the first one waits REDRAW_MS, and what else arrives meanwhile joins it, so a burst makes one
   * request; the chart is redrawn in place, its picked bucket kept and the articles table left alone */
  const REDRAW_MS = 500;
  let redrawing = 0;
  function chartChanged(ticker) {
    if (ticker !== state.ticker || redrawing) return;
    redrawing = setTimeout(() => { redrawing = 0; redraw(); }, REDRAW_MS);
  }
  async function redraw() {
    const t = state.ticker, q = state.query, loads = state.loads;
    if (!q) return;  // not shown yet (the load under way asks for the series itself) or it failed
    const picked = state.cursorIdx != null && state.data && state.data.points[state.cursorIdx];
    let data;
    try {
      data = await getJSON(seriesURL(t, q));
    } catch (err) {
      return;  // the chart on screen stays; the next event or Show asks again
    }
    if (loads !== state.loads || t !== state.ticker) return;  // a load() since then has the say
    showChart(t, data);
    const i = picked ? data.points.findIndex((p) => p.at === picked.at) : -1;
    const u = state.chart;
    if (i >= 0) u.setCursor({ left: u.valToPos(u.data[0][i], "x"), top: u.over.clientHeight / 2 });
  }

  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  (async function init() {
    listed = loadAlerts().catch((err) => {  // the chart and the live stream work without the list
      $("no-alerts").hidden = true;  // not known: it is not "no alerts"
      $("alerts-error").textContent = "Could not load alerts: " + err.message;
      $("alerts-error").hidden = false;
      return [];
    });
    stream();  // opened with the list: an alert raised while the page loads falls in neither's gap
    // without the ticker list only the input's suggestions are missing
    const [tickers, alerts] = await Promise.all([fetchFilters().catch(() => null), listed]);
    const first = params.get("ticker") || (alerts[0] && alerts[0].ticker) || (tickers && tickers[0] && tickers[0].ticker);
    if (first) { $("ticker").value = first; await load(); return; }
    // nothing to chart: say why, rather than leave a blank chart and a table of headers
    if (tickers === null) {
      $("chart-note").textContent = "Could not load the list of tickers; type a ticker above and press Show.";
    } else {
      $("chart-note").textContent = "No news stored yet. Articles posted to POST /v1/news or ingested with " +
        "finpulse news ingest appear here; type a ticker above and press Show to chart one.";
    }
    articlesNote("No articles yet.", "muted");
  })();
})();
