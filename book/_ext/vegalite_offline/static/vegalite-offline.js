/* Draw every Altair / Vega-Lite chart of the page with the vegaEmbed of vegalite-bundle.js.
 *
 * Each chart is a <div class="vegalite-offline"> holding its spec and embed options as JSON in a
 * <script type="application/json"> and an empty <div class="vegalite-offline-chart">. Both scripts
 * are deferred (the bundle first), so vegaEmbed is normally defined when this runs; it still waits
 * for it, and for the document, in case a page loads them differently. The outcome of each chart is
 * written to data-vegalite-status: "rendered" or "error" (with the message shown in the page).
 */
(function () {
  "use strict";

  function showError(container, message) {
    container.dataset.vegaliteStatus = "error";
    var box = document.createElement("div");
    box.className = "vegalite-offline-error";
    box.textContent = "This chart could not be drawn: " + message;
    container.appendChild(box);
    console.error("vegalite-offline: " + message);
  }

  function embed(container) {
    if (container.dataset.vegaliteStatus) return Promise.resolve();
    container.dataset.vegaliteStatus = "pending";
    var target = container.querySelector(":scope > .vegalite-offline-chart");
    var data;
    try {
      data = JSON.parse(container.querySelector(":scope > script.vegalite-offline-spec").textContent);
    } catch (err) {
      showError(container, "unreadable spec (" + err.message + ")");
      return Promise.resolve();
    }
    return window
      .vegaEmbed(target, data.spec, data.opt || {})
      .then(function () {
        container.dataset.vegaliteStatus = "rendered";
      })
      .catch(function (err) {
        showError(container, err && err.message ? err.message : String(err));
      });
  }

  function embedAll() {
    var containers = document.querySelectorAll("div.vegalite-offline");
    return Promise.all(Array.prototype.map.call(containers, embed));
  }

  function whenReady(callback, triesLeft) {
    if (typeof window.vegaEmbed === "function") {
      callback();
    } else if (triesLeft > 0) {
      setTimeout(function () { whenReady(callback, triesLeft - 1); }, 50);
    } else {
      document.querySelectorAll("div.vegalite-offline").forEach(function (container) {
        showError(container, "the Vega bundle (vegalite-bundle.js) did not load");
      });
    }
  }

  function start() {
    whenReady(embedAll, 200); // up to 10 s
  }

  window.vegaliteOffline = { embedAll: embedAll };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
