// Interaction for whittle's analysis page: hovering or clicking a layer (in the table or the
// legend) highlights its files in the treemap; clicking in the treemap zooms one directory
// deeper (the SVG's viewBox set to the directory's box, widened to the map's proportions), and
// the breadcrumb above it zooms back out. The zoomed path is the URL's fragment (percent-encoded),
// so the browser's back button and links work too. No network, no framework. When the script ran
// without an exception it adds #whittle-ready (tests look for it); otherwise #whittle-js-error.
(function () {
  "use strict";
  try {
    var svg = document.getElementById("treemap-svg");
    var rects = svg ? svg.querySelectorAll("rect[data-l]") : [];
    var pinned = null;
    function show(l) {
      if (!svg) { return; }
      if (l === null) { svg.classList.remove("focus"); }
      else { svg.classList.add("focus"); }
      for (var i = 0; i < rects.length; i++) {
        var r = rects[i];
        if (l !== null && r.getAttribute("data-l") === l) { r.classList.add("on"); }
        else { r.classList.remove("on"); }
      }
      var rows = document.querySelectorAll("[data-layer]");
      for (var j = 0; j < rows.length; j++) {
        rows[j].classList.toggle("sel", rows[j].getAttribute("data-layer") === l);
      }
    }
    // Drill-down. Returns the path shown at load.
    function drill() {
      var crumbs = document.getElementById("treemap-crumbs");
      if (!svg || !crumbs) { return ""; }
      var full = (svg.getAttribute("viewBox") || "0 0 1200 720").split(" ").map(parseFloat);
      var W = full[2], H = full[3];
      var groups = svg.querySelectorAll("g[data-path]");
      var byPath = {};
      for (var i = 0; i < groups.length; i++) { byPath[groups[i].getAttribute("data-path")] = groups[i]; }
      var top = groups.length ? groups[0] : null;
      var current = top;
      function chainOf(n) {
        var chain = [];
        for (; n && n !== svg; n = n.parentNode) {
          if (n.getAttribute && n.getAttribute("data-path") !== null) { chain.unshift(n); }
        }
        return chain;
      }
      function nameOf(g) {
        var p = g.getAttribute("data-path");
        return g === top ? p : p.substring(p.lastIndexOf("/") + 1);
      }
      function zoom(g) {
        current = g || top;
        var x = 0, y = 0, w = W, h = H;
        if (current && current !== top) {
          var b = current.getAttribute("data-box").split(" ").map(parseFloat);
          x = b[0]; y = b[1]; w = b[2]; h = b[3];
          // Widen to the map's proportions, so nothing is distorted and the page keeps its height.
          if (w / h > W / H) { var nh = w * H / W; y -= (nh - h) / 2; h = nh; }
          else { var nw = h * W / H; x -= (nw - w) / 2; w = nw; }
          x = Math.max(0, Math.min(x, W - w));
          y = Math.max(0, Math.min(y, H - h));
        }
        svg.setAttribute("viewBox", [x, y, w, h].join(" "));
        svg.style.setProperty("--fs", (10 * w / W) + "px");
        var path = current ? current.getAttribute("data-path") : "";
        svg.setAttribute("data-zoom", path);
        crumbs.textContent = "";
        var chain = current ? chainOf(current) : [];
        for (var j = 0; j < chain.length; j++) {
          if (j > 0) { crumbs.appendChild(document.createTextNode(j > 1 ? " / " : " ")); }
          var el;
          if (j === chain.length - 1) { el = document.createElement("b"); }
          else {
            el = document.createElement("a");
            el.href = "#" + encodeURIComponent(chain[j].getAttribute("data-path"));
          }
          el.textContent = nameOf(chain[j]);
          crumbs.appendChild(el);
        }
        return path;
      }
      function fromHash() {
        var p = "";
        try { p = decodeURIComponent(location.hash.replace(/^#/, "")); } catch (e) { p = ""; }
        return zoom(Object.prototype.hasOwnProperty.call(byPath, p) ? byPath[p] : top);
      }
      svg.addEventListener("click", function (ev) {
        var chain = chainOf(ev.target);
        var next = chain[chain.indexOf(current) + 1];
        if (next) { location.hash = encodeURIComponent(next.getAttribute("data-path")); }
      });
      window.addEventListener("hashchange", fromHash);
      return fromHash();
    }
    var items = document.querySelectorAll("[data-layer]");
    for (var k = 0; k < items.length; k++) {
      (function (el) {
        var l = el.getAttribute("data-layer");
        el.addEventListener("mouseenter", function () { if (pinned === null) { show(l); } });
        el.addEventListener("mouseleave", function () { if (pinned === null) { show(null); } });
        el.addEventListener("click", function () {
          pinned = pinned === l ? null : l;
          show(pinned);
        });
      })(items[k]);
    }
    var zoomed = drill();
    var ok = document.createElement("div");
    ok.id = "whittle-ready";
    ok.hidden = true;
    ok.textContent = "rects=" + rects.length + " zoom=" + zoomed;
    document.body.appendChild(ok);
  } catch (e) {
    var bad = document.createElement("div");
    bad.id = "whittle-js-error";
    bad.textContent = String(e);
    document.body.appendChild(bad);
  }
})();
