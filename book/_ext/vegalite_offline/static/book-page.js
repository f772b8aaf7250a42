/* Every page of the book (added by the vegalite_offline extension), for readers of assistive
 * technology (what axe-core found in tests/test_layouts.py):
 *
 * - names for the theme's header buttons that match what they show (rule
 *   label-content-name-mismatch, WCAG 2.5.3: a control's accessible name contains its visible
 *   text, so that a reader who says what they see, with voice control, reaches it);
 * - a tab stop on every box that scrolls (rule scrollable-region-focusable: a keyboard reader must
 *   be able to scroll it), also once it is revealed: the theme gives scrolling code blocks and
 *   outputs a tab stop when the page loads, not when a hidden code cell output or an exercise's
 *   solution is opened; display math that scrolls on a phone (book-page.css) gets one too.
 */
(function () {
  "use strict";

  function fix() {
    // The search field of the sidebar shows "Search Ctrl+K" but is named "Search": without the
    // aria-label its name is what it shows.
    document.querySelectorAll("button.search-button-field[aria-label]").forEach(function (button) {
      if (button.textContent.trim()) button.removeAttribute("aria-label");
    });
    // The colour mode button ("Color mode") holds one icon per mode, each with a title ("Light",
    // "Dark", "System Settings") that counts as text inside the button (Font Awesome turns it into
    // the <title> of the icon's <svg>, before or after this runs). The icons are decoration: the
    // button's name says what it does, and its tooltip shows that name.
    document.querySelectorAll(".theme-switch-button .theme-switch").forEach(function (icon) {
      icon.removeAttribute("title");
      icon.setAttribute("aria-hidden", "true");
      icon.querySelectorAll("title").forEach(function (title) { title.remove(); });
    });
  }

  // What the theme gives a tab stop when it scrolls (its own list), and display math.
  var SCROLLERS = "pre, .nboutput > .output_area, .cell_output > .output, .jp-RenderedHTMLCommon, "
    + ".pst-scrollable-table-container, mjx-container[display=\"true\"]";

  function tabStops() {
    document.querySelectorAll(SCROLLERS).forEach(function (el) {
      if (el.scrollWidth > el.clientWidth || el.scrollHeight > el.clientHeight) el.tabIndex = 0;
    });
  }

  // Again after anything is opened (a <details>, a toggled solution), MathJax has typeset, or the
  // window changed size; at most every 100 ms.
  var timer = null;
  function later() {
    clearTimeout(timer);
    timer = setTimeout(tabStops, 100);
  }

  function start() {
    fix();
    tabStops();
    document.addEventListener("toggle", later, true);
    window.addEventListener("resize", later);
    // Font Awesome may turn the mode button's icons into <svg> with a <title> after fix() ran.
    new MutationObserver(function () { fix(); later(); }).observe(document.body, {
      subtree: true, childList: true, attributes: true, attributeFilter: ["class", "open"],
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
