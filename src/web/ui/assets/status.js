// The status page's only script: hovering or tapping a daily bar shows
// that day's figures (its <title>: uptime, downtime, incidents) under the
// bars. The page is complete without it: every figure is in the HTML.
"use strict";

(function () {
  function barAt(svg, event) {
    // The bar under the pointer, or the nearest one by x (the gaps
    // between bars are narrow, and a finger is wide).
    if (event.target && event.target.dataset && event.target.dataset.day) {
      return event.target;
    }
    var bars = svg.querySelectorAll("[data-day]");
    if (!bars.length) {
      return null;
    }
    var box = svg.getBoundingClientRect();
    var index = Math.floor(((event.clientX - box.left) / box.width) * bars.length);
    return bars[Math.max(0, Math.min(bars.length - 1, index))];
  }

  function show(check, bar) {
    var detail = check.querySelector(".day-detail");
    if (!detail) {
      return;
    }
    check.querySelectorAll("svg.bars .current").forEach(function (b) {
      b.classList.remove("current");
    });
    if (!bar) {
      detail.hidden = true;
      return;
    }
    bar.classList.add("current");
    var title = bar.querySelector("title");
    detail.textContent = title ? title.textContent : bar.dataset.day;
    detail.hidden = false;
  }

  document.querySelectorAll("[data-check]").forEach(function (check) {
    var svg = check.querySelector("svg.bars");
    if (!svg) {
      return;
    }
    svg.addEventListener("pointermove", function (event) {
      show(check, barAt(svg, event));
    });
    svg.addEventListener("click", function (event) {
      show(check, barAt(svg, event));
    });
    svg.addEventListener("pointerleave", function (event) {
      // A tap leaves the detail shown; a mouse leaving hides it.
      if (event.pointerType === "mouse") {
        show(check, null);
      }
    });
  });
})();
