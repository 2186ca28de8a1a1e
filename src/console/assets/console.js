// Live updates: the server sends one event per committed change of this account's
// world (server-sent events); every element marked data-live-src is fetched again
// and replaced. No framework, no drawing library: the SVG comes from the server.
(function () {
  "use strict";
  var targets = document.querySelectorAll("[data-live-src]");
  if (!targets.length || !window.EventSource) return;
  var status = document.getElementById("live-status");
  // A page may name its own stream (the instructor's dashboard follows progress).
  var named = document.querySelector("[data-live-events]");
  var source = new EventSource(named ? named.getAttribute("data-live-events") : "/console/events");
  var pending = false;
  function refresh() {
    pending = false;
    targets.forEach(function (el) {
      fetch(el.getAttribute("data-live-src"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) el.innerHTML = html; });
    });
  }
  source.addEventListener("change", function (e) {
    if (status) status.textContent = "Updated after " + e.data;
    // Several commits in a burst (a wizard) redraw once.
    if (!pending) { pending = true; setTimeout(refresh, 150); }
  });
  source.onopen = function () { if (status) status.textContent = "Live: changes made with the CLI appear here."; };
  source.onerror = function () { if (status) status.textContent = "Live updates paused (reconnecting)."; };
})();
