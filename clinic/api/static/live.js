// ecgpipe's live page: polls /api/live/state about once a second and draws it. No library.
//
// The token: from the address's fragment (#token=..., never sent to the server) or the form,
// kept in this tab's sessionStorage, sent as `Authorization: Bearer` on each poll; the
// fragment is removed from the address bar once read.
"use strict";

(function () {
  const KEY = "ecgpipe-live-token";
  const PAPER = "#fff5f5", MINOR = "#f4b6b6", MAJOR = "#e06c6c", TRACE = "#111";
  const COLORS = { outbox: "#e68a00", broker: "#1f77b4", stored: "#2e8b57", fault: "rgba(214,39,40,0.13)" };
  const $ = (id) => document.getElementById(id);
  let token = null, device = null, snap = null, received = 0, timer = null;

  function readToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (m) {
      sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    return sessionStorage.getItem(KEY);
  }

  function askToken(why) {
    $("token-form").hidden = false;
    $("token-error").textContent = why || "";
  }

  const num = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
  const clock = (t) => new Date(t * 1000).toISOString().slice(11, 19);

  function ago(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");

  function setNumber(id, v) {
    const el = $(id);
    el.textContent = num(v);
    el.dataset.value = v === null || v === undefined ? "" : String(v);
  }

  async function poll() {
    clearTimeout(timer);
    let wait = 1000 * ((snap && snap.refresh_s) || 1);
    try {
      const q = device ? "?device=" + encodeURIComponent(device) : "";
      const r = await fetch("/api/live/state" + q, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (r.status === 401) {
        sessionStorage.removeItem(KEY);
        token = null;
        askToken("that token is not a user's token");
        return;
      }
      if (r.status === 404 && device) {
        device = null; // the device went away (another run): show the first one
      } else if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        $("updated").textContent = "server said " + r.status + ": " + (body.detail || r.statusText);
      } else {
        snap = await r.json();
        received = performance.now();
        render(snap);
      }
    } catch (err) {
      $("updated").textContent = "no answer from the server (" + err.message + "); retrying";
      wait = 2000;
    }
    timer = setTimeout(poll, wait);
  }

  function render(s) {
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);  // for scripts and tests
    renderHeader(s);
    renderLedger(s);
    renderDevices(s.devices);
    drawBacklog(s);
    $("updated").textContent = "stack time " + clock(s.now) + " UTC" + (s.speed !== 1 ? " (" + s.speed + "×)" : "") +
      (s.build_s > 0.3 ? " · the ledger takes " + s.build_s.toFixed(1) + " s to read: refreshed every " +
        Math.max(s.refresh_s / 2, 3 * s.build_s).toFixed(1) + " s" : "");
  }

  function renderHeader(s) {
    const st = s.stack;
    $("stack-box").className = "state-" + st.state;
    $("stack-state").textContent = st.state;
    $("outage").textContent = st.outages.map((o) =>
      o.target + ": " + o.what + " since " + clock(o.since) + " (" + ago(s.now - o.since) + " ago)").join(" · ")
      || (st.error ? st.error : "");
    $("delivery").textContent = st.delivery ? "delivery " + st.delivery : "";
  }

  function renderLedger(s) {
    const l = s.ledger || {};
    for (const k of ["generated", "stored", "buffered", "evicted", "lost", "duplicates"]) setNumber("ledger-" + k, l[k]);
    $("ledger-balance").textContent = s.ledger
      ? "generated = stored + buffered + evicted + lost: " + (l.balanced ? "holds" : "DOES NOT HOLD")
      : "ledger unavailable: " + (s.ledger_error || "no stores yet");
    const rate = s.ingest_rate.per_s;
    $("ingest-rate").textContent = rate === null ? "–" : rate.toFixed(1) + " /s";
    $("ingest-rate").dataset.value = rate === null ? "" : String(rate);
    $("ingest-rate-window").textContent = "(stored per second, last " + ago(s.ingest_rate.window_s) + ")";
    setNumber("broker-queue", s.broker_queue);
  }

  function renderDevices(d) {
    setNumber("devices-online", d.online);
    setNumber("devices-offline", d.offline);
    if (!device && d.list.length) device = d.list[0].id;
    const list = $("device-list");
    const buttons = d.list.map((row) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = (row.online ? "online" : "offline") + (row.id === device ? " chosen" : "");
      b.dataset.device = row.id;
      b.title = row.id + (row.online ? " online" : " OFFLINE") + ", stored " + num(row.stored) +
        ", buffered " + num(row.buffered) + ", lost " + num(row.lost);
      const dot = document.createElement("span");
      dot.className = "dot";
      const n = document.createElement("span");
      n.className = "n";
      n.textContent = row.buffered ? num(row.buffered) : "";
      b.append(dot, row.id, n);
      return b;
    });
    list.replaceChildren(...buttons);
    if (d.shown < d.count) list.append(document.createTextNode(" … " + (d.count - d.shown) + " more"));
  }

  function sizeCanvas(c) {
    const ratio = window.devicePixelRatio || 1, w = c.clientWidth, h = Number(c.getAttribute("height"));
    if (c.width !== Math.round(w * ratio)) { c.width = Math.round(w * ratio); c.style.height = h + "px"; }
    c.height = Math.round(h * ratio);
    const g = c.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    return [g, w, h];
  }

  function drawBacklog(s) {
    const [g, w, h] = sizeCanvas($("backlog-chart"));
    const ser = s.series, pad = { l: 56, r: 64, t: 22, b: 26 };
    g.clearRect(0, 0, w, h);
    g.font = "11px system-ui, sans-serif";
    // from the first level (or a minute ago) or the first fault window's start, if earlier
    const t0 = Math.min(ser.t.length ? Math.min(ser.t[0], s.now - 10) : s.now - 60, ...s.faults.map((f) => f.start));
    const t1 = s.now;
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    const x = (t) => pad.l + ((t - t0) / Math.max(1e-9, t1 - t0)) * pw;
    const held = ser.outbox.concat(ser.broker.filter((v) => v !== null));
    const top = niceTop(Math.max(4, ...held)), topStored = niceTop(Math.max(4, ...ser.stored));
    const y = (v) => pad.t + ph - (v / top) * ph, y2 = (v) => pad.t + ph - (v / topStored) * ph;
    s.faults.forEach((f, i) => {            // fault windows first, under the lines
      const a = Math.max(x(f.start), pad.l), b = Math.min(x(f.end === null ? t1 : f.end), pad.l + pw);
      if (b <= a) return;
      g.fillStyle = COLORS.fault;
      g.fillRect(a, pad.t, Math.max(2, b - a), ph);
      g.fillStyle = "#a01010";
      g.fillText(f.target + ": " + f.fault, a + 3, pad.t + 12 + 13 * (i % 3));
    });
    g.strokeStyle = "#d9dee5"; g.fillStyle = "#5f6b7a"; g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {          // grid and both axes' labels
      const yy = pad.t + (ph * i) / 4;
      g.beginPath(); g.moveTo(pad.l, yy); g.lineTo(pad.l + pw, yy); g.stroke();
      g.textAlign = "right"; g.fillText(num(Math.round(top * (1 - i / 4))), pad.l - 6, yy + 4);
      g.textAlign = "left"; g.fillText(num(Math.round(topStored * (1 - i / 4))), pad.l + pw + 6, yy + 4);
    }
    g.textAlign = "center";
    for (let i = 0; i <= 4; i++) g.fillText(clock(t0 + ((t1 - t0) * i) / 4), pad.l + (pw * i) / 4, h - 8);
    const gap = 5 * s.refresh_s * s.speed;  // no poll for that long: the levels are not known there
    line(g, ser.t, ser.outbox, x, y, COLORS.outbox, 2, gap);
    line(g, ser.t, ser.broker, x, y, COLORS.broker, 2, gap);
    line(g, ser.t, ser.stored, x, y2, COLORS.stored, 1.5, gap);
    legend(g, pad.l, 12, [["device outboxes", COLORS.outbox], ["broker queue", COLORS.broker],
      ["stored (right axis)", COLORS.stored]]);
  }

  // the least 4 × (1, 2, 2.5 or 5 × 10^k) at or above v: four grid steps of round numbers
  function niceTop(v) {
    const raw = v / 4, p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw);
    return 4 * step;
  }

  function line(g, ts, vs, x, y, color, width, gap) {
    g.strokeStyle = color; g.lineWidth = width; g.beginPath();
    let on = false;
    ts.forEach((t, i) => {
      if (vs[i] === null || (i > 0 && t - ts[i - 1] > gap)) on = false;
      if (vs[i] === null) return;
      if (on) g.lineTo(x(t), y(vs[i])); else g.moveTo(x(t), y(vs[i]));
      on = true;
    });
    g.stroke();
  }

  function legend(g, x0, y0, items) {
    g.textAlign = "left";
    let x = x0;
    for (const [label, color] of items) {
      g.fillStyle = color; g.fillRect(x, y0 - 7, 14, 3);
      g.fillStyle = "#1d2430"; g.fillText(label, x + 18, y0 - 2);
      x += g.measureText(label).width + 40;
    }
  }

  // The strip: `seconds` of paper ending at the stack's now, carried forward between polls at
  // the stack's speed (so it scrolls), at most two refreshes ahead of the last snapshot.
  let lastDraw = 0;
  function drawEcg(at) {
    const c = $("ecg-strip");
    if (snap && snap.ecg && c.clientWidth && at - lastDraw >= 50) {  // 20 frames a second are enough
      lastDraw = at;
      const [g, w, h] = sizeCanvas(c);
      const e = snap.ecg, ahead = Math.min((performance.now() - received) / 1000, 2 * snap.refresh_s);
      const end = e.end + (e.follows === "now" ? ahead * snap.speed : 0), start = end - e.seconds;
      const mm = w / (e.seconds * 25);      // px per mm: 25 mm/s across the width
      paper(g, w, h, mm);
      const mid = h / 2;
      g.strokeStyle = TRACE; g.lineWidth = 1.3; g.beginPath();
      for (const seg of e.segments) {
        const step = 1 / seg.rate;
        const from = Math.max(0, Math.ceil((start - seg.t0) / step));
        for (let i = from; i < seg.mv.length; i++) {
          const t = seg.t0 + i * step;
          if (t > end) break;
          const px = (t - start) * 25 * mm, py = mid - seg.mv[i] * 10 * mm;
          if (i === from) g.moveTo(px, py); else g.lineTo(px, py);
        }
      }
      g.stroke();
      $("ecg-device").textContent = e.device;
      $("ecg-note").textContent = e.error ? "cannot read the store: " + e.error
        : !e.segments.length ? "nothing stored for " + e.device + " in the last " + e.seconds + " s"
          : e.follows === "now" ? plural(e.segments.length, "reading") + " in the last " + e.seconds +
            " s, the newest captured at " + clock(e.segments[e.segments.length - 1].t0) + " UTC"
            : "its newest " + e.seconds + " stored seconds (" + plural(e.segments.length, "reading") + "), ending at " +
              clock(e.end) + " UTC: " + ago(e.behind_s) + " before the stack's now";
    }
    requestAnimationFrame(drawEcg);
  }

  function paper(g, w, h, mm) {
    g.fillStyle = PAPER; g.fillRect(0, 0, w, h);
    for (let i = 0; i * mm <= w; i++) rule(g, i * mm, 0, i * mm, h, i % 5 === 0);
    const mid = h / 2, rows = Math.ceil(mid / mm);
    for (let j = -rows; j <= rows; j++) rule(g, 0, mid + j * mm, w, mid + j * mm, j % 5 === 0);
  }

  function rule(g, x1, y1, x2, y2, major) {
    g.strokeStyle = major ? MAJOR : MINOR; g.lineWidth = major ? 0.9 : 0.4;
    g.beginPath(); g.moveTo(x1, y1); g.lineTo(x2, y2); g.stroke();
  }

  function start() {
    $("device-list").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-device]");
      if (!b) return;
      device = b.dataset.device;
      for (const o of document.querySelectorAll("#device-list button")) o.classList.toggle("chosen", o === b);
      poll();
    });
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("token-input").value.trim();
      if (!v) return;
      sessionStorage.setItem(KEY, v);
      token = v;
      $("token-input").value = "";
      $("token-form").hidden = true;
      poll();
    });
    window.addEventListener("resize", () => snap && drawBacklog(snap));
    token = readToken();
    requestAnimationFrame(drawEcg);
    if (token) poll(); else askToken("");
  }

  document.addEventListener("DOMContentLoaded", start);
})();
