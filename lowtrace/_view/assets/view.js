// The lowtrace trace view: a span tree with a waterfall timeline and a detail pane.
// Trace contents are untrusted (model output, user input): the DOM is built with
// textContent only, never innerHTML. Rows are virtualised so 10,000-span traces stay fast.
(function () {
  "use strict";
  var COLORS = {
    AGENT: "#7f56d9", CHAIN: "#667085", TOOL: "#f79009", LLM: "#2e90fa",
    CHAT_MODEL: "#1570ef", RETRIEVER: "#12b76a", EMBEDDING: "#06aed4",
    RERANKER: "#ee46bc", PARSER: "#98a2b3", UNKNOWN: "#98a2b3"
  };
  var ROW = 24;

  // Bidi overrides, zero-width and other invisible characters in trace text are shown as
  // marked escapes (\u202e), never obeyed: the same set as lowtrace/_controls.py.
  var CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb]|\udb40[\udc00-\udc7f]/g;

  function escapeCode(ch) {
    var cp = ch.codePointAt(0), hex = cp.toString(16);
    return cp > 0xffff ? "\\U" + ("0000000" + hex).slice(-8) : "\\u" + ("000" + hex).slice(-4);
  }

  function setText(node, text) {
    CONTROL.lastIndex = 0;
    if (!CONTROL.test(text)) { node.textContent = text; return; }
    node.textContent = "";
    var last = 0, m;
    CONTROL.lastIndex = 0;
    while ((m = CONTROL.exec(text)) !== null) {
      if (m.index > last) node.appendChild(document.createTextNode(text.slice(last, m.index)));
      var mark = document.createElement("span");
      mark.className = "lt-ctl";
      mark.title = "U+" + m[0].codePointAt(0).toString(16).toUpperCase();
      mark.textContent = escapeCode(m[0]);
      node.appendChild(mark);
      last = m.index + m[0].length;
    }
    if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
  }

  function plain(text) {
    return String(text).replace(CONTROL, escapeCode);
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) setText(node, String(text));
    return node;
  }

  // As lowtrace._textview.duration_text writes it (the list, the dashboard, the CLI).
  function fmtMs(ms) {
    if (ms < 10) return ms.toFixed(2) + " ms";
    var whole = Math.floor(ms + 0.5), hundredths = Math.floor(ms / 10 + 0.5);
    if (whole < 1000) return whole + " ms";
    if (hundredths < 6000) return (hundredths / 100).toFixed(2) + " s";
    var s = Math.floor(ms / 1000 + 0.5);
    return Math.floor(s / 60).toLocaleString("en") + " min " + (s % 60) + " s";
  }

  // Collapsible JSON: objects and arrays are <details>; deep levels start closed and are
  // built only when opened; long arrays are shown a slice at a time.
  var OPEN_DEPTH = 2, SLICE = 200;

  function jsonLeaf(key, value) {
    var line = el("div", "lt-jl");
    if (key !== null) line.appendChild(el("span", "lt-jk", key + ": "));
    var kind = value === null ? "null" : typeof value;
    line.appendChild(el("span", "lt-j" + kind, kind === "string" ? value : JSON.stringify(value)));
    return line;
  }

  function jsonNode(key, value, depth) {
    if (value === null || typeof value !== "object") return jsonLeaf(key, value);
    var isArray = Array.isArray(value), keys = isArray ? null : Object.keys(value);
    var size = isArray ? value.length : keys.length;
    var box = el("details", "lt-jn"), summary = el("summary");
    if (key !== null) summary.appendChild(el("span", "lt-jk", key + ": "));
    summary.appendChild(el("span", "lt-jmeta", isArray ? "[" + size + " items]" :
                           "{" + size + (size === 1 ? " key}" : " keys}")));
    box.appendChild(summary);
    var shown = 0, button = null;
    function more() {
      var end = Math.min(size, shown + SLICE);
      for (; shown < end; shown++) {
        var k = isArray ? String(shown) : keys[shown];
        box.insertBefore(jsonNode(k, isArray ? value[shown] : value[k], depth + 1), button);
      }
      if (shown < size && !button) {
        button = el("button", "lt-jmore");
        button.type = "button";
        button.addEventListener("click", more);
        box.appendChild(button);
      }
      if (button) {
        button.hidden = shown >= size;
        button.textContent = "show " + Math.min(SLICE, size - shown) + " more of " + (size - shown);
      }
    }
    if (depth < OPEN_DEPTH) { box.open = true; more(); }
    else box.addEventListener("toggle", function once() {
      box.removeEventListener("toggle", once);
      more();
    });
    return box;
  }

  function jsonView(raw) {
    var value;
    try { value = JSON.parse(raw); } catch (e) { return el("pre", "lt-pre", String(raw)); }
    if (value === null || typeof value !== "object")
      return el("pre", "lt-pre", typeof value === "string" ? value : JSON.stringify(value));
    var box = el("div", "lt-json");
    box.appendChild(jsonNode(null, value, 0));
    return box;
  }

  function start(root) {
    var data = JSON.parse(root.querySelector("script.lt-data").textContent);
    var spans = data.spans;
    var byId = Object.create(null), kids = Object.create(null), roots = [];  // ids are data: no prototype keys
    spans.forEach(function (s, i) { s.index = i; byId[s.id] = s; });
    spans.forEach(function (s) {
      if (s.parent && byId[s.parent]) (kids[s.parent] = kids[s.parent] || []).push(s);
      else roots.push(s);
    });
    var t0 = data.start, total = Math.max(data.end - data.start, 1);
    var collapsed = Object.create(null), selected = roots.length ? roots[0] : null, query = "";
    var list = root.querySelector(".lt-list"), spacer = root.querySelector(".lt-spacer");
    var detail = root.querySelector(".lt-detail"), search = root.querySelector(".lt-search");
    var rows = [];
    var axis = root.querySelector(".lt-axis-row"), head = axis ? axis.offsetHeight : 0;  // sticky
    var tokCol = !!root.querySelector(".lt-axis-row .lt-tok");  // columns the header has
    var costCol = !!root.querySelector(".lt-axis-row .lt-cost");

    function matches(s) { return s.name.toLowerCase().indexOf(query) >= 0; }

    function visibleRows() {
      var out = [], keep = null;
      if (query) {  // a match and all its ancestors stay visible
        keep = Object.create(null);
        spans.forEach(function (s) {
          if (!matches(s)) return;
          for (var p = s; p && !keep[p.id]; p = byId[p.parent]) keep[p.id] = true;
        });
      }
      var stack = roots.slice().reverse().map(function (s) { return [s, 0]; });
      while (stack.length) {
        var item = stack.pop(), s = item[0], depth = item[1];
        if (keep && !keep[s.id]) continue;
        out.push([s, depth]);
        if (collapsed[s.id] && !query) continue;
        var c = kids[s.id] || [];
        for (var i = c.length - 1; i >= 0; i--) stack.push([c[i], depth + 1]);
      }
      return out;
    }

    function renderRows() {
      var from = Math.max(0, Math.floor(list.scrollTop / ROW) - 10);
      var to = Math.min(rows.length, from + Math.ceil(list.clientHeight / ROW) + 20);
      spacer.textContent = "";
      spacer.style.height = rows.length * ROW + "px";
      for (var i = from; i < to; i++) {
        var s = rows[i][0], depth = rows[i][1];
        var row = el("div", "lt-row" + (s === selected ? " lt-selected" : "") +
                     (s.status === "ERROR" ? " lt-err" : ""));
        row.style.top = i * ROW + "px";
        row.dataset.index = String(s.index);
        var name = el("div", "lt-name");
        name.style.paddingLeft = 6 + depth * 14 + "px";
        var hasKids = (kids[s.id] || []).length > 0;
        name.appendChild(el("span", "lt-toggle", hasKids ? (collapsed[s.id] ? "▸" : "▾") : ""));
        name.appendChild(el("span", "lt-label", s.name));
        name.appendChild(el("span", "lt-type", s.type));
        row.appendChild(name);
        row.appendChild(el("div", "lt-dur", fmtMs(s.dur / 1e6)));
        if (tokCol) {  // per-span tokens (in and out on hover), as in the detail pane
          var tok = el("div", "lt-tok", s.tokens ? s.tokens.total.toLocaleString("en") : "");
          if (s.tokens) tok.title = s.tokens.input.toLocaleString("en") + " in · " +
            s.tokens.output.toLocaleString("en") + " out";
          row.appendChild(tok);
        }
        if (costCol) row.appendChild(el("div", "lt-cost", s.cost_label || ""));
        var lane = el("div", "lt-lane"), bar = el("div", "lt-bar" + (s.status === "ERROR" ? " lt-err" : ""));
        bar.style.left = ((s.start - t0) / total) * 100 + "%";
        bar.style.width = Math.max((s.dur / total) * 100, 0.2) + "%";
        bar.style.background = COLORS[s.type] || COLORS.UNKNOWN;
        bar.title = plain(s.name) + " " + fmtMs(s.dur / 1e6);
        lane.appendChild(bar);
        row.appendChild(lane);
        spacer.appendChild(row);
      }
    }

    function section(title, node) {
      detail.appendChild(el("h3", null, title));
      detail.appendChild(node);
    }

    function kv(pairs) {
      var grid = el("div", "lt-kv");
      pairs.forEach(function (p) {
        if (p[1] === null || p[1] === undefined || p[1] === "") return;
        grid.appendChild(el("div", null, p[0]));
        grid.appendChild(el("div", null, p[1]));
      });
      return grid;
    }

    function renderDetail() {
      detail.textContent = "";
      var s = selected;
      if (!s) { detail.appendChild(el("p", "lt-empty", "No span selected.")); return; }
      detail.appendChild(el("h2", null, s.name));
      detail.appendChild(kv([
        ["type", s.type], ["status", s.status + (s.message ? ": " + s.message : "")],
        ["duration", fmtMs(s.dur / 1e6)], ["starts at", "+" + fmtMs((s.start - t0) / 1e6)],
        ["span id", s.id], ["parent id", s.parent],
        ["tokens", s.tokens ? s.tokens.total.toLocaleString("en") + " (" +
          s.tokens.input.toLocaleString("en") + " in / " +
          s.tokens.output.toLocaleString("en") + " out)" : null],
        ["cost", typeof s.cost === "number" ? s.cost.toFixed(6) : null]
      ]));
      [["Inputs", s.inputs], ["Outputs", s.outputs]].forEach(function (p) {
        if (p[1] !== null && p[1] !== undefined && p[1] !== "null") section(p[0], jsonView(p[1]));
      });
      if (s.attributes && Object.keys(s.attributes).length)
        section("Attributes", jsonView(JSON.stringify(s.attributes)));
      (s.events || []).forEach(function (e) {
        var body = e.attributes && e.attributes["exception.stacktrace"]
          ? e.attributes["exception.type"] + ": " + e.attributes["exception.message"] + "\n\n" +
            e.attributes["exception.stacktrace"]
          : JSON.stringify(e.attributes || {}, null, 2);
        section("Event: " + e.name + " at +" + fmtMs((e.time - t0) / 1e6), el("pre", "lt-pre", body));
      });
      if (s.truncated) detail.appendChild(el("p", "lt-note", s.truncated));
    }

    function refresh(scrollToSelected) {
      rows = visibleRows();
      if (scrollToSelected && selected) {
        for (var i = 0; i < rows.length; i++) if (rows[i][0] === selected) {
          var top = i * ROW;
          if (top < list.scrollTop) list.scrollTop = top;
          else if (top + ROW > list.scrollTop + list.clientHeight - head)
            list.scrollTop = top + ROW - list.clientHeight + head;
          break;
        }
      }
      renderRows();
      renderDetail();
    }

    list.addEventListener("scroll", renderRows);
    list.addEventListener("click", function (ev) {
      var row = ev.target.closest(".lt-row");
      if (!row) return;
      var s = spans[Number(row.dataset.index)];
      if (ev.target.classList.contains("lt-toggle")) collapsed[s.id] = !collapsed[s.id];
      selected = s;
      refresh(false);
      list.focus();
    });
    list.addEventListener("keydown", function (ev) {
      var i = -1;
      for (var k = 0; k < rows.length; k++) if (rows[k][0] === selected) { i = k; break; }
      if (ev.key === "ArrowDown" && i < rows.length - 1) selected = rows[i + 1][0];
      else if (ev.key === "ArrowUp" && i > 0) selected = rows[i - 1][0];
      else if (ev.key === "ArrowLeft" && selected) {
        if (kids[selected.id] && !collapsed[selected.id]) collapsed[selected.id] = true;
        else if (byId[selected.parent]) selected = byId[selected.parent];
      } else if (ev.key === "ArrowRight" && selected) collapsed[selected.id] = false;
      else if (ev.key === "Enter" && selected) collapsed[selected.id] = !collapsed[selected.id];
      else return;
      ev.preventDefault();
      refresh(true);
    });
    search.addEventListener("input", function () {
      query = search.value.trim().toLowerCase();
      list.scrollTop = 0;
      refresh(false);
    });
    refresh(false);
    root.dataset.ready = "true";
  }

  document.querySelectorAll(".lt-root").forEach(start);
})();
