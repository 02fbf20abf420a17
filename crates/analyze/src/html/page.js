// Interaction for whittle's analysis page: hovering or clicking a layer (in the table or the
// legend) highlights its files in the treemap. No network, no framework. When the script ran
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
    var ok = document.createElement("div");
    ok.id = "whittle-ready";
    ok.hidden = true;
    ok.textContent = "rects=" + rects.length;
    document.body.appendChild(ok);
  } catch (e) {
    var bad = document.createElement("div");
    bad.id = "whittle-js-error";
    bad.textContent = String(e);
    document.body.appendChild(bad);
  }
})();
