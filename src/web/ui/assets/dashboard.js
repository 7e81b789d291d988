// The dashboard's one script: refreshes the checks table in place. The
// page is complete without it (the server renders every row); this only
// swaps in fresh rows from /partials/checks (same filters), at most every
// 10 seconds: each refresh is scheduled 10 s after the previous one ended,
// and a hidden tab waits until it is shown again. When the session has
// ended the partial answers with a redirect to the sign-in page: the page
// is reloaded, which shows it. No inline code anywhere: the
// Content-Security-Policy forbids it.
"use strict";

(function () {
  var PERIOD_MS = 10000;
  var table = document.getElementById("checks");
  var rows = document.getElementById("check-rows");
  if (!table || !rows || !window.fetch) {
    return;
  }
  var url = table.getAttribute("data-refresh");
  var waiting = false;

  function refresh() {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 403) {
          window.location.reload();
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          rows.innerHTML = html;
          table.setAttribute("data-refreshed", new Date().toISOString());
        }
      })
      .catch(function () {
        // A failed refresh keeps the rows shown; the next one retries.
      });
  }

  function tick() {
    if (document.hidden) {
      waiting = true;
      return;
    }
    refresh().then(schedule);
  }

  function schedule() {
    window.setTimeout(tick, PERIOD_MS);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && waiting) {
      waiting = false;
      tick();
    }
  });
  schedule();
})();
