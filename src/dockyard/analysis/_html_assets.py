"""Inline stylesheet and script of the layers report page (see html_report.py)."""

from __future__ import annotations

CSS = """
*{box-sizing:border-box}
body{margin:0;padding:16px 20px;font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;
 color:#1d2330;background:#f5f6f8}
header h1{margin:0;font-size:20px;word-break:break-all}
header .id{color:#667;font:12px ui-monospace,monospace}
h2{font-size:16px;margin:22px 0 8px}
.cards{display:flex;gap:12px;margin:14px 0;flex-wrap:wrap}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:8px 14px;min-width:130px}
.card .k{color:#667;font-size:12px}.card .v{font-size:20px;font-weight:600}
.controls{display:flex;gap:14px;align-items:center;flex-wrap:wrap;margin-bottom:8px}
select{font:inherit;padding:3px 6px;max-width:60vw}
#crumbs{font:13px ui-monospace,monospace}
#crumbs a{color:#2458c6;cursor:pointer;text-decoration:none}
#crumbs a:hover{text-decoration:underline}
.hint{color:#889;font-size:12px}
#treemap{position:relative;width:100%;height:560px;background:#e9ecf1;
 border:1px solid #c9ced8;border-radius:4px;overflow:hidden;user-select:none}
.node{position:absolute;overflow:hidden;border:1px solid rgba(20,25,35,.35);
 font:11px/14px ui-monospace,monospace;color:#10131a;white-space:nowrap;text-overflow:ellipsis}
.node.dir{background:rgba(255,255,255,.35);cursor:zoom-in}
.node.dir>.label{display:block;padding:0 3px;background:rgba(30,35,50,.12);font-weight:600}
.node.file>.label{display:block;padding:1px 3px}
.node.file:hover,.node.dir>.label:hover{outline:2px solid #1d2330;z-index:2}
.node.wasted{background-image:repeating-linear-gradient(45deg,rgba(200,20,20,.55) 0 5px,
 rgba(255,255,255,.25) 5px 10px)!important;border-color:#a00}
#legend{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0;font-size:12px;color:#445}
#legend span.item{display:flex;align-items:center;gap:4px;cursor:pointer}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;
 vertical-align:-2px;border:1px solid rgba(0,0,0,.3)}
.swatch.waste{background-image:repeating-linear-gradient(45deg,rgba(200,20,20,.7) 0 3px,#fff 3px 6px)}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #dde1e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4}
td.num{text-align:right;white-space:nowrap}
td.cmd,td.path{font:12px ui-monospace,monospace;word-break:break-all}
#layers tr{cursor:pointer}#layers tr.sel{background:#fff6d6}
.none{color:#667}
#tip{position:fixed;pointer-events:none;background:#1d2330;color:#fff;padding:6px 8px;
 border-radius:4px;font:12px/1.4 ui-monospace,monospace;max-width:520px;z-index:10;word-break:break-all}
"""

JS = r"""
(function () {
"use strict";
var data = JSON.parse(document.getElementById("report-data").textContent);
var map = document.getElementById("treemap");
var crumbs = document.getElementById("crumbs");
var tip = document.getElementById("tip");
var select = document.getElementById("view");
var LIMIT = 6000, HEAD = 15, PAD = 2;
var state = {view: -1, path: []};
var drawn = 0;

function color(layer) {
  return "hsl(" + ((layer * 137.508 + 200) % 360).toFixed(1) + ",62%,62%)";
}
function human(n) {
  var units = ["B", "kB", "MB", "GB", "TB"], i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return i === 0 ? n + "B" : parseFloat(n.toPrecision(3)) + units[i];
}
function rootOf(view) { return view < 0 ? data.tree : data.layerTrees[view]; }
function child(node, name) {
  var kids = node.c || [];
  for (var i = 0; i < kids.length; i++) if (kids[i].n === name) return kids[i];
  return null;
}
function current() {
  var node = rootOf(state.view), path = [];
  for (var i = 0; i < state.path.length; i++) {
    var next = child(node, state.path[i]);
    if (!next || !next.c) break;
    node = next; path.push(state.path[i]);
  }
  state.path = path;
  return node;
}

// Squarified treemap: lay rows along the shorter side, closing a row when
// adding one more item would make its worst aspect ratio worse.
function worst(sum, min, max, side) {
  var s2 = sum * sum, w2 = side * side;
  return Math.max(w2 * max / s2, s2 / (w2 * min));
}
function squarify(items, x, y, w, h) {
  var out = [], total = 0, i, k;
  for (i = 0; i < items.length; i++) total += items[i].s;
  if (total <= 0 || w <= 0 || h <= 0) return out;
  var scale = (w * h) / total;
  i = 0;
  while (i < items.length) {
    var side = Math.min(w, h), start = i, sum = 0, min = Infinity, max = 0, best = Infinity;
    while (i < items.length) {
      var a = items[i].s * scale;
      var r = worst(sum + a, Math.min(min, a), Math.max(max, a), side);
      if (i > start && r > best) break;
      sum += a; min = Math.min(min, a); max = Math.max(max, a); best = r; i++;
    }
    var thick = sum / side, pos;
    if (w >= h) {
      pos = y;
      for (k = start; k < i; k++) {
        var hh = items[k].s * scale / thick;
        out.push({node: items[k], x: x, y: pos, w: thick, h: hh}); pos += hh;
      }
      x += thick; w -= thick;
    } else {
      pos = x;
      for (k = start; k < i; k++) {
        var ww = items[k].s * scale / thick;
        out.push({node: items[k], x: pos, y: y, w: ww, h: thick}); pos += ww;
      }
      y += thick; h -= thick;
    }
  }
  return out;
}

function draw(node, path, x, y, w, h) {
  var el = document.createElement("div");
  var isDir = !!node.c;
  el.className = "node " + (isDir ? "dir" : "file") + (node.w ? " wasted" : "");
  el.style.left = x.toFixed(1) + "px"; el.style.top = y.toFixed(1) + "px";
  el.style.width = Math.max(w, 1).toFixed(1) + "px"; el.style.height = Math.max(h, 1).toFixed(1) + "px";
  if (!isDir) el.style.background = color(node.l);
  el.setAttribute("data-path", path);
  el.setAttribute("data-size", String(node.s));
  el.setAttribute("data-layer", String(node.l));
  if (w > 34 && h > 13) {
    var label = document.createElement("span");
    label.className = "label";
    label.textContent = node.n + (w > 110 ? "  " + human(node.s) : "");
    el.appendChild(label);
  }
  map.appendChild(el);
  drawn++;
  return el;
}

function layout(node, prefix, x, y, w, h) {
  var kids = (node.c || []).filter(function (k) { return k.s > 0; });
  var cells = squarify(kids, x, y, w, h);
  for (var i = 0; i < cells.length && drawn < LIMIT; i++) {
    var c = cells[i];
    if (c.w < 2 || c.h < 2) continue;
    var path = prefix + "/" + c.node.n;
    draw(c.node, path, c.x, c.y, c.w, c.h);
    if (c.node.c && c.w > HEAD + 2 * PAD && c.h > 2 * HEAD) {
      layout(c.node, path, c.x + PAD, c.y + HEAD, c.w - 2 * PAD, c.h - HEAD - PAD);
    }
  }
}

function render() {
  var node = current();
  map.textContent = "";
  drawn = 0;
  var prefix = state.path.length ? "/" + state.path.join("/") : "";
  if (node.s > 0) {
    layout(node, prefix, 0, 0, map.clientWidth, map.clientHeight);
  } else {
    var empty = document.createElement("p");
    empty.className = "none"; empty.style.padding = "12px";
    empty.textContent = "No file contents here.";
    map.appendChild(empty);
  }
  map.setAttribute("data-view", String(state.view));
  map.setAttribute("data-root", prefix || "/");
  renderCrumbs(prefix);
  var rows = document.querySelectorAll("#layers tbody tr");
  for (var i = 0; i < rows.length; i++) {
    rows[i].classList.toggle("sel", Number(rows[i].getAttribute("data-layer")) === state.view);
  }
  select.value = String(state.view);
}

function renderCrumbs(prefix) {
  crumbs.textContent = "";
  var parts = [""].concat(state.path);
  for (var i = 0; i < parts.length; i++) {
    var a = document.createElement("a");
    a.textContent = i === 0 ? "/" : parts[i] + (i < parts.length - 1 ? "/" : "");
    a.setAttribute("data-depth", String(i));
    a.addEventListener("click", function (ev) {
      state.path = state.path.slice(0, Number(ev.currentTarget.getAttribute("data-depth")));
      render();
    });
    crumbs.appendChild(a);
  }
}

function zoomOut() {
  if (state.path.length) { state.path.pop(); render(); }
}

map.addEventListener("click", function (ev) {
  var el = ev.target.closest(".node");
  if (!el) return;
  var parts = el.getAttribute("data-path").split("/").slice(1);
  if (!el.classList.contains("dir")) parts = parts.slice(0, -1);  // a file: zoom to its directory
  if (parts.length > state.path.length) { state.path = parts; render(); }
});
map.addEventListener("contextmenu", function (ev) { ev.preventDefault(); zoomOut(); });
document.addEventListener("keydown", function (ev) {
  if ((ev.key === "Backspace" || ev.key === "Escape") && ev.target === document.body) {
    ev.preventDefault(); zoomOut();
  }
});
map.addEventListener("mousemove", function (ev) {
  var el = ev.target.closest(".node");
  if (!el) { tip.hidden = true; return; }
  var layer = data.layers[Number(el.getAttribute("data-layer"))] || {};
  var text = el.getAttribute("data-path") + "\n" + human(Number(el.getAttribute("data-size"))) +
    (el.classList.contains("dir") ? " (directory)" : "") +
    "\nlayer " + el.getAttribute("data-layer") + ": " + (layer.instruction || "");
  if (el.classList.contains("wasted")) text += "\noverwritten or deleted by a later layer";
  tip.textContent = text;
  tip.style.whiteSpace = "pre-wrap";
  tip.hidden = false;
  tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 540) + "px";
  tip.style.top = (ev.clientY + 14) + "px";
});
map.addEventListener("mouseleave", function () { tip.hidden = true; });

function setView(view) { state.view = view; state.path = []; render(); }
var opt = document.createElement("option");
opt.value = "-1"; opt.textContent = "All layers: the image's filesystem";
select.appendChild(opt);
var legend = document.getElementById("legend");
data.layers.forEach(function (layer) {
  var o = document.createElement("option");
  o.value = String(layer.index);
  var text = layer.instruction.replace(/\s+/g, " ");
  o.textContent = "Layer " + layer.index + " (" + human(layer.size) + "): " +
    (text.length > 70 ? text.slice(0, 67) + "..." : text);
  select.appendChild(o);
  var item = document.createElement("span");
  item.className = "item";
  item.setAttribute("data-layer", String(layer.index));
  var sw = document.createElement("span");
  sw.className = "swatch"; sw.style.background = color(layer.index);
  item.appendChild(sw);
  item.appendChild(document.createTextNode("layer " + layer.index));
  item.addEventListener("click", function () { setView(layer.index); });
  legend.appendChild(item);
});
var w = document.createElement("span");
w.className = "item";
var wsw = document.createElement("span"); wsw.className = "swatch waste";
w.appendChild(wsw); w.appendChild(document.createTextNode("wasted (in a layer's view)"));
legend.appendChild(w);
var swatches = document.querySelectorAll("#layers .swatch");
for (var i = 0; i < swatches.length; i++) {
  swatches[i].style.background = color(Number(swatches[i].getAttribute("data-layer")));
}
var rows = document.querySelectorAll("#layers tbody tr");
for (var j = 0; j < rows.length; j++) {
  rows[j].addEventListener("click", function (ev) {
    var v = Number(ev.currentTarget.getAttribute("data-layer"));
    setView(state.view === v ? -1 : v);
  });
}
select.addEventListener("change", function () { setView(Number(select.value)); });

// #layer=N&path=/a/b opens that view
var params = {};
location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
  var i = kv.indexOf("=");
  if (i > 0) params[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1));
});
if (params.layer !== undefined && data.layerTrees[Number(params.layer)]) state.view = Number(params.layer);
if (params.path) state.path = params.path.split("/").filter(Boolean);
var timer = null;
window.addEventListener("resize", function () {
  clearTimeout(timer); timer = setTimeout(render, 100);
});
render();
document.body.setAttribute("data-ready", "1");
})();
"""
