/* Draw every Altair / Vega-Lite chart of the page with the vegaEmbed of vegalite-bundle.js.
 *
 * Each chart is a <div class="vegalite-offline"> holding its spec and embed options as JSON in a
 * <script type="application/json"> and an empty <div class="vegalite-offline-chart">. Both scripts
 * are deferred (the bundle first), so vegaEmbed is normally defined when this runs; it still waits
 * for it, and for the document, in case a page loads them differently. The outcome of each chart is
 * written to data-vegalite-status: "rendered" or "error" (with the message shown in the page).
 *
 * At draw time, without changing what the chapters wrote:
 *
 * - One theme for every chart (vega-embed's `config`, merged under each spec's own config): the
 *   page's font at 13 px for labels and 14-15 px for titles (the body text is 16 px), one palette,
 *   one legend style (categorical legends above the plot), text and axes in the page's colours.
 * - The colour mode of the page (`data-theme` on <html>, which the theme's switch sets): in dark
 *   mode the chart is drawn on the page's dark background with light text, and the colours the
 *   chart builders chose for a white page (dark blue lines, dark grey annotations, white cell
 *   borders) are swapped for their counterparts that read on the dark one. Numbers written in
 *   heatmap cells take whichever of their two colours stands out more from their cell. A
 *   MutationObserver redraws every chart when the mode changes.
 * - The width of the column: a chart wider than its container is laid out again (grids of panels
 *   take fewer columns, side-by-side panels stack, plots get narrower, long chart and axis titles
 *   wrap, legends take fewer columns and gradient legends go below the plot), measured after
 *   drawing and redrawn until it fits. A ResizeObserver redraws a chart when its column changes
 *   width. While a chart is drawn again, data-vegalite-status is "pending".
 * - A text description for readers of assistive technology: the spec's `description`, or one made
 *   from the spec ("Line chart of loss against step, 3 series: ..."), in a visually hidden element
 *   that the container names with aria-describedby; the container is named after the chart's
 *   title, and the actions menu's button ("...") is named too.
 *
 * tests/test_layouts.py checks all of this in headless Chromium on every page of the book.
 */
(function () {
  "use strict";

  var NARROW = 560; // px: below this column width, gradient legends go below the plot
  var AXIS_ROOM = 64; // px an axis with its labels and title takes beside a plot (a first guess)
  var MIN_PLOT = 90; // px: no plot is made narrower than this
  var MAX_PASSES = 6; // draws of one chart while fitting it into its column
  var ACTIONS_ROOM = 36; // px kept free at the right of a title for the actions menu button
  var PADDING = 4; // px of empty space around the drawing (Vega's padding)

  // The book's palette: the colours the chart builders of src/viz pick by hand, as a scheme for
  // the charts that leave the colours to Vega-Lite; and, for dark mode, lighter counterparts.
  var PALETTE = {
    light: ["#08519c", "#e6550d", "#31a354", "#756bb1", "#d62728", "#8c564b", "#e377c2", "#636363"],
    dark: ["#6baed6", "#fd8d3c", "#74c476", "#bcbddc", "#ff8a80", "#c49c94", "#f7b6d2", "#bdbdbd"],
  };
  // Colours set in the specs themselves, and what each becomes on the dark page. A pale companion
  // of a strong colour (a per-step curve behind its epoch mean) stays the quieter one of the two.
  var DARK_COLOURS = {
    "#08519c": "#6baed6",
    "#e6550d": "#fd8d3c",
    "#31a354": "#74c476",
    "#756bb1": "#bcbddc",
    "#d62728": "#ff8a80",
    "#636363": "#bdbdbd",
    "#9ecae1": "#3f7cac",
    "#fdae6b": "#b4612a",
    "#bdbdbd": "#8a8f96",
    "#e5e5e5": "#303844",
    "#31688e": "#4f95c7",
  };
  var WHITE = ["white", "#fff", "#ffffff"];

  // ---- colours --------------------------------------------------------------------------------

  function mode() {
    return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
  }

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function pageColours(m) {
    var dark = m === "dark";
    return {
      background: cssVar("--pst-color-background", dark ? "#14181e" : "#ffffff"),
      text: cssVar("--pst-color-text-base", dark ? "#ced6dd" : "#222832"),
      muted: cssVar("--pst-color-text-muted", dark ? "#9ca4af" : "#48566b"),
      domain: dark ? "#8b95a1" : "#6e7781",
      grid: dark ? "#2c3440" : "#e4e7eb",
    };
  }

  function rgb(colour) {
    var m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(String(colour).trim());
    if (!m) return null;
    var h = m[1].length === 3 ? m[1].replace(/(.)/g, "$1$1") : m[1];
    return [0, 2, 4].map(function (i) { return parseInt(h.substr(i, 2), 16); });
  }

  function luminance(c) {
    var v = c.map(function (x) {
      x /= 255;
      return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  }

  function contrast(a, b) {
    var la = luminance(a), lb = luminance(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }

  function hex(c) {
    return "#" + c.map(function (x) { return ("0" + Math.round(x).toString(16)).slice(-2); }).join("");
  }

  // A colour set in a spec, as it is drawn on the dark page: its counterpart from DARK_COLOURS, or,
  // for any other colour too dark to see there (under 3:1, WCAG's minimum for graphics), the colour
  // mixed with white until it reaches that.
  function darkColour(colour, background) {
    if (typeof colour !== "string") return colour;
    var key = colour.trim().toLowerCase();
    if (DARK_COLOURS[key]) return DARK_COLOURS[key];
    var c = rgb(key), bg = rgb(background);
    if (!c || !bg || contrast(c, bg) >= 3) return colour;
    for (var t = 0.1; t <= 1; t += 0.1) {
      var mixed = c.map(function (x) { return x + (255 - x) * t; });
      if (contrast(mixed, bg) >= 3) return hex(mixed);
    }
    return "#ffffff";
  }

  function fontFamily() {
    return getComputedStyle(document.body).fontFamily || "sans-serif";
  }

  function chartConfig(m, avail) {
    var narrow = avail < NARROW;
    var c = pageColours(m);
    var font = fontFamily();
    return {
      background: c.background,
      font: font,
      padding: PADDING,
      view: { stroke: c.grid },
      title: {
        fontSize: 15, fontWeight: 600, color: c.text, anchor: "start", offset: 10,
        subtitleFontSize: 13, subtitleColor: c.muted, subtitlePadding: 4,
      },
      axis: {
        labelFontSize: 13, titleFontSize: 14, titleFontWeight: 600,
        labelColor: c.text, titleColor: c.text,
        domainColor: c.domain, tickColor: c.domain, gridColor: c.grid,
      },
      legend: {
        labelFontSize: 13, titleFontSize: 13, titleFontWeight: 600,
        labelColor: c.text, titleColor: c.text, symbolSize: 110, symbolStrokeWidth: 2,
        orient: narrow ? "bottom" : "right", titleLimit: Math.max(120, avail - 24),
      },
      header: { labelFontSize: 13, titleFontSize: 14, labelColor: c.text, titleColor: c.text },
      range: { category: PALETTE[m] },
      mark: { color: PALETTE[m][0] },
      text: { color: c.text, fontSize: 12 },
      rule: { color: c.muted },
    };
  }

  // ---- the spec, made to fit -------------------------------------------------------------------

  function clone(x) {
    return JSON.parse(JSON.stringify(x));
  }

  function children(node) {
    var out = [];
    ["hconcat", "vconcat", "concat", "layer"].forEach(function (k) {
      if (Array.isArray(node[k])) out = out.concat(node[k]);
    });
    if (node.spec && typeof node.spec === "object") out.push(node.spec);
    return out;
  }

  function isComposite(node) {
    return !!(node.hconcat || node.vconcat || node.concat || node.facet || node.repeat);
  }

  // A single view: a mark, or a layer (whose width and height are its own), not inside a layer.
  function isPlot(node) {
    return !isComposite(node) && (node.mark !== undefined || Array.isArray(node.layer));
  }

  function walk(node, visit, parent) {
    if (Array.isArray(node)) {
      node.forEach(function (n) { walk(n, visit, parent); });
      return;
    }
    if (!node || typeof node !== "object") return;
    visit(node, parent);
    Object.keys(node).forEach(function (k) {
      if (k !== "datasets" && k !== "data" && k !== "values") walk(node[k], visit, node);
    });
  }

  // Explicit colours for the dark page (see darkColour); white cell borders become the background.
  function recolour(spec, background) {
    walk(spec, function (node) {
      if (node.mark && typeof node.mark === "object") {
        ["color", "fill", "stroke"].forEach(function (k) {
          var v = node.mark[k];
          if (typeof v !== "string") return;
          node.mark[k] = k === "stroke" && WHITE.indexOf(v.toLowerCase()) >= 0
            ? background : darkColour(v, background);
        });
      }
      if (node.scale && Array.isArray(node.scale.range)) {
        node.scale.range = node.scale.range.map(function (v) { return darkColour(v, background); });
      }
    });
  }

  var LEGEND_CHANNELS = ["color", "fill", "stroke", "shape", "size", "opacity", "strokeDash", "strokeWidth"];

  function isGradient(channel, def) {
    return (channel === "color" || channel === "fill" || channel === "stroke" || channel === "opacity")
      && (def.type === "quantitative" || def.type === "temporal");
  }

  // One legend style: categorical legends above the plot, gradients beside it (below it in a
  // narrow column); fitting caps the entries in a row and the length of a gradient.
  function styleLegends(spec, narrow, fit) {
    walk(spec, function (node) {
      if (!node.encoding || typeof node.encoding !== "object") return;
      LEGEND_CHANNELS.forEach(function (channel) {
        var def = node.encoding[channel];
        if (!def || typeof def !== "object" || def.legend === null) return;
        if (!def.field && !def.aggregate && !def.condition) return;
        var legend = def.legend && typeof def.legend === "object" ? def.legend : {};
        if (isGradient(channel, def)) {
          if ((narrow || fit.legendBelow) && legend.orient !== "top") {
            legend.orient = "bottom";
            legend.direction = "horizontal";
          }
          if (fit.gradientLength) legend.gradientLength = Math.min(legend.gradientLength || 200, fit.gradientLength);
          if (fit.legendLimit) {
            legend.titleLimit = fit.legendLimit;
            var title = legend.title !== undefined ? legend.title : def.title || def.field;
            if (typeof title === "string" || Array.isArray(title)) {
              legend.title = wrapText(title, "600 13px " + fontFamily(), fit.legendLimit);
            }
          }
        } else {
          legend.orient = "top";
          legend.direction = "horizontal";
          legend.labelLimit = 0;
          if (fit.legendLimit) legend.labelLimit = fit.legendLimit;
          if (fit.legendColumns) legend.columns = Math.min(legend.columns || fit.legendColumns, fit.legendColumns);
        }
        def.legend = legend;
      });
      // Level category labels of a narrow plot (0, 1, ..., 19) leave out every other one rather
      // than run into each other; slanted ones (tokens) all stay.
      var x = node.encoding.x;
      if (narrow && x && typeof x === "object" && (x.type === "ordinal" || x.type === "nominal")
          && x.axis && x.axis.labelAngle === 0 && x.axis.labelOverlap === undefined) {
        x.axis.labelOverlap = "greedy";
      }
    });
  }

  function width(node) {
    return typeof node.width === "number" ? node.width : 300;
  }

  // How many plots stand side by side in the layout of `node`, and the widest of them.
  function across(node) {
    if (isPlot(node)) return 1;
    if (node.hconcat) return node.hconcat.reduce(function (s, n) { return s + across(n); }, 0);
    if (node.vconcat) return Math.max.apply(null, node.vconcat.map(across).concat([1]));
    if (node.concat) {
      var cols = node.columns || node.concat.length;
      return Math.min(cols, node.concat.length) * Math.max.apply(null, node.concat.map(across).concat([1]));
    }
    if (node.facet || node.repeat) return (node.columns || 1) * (node.spec ? across(node.spec) : 1);
    return 1;
  }

  function plotWidth(node) {
    if (isPlot(node)) return width(node);
    return Math.max.apply(null, children(node).map(plotWidth).concat([0]));
  }

  // Grids (concat with columns, hconcat, facet, repeat) get as many columns as the width holds.
  function reflow(node, avail, maxColumns) {
    if (!node || typeof node !== "object") return;
    var list = node.hconcat || node.concat;
    if (list) {
      var slot = plotWidth(node) + AXIS_ROOM;
      var cols = Math.max(1, Math.floor(avail / slot));
      var wanted = node.concat ? Math.min(node.columns || list.length, list.length) : list.length;
      if (maxColumns) cols = Math.min(cols, maxColumns);
      if (cols < wanted) {
        delete node.hconcat;
        if (cols === 1) {
          delete node.concat;
          delete node.columns;
          node.vconcat = list;
        } else {
          node.concat = list;
          node.columns = cols;
        }
      }
    }
    if ((node.facet || node.repeat) && node.spec) {
      var fcols = Math.max(1, Math.floor(avail / (plotWidth(node.spec) + AXIS_ROOM)));
      if (maxColumns) fcols = Math.min(fcols, maxColumns);
      if (!node.columns || node.columns > fcols) node.columns = fcols;
    }
    children(node).forEach(function (child) { reflow(child, avail, maxColumns); });
  }

  // Every plot at most `limit` px wide (and at least MIN_PLOT); a square plot stays square.
  function narrowPlots(node, limit) {
    if (!node || typeof node !== "object") return;
    if (isPlot(node)) {
      var w = width(node);
      if (w > limit) {
        var w2 = Math.max(MIN_PLOT, Math.floor(limit));
        if (typeof node.height === "number" && node.height === w) node.height = w2;
        node.width = w2;
        // Text marks with a size of their own (labels in heatmap cells) shrink with the plot.
        (Array.isArray(node.layer) ? node.layer : [node]).forEach(function (l) {
          if (l.mark && typeof l.mark === "object" && typeof l.mark.fontSize === "number") {
            l.mark.fontSize = Math.max(8, Math.round(l.mark.fontSize * Math.max(w2 / w, 0.7)));
          }
        });
      }
      return;
    }
    children(node).forEach(function (child) { narrowPlots(child, limit); });
  }

  var measureCanvas;
  function textWidth(text, font) {
    measureCanvas = measureCanvas || document.createElement("canvas");
    var ctx = measureCanvas.getContext("2d");
    ctx.font = font;
    return ctx.measureText(text).width;
  }

  function wrapLine(line, font, max) {
    var words = String(line).split(/\s+/), lines = [], current = "";
    words.forEach(function (word) {
      var next = current ? current + " " + word : word;
      if (current && textWidth(next, font) > max) {
        lines.push(current);
        current = word;
      } else {
        current = next;
      }
    });
    if (current) lines.push(current);
    return lines;
  }

  function wrapText(text, font, max) {
    var lines = Array.isArray(text) ? text : [text];
    var out = [];
    lines.forEach(function (line) { out = out.concat(wrapLine(line, font, max)); });
    return out.length === 1 ? out[0] : out;
  }

  // Vega expression `vegaliteOfflineWrap(text, maxWidth, font)` (given to vega-embed as an
  // expression function): a title computed from parameters, wrapped like the others.
  function wrapExpression(text, max, font) {
    if (text === null || text === undefined) return text;
    return wrapText(Array.isArray(text) ? text.map(String) : String(text), font, max);
  }

  function wrapTitleOf(node, max, fontFamily) {
    if (!node.title) return;
    var title = typeof node.title === "object" && !Array.isArray(node.title) ? node.title : { text: node.title };
    var titleFont = "600 " + (title.fontSize || 15) + "px " + fontFamily;
    if (typeof title.text === "string" || Array.isArray(title.text)) {
      title.text = wrapText(title.text, titleFont, max);
    } else if (title.text && typeof title.text.expr === "string") {
      title.text = {
        expr: "vegaliteOfflineWrap(" + title.text.expr + ", " + max + ", " + JSON.stringify(titleFont) + ")",
      };
    }
    if (typeof title.subtitle === "string" || Array.isArray(title.subtitle)) {
      title.subtitle = wrapText(title.subtitle, (title.subtitleFontSize || 13) + "px " + fontFamily, max);
    }
    node.title = title;
  }

  // Titles wrapped into lines: the chart's to the column (less the corner of the actions menu),
  // a panel's to its plot.
  function wrapTitles(node, max, fontFamily) {
    if (!node || typeof node !== "object") return;
    wrapTitleOf(node, max, fontFamily);
    if (isPlot(node)) return;
    children(node).forEach(function (child) {
      if (isPlot(child)) wrapTitleOf(child, Math.min(max, width(child) + 24), fontFamily);
      else wrapTitles(child, max, fontFamily);
    });
  }

  function height(node) {
    return typeof node.height === "number" ? node.height : 300;
  }

  // Axis titles wrapped into lines no longer than their side of the plot (x: its width, y: its
  // height), so that a long title does not stick out beyond the plot, and past the column. In a
  // narrow column, the labels of a band axis with level labels (model names under bars) break
  // into lines at their spaces rather than run into each other.
  function wrapAxisTitles(node, narrow, fontFamily) {
    if (!node || typeof node !== "object") return;
    if (!isPlot(node)) {
      children(node).forEach(function (child) { wrapAxisTitles(child, narrow, fontFamily); });
      return;
    }
    var font = "600 14px " + fontFamily;
    var sides = { x: width(node), x2: width(node), y: height(node), y2: height(node) };
    (Array.isArray(node.layer) ? node.layer.concat([node]) : [node]).forEach(function (l) {
      if (!l.encoding || typeof l.encoding !== "object") return;
      Object.keys(sides).forEach(function (channel) {
        var def = l.encoding[channel];
        if (!def || typeof def !== "object") return;
        var axis = def.axis && typeof def.axis === "object" ? def.axis : null;
        if (axis && (typeof axis.title === "string" || Array.isArray(axis.title))) {
          axis.title = wrapText(axis.title, font, sides[channel]);
        } else if (typeof def.title === "string" || Array.isArray(def.title)) {
          def.title = wrapText(def.title, font, sides[channel]);
        }
        if (narrow && channel === "x" && (def.type === "ordinal" || def.type === "nominal")
            && axis && axis.labelAngle === 0 && axis.labelExpr === undefined) {
          axis.labelExpr = "split(datum.label, ' ')";
        }
      });
    });
  }

  // Numbers written in heatmap cells (a text layer over a rect layer coloured by a field, in the
  // same cells) in whichever of their two colours (usually black and white) stands out more from
  // the colour of their cell, so that they stay readable at both ends of any colour scheme.
  // Only for a chart that is one layered view, whose colour scale Vega names "color".
  function readableCellText(spec) {
    if (!Array.isArray(spec.layer)) return;
    var cells = spec.layer.filter(function (l) {
      var c = l.encoding && l.encoding.color;
      return markType(l) === "rect" && c && typeof c.field === "string" && !c.aggregate
        && l.encoding.x && l.encoding.y;
    })[0];
    if (!cells) return;
    var field = cells.encoding.color.field;
    spec.layer.forEach(function (l) {
      var c = l.encoding && l.encoding.color, x = l.encoding && l.encoding.x, y = l.encoding && l.encoding.y;
      if (markType(l) !== "text" || !c || c.field || !x || !y) return;
      if (x.field !== cells.encoding.x.field || y.field !== cells.encoding.y.field) return;
      var colours = [c.value].concat(c.condition && !Array.isArray(c.condition) ? [c.condition.value] : []);
      colours = colours.filter(function (v) { return typeof v === "string"; });
      if (colours.length !== 2) return;
      var cell = "scale('color', datum[" + JSON.stringify(field) + "])";
      var a = JSON.stringify(colours[0]), b = JSON.stringify(colours[1]);
      l.encoding.color = {
        value: { expr: "contrast(" + a + ", " + cell + ") >= contrast(" + b + ", " + cell + ") ? " + a + " : " + b },
      };
    });
  }

  // The spec as drawn: recoloured for the mode, laid out for `avail` px, with the fitting state.
  function layout(original, avail, m, state) {
    var spec = clone(original);
    var narrow = avail < NARROW;
    var colours = pageColours(m);
    if (m === "dark") recolour(spec, colours.background);
    readableCellText(spec);
    styleLegends(spec, narrow, state);
    reflow(spec, avail, state.maxColumns);
    var n = across(spec);
    var limit = Math.floor((avail - n * AXIS_ROOM) / n) - state.shrink;
    narrowPlots(spec, limit);
    wrapTitles(spec, avail - ACTIONS_ROOM - 8, fontFamily());
    wrapAxisTitles(spec, narrow, fontFamily());
    return spec;
  }

  // ---- a text description -----------------------------------------------------------------------

  var MARK_NAMES = {
    line: "line", point: "point", circle: "point", square: "point", bar: "bar", rect: "heatmap",
    area: "area", rule: "rule", text: "text", tick: "tick", arc: "pie", trail: "line",
  };

  function markType(node) {
    if (node.mark === undefined) return null;
    return typeof node.mark === "string" ? node.mark : node.mark.type;
  }

  function fieldTitle(def, axisTitle) {
    if (!def || typeof def !== "object") return null;
    var t = def.title || (def.axis && def.axis.title) || axisTitle || def.field || def.aggregate;
    return Array.isArray(t) ? t.join(" ") : t ? String(t) : null;
  }

  function distinct(spec, node, field) {
    var name = (node.data && node.data.name) || (spec.data && spec.data.name);
    var rows = (name && spec.datasets && spec.datasets[name]) || (node.data && node.data.values) || [];
    var seen = [];
    rows.forEach(function (r) {
      if (r && r[field] !== undefined && seen.indexOf(r[field]) < 0) seen.push(r[field]);
    });
    return seen;
  }

  // One sentence per kind of panel: "Line chart of loss against step, 3 series: a, b, c".
  function describePlot(spec, node) {
    var layers = Array.isArray(node.layer) ? node.layer : [node];
    var enc = {};
    var kinds = [];
    layers.forEach(function (l) {
      var t = MARK_NAMES[markType(l)] || markType(l);
      if (t && t !== "text" && t !== "rule" && kinds.indexOf(t) < 0) kinds.push(t);
      Object.keys(l.encoding || {}).forEach(function (k) { if (!enc[k]) enc[k] = l.encoding[k]; });
    });
    Object.keys(node.encoding || {}).forEach(function (k) { if (!enc[k]) enc[k] = node.encoding[k]; });
    var kind = kinds.length ? kinds.join(" and ") : "text";
    var y = fieldTitle(enc.y), x = fieldTitle(enc.x);
    var s = kind === "heatmap" ? "Heatmap" : kind.charAt(0).toUpperCase() + kind.slice(1) + " chart";
    if (y && x) s += " of " + y + " against " + x;
    else if (x || y) s += " of " + (x || y);
    var colour = enc.color || enc.stroke || enc.fill;
    if (colour && colour.field) {
      var domain = colour.scale && Array.isArray(colour.scale.domain) ? colour.scale.domain : null;
      if (colour.type === "quantitative") {
        s += ", colour showing " + fieldTitle(colour);
        if (domain && domain.length === 2) s += " from " + domain[0] + " to " + domain[1];
      } else {
        var values = domain || distinct(spec, layers[0].data ? layers[0] : node, colour.field);
        if (values.length) {
          s += ", " + values.length + " series";
          if (values.length <= 8) s += ": " + values.join(", ");
        }
      }
    }
    return s;
  }

  function plots(node, out) {
    if (!node || typeof node !== "object") return out;
    if (isPlot(node)) out.push(node);
    else children(node).forEach(function (c) { plots(c, out); });
    return out;
  }

  function describe(spec) {
    if (typeof spec.description === "string" && spec.description.trim()) return spec.description;
    var sentences = [], counts = {};
    plots(spec, []).forEach(function (p) {
      var s = describePlot(spec, p);
      if (counts[s] === undefined) { counts[s] = 0; sentences.push(s); }
      counts[s] += 1;
    });
    var parts = sentences.map(function (s) {
      return counts[s] > 1 ? counts[s] + " panels, each: " + s.charAt(0).toLowerCase() + s.slice(1) : s;
    });
    if (spec.facet) parts.unshift("Panels by " + (fieldTitle(spec.facet) || "facet"));
    return parts.join(". ") + ".";
  }

  function titleText(spec) {
    var t = spec.title;
    if (t && typeof t === "object" && !Array.isArray(t)) t = t.text;
    if (Array.isArray(t)) t = t.join(" ");
    return typeof t === "string" ? t : null;
  }

  var described = 0;
  function addDescription(container, spec) {
    if (container.querySelector(":scope > .vegalite-offline-description")) return;
    var p = document.createElement("p");
    p.className = "vegalite-offline-description";
    p.id = "vegalite-offline-description-" + ++described;
    p.textContent = describe(spec);
    container.insertBefore(p, container.firstChild);
    var output = container.parentElement;
    if (output && output.classList.contains("output")) output.classList.add("vegalite-offline-output");
    container.setAttribute("aria-describedby", p.id);
    container.setAttribute("role", "figure");
    var title = titleText(spec);
    if (title) container.setAttribute("aria-label", title);
  }

  // A title computed from parameters (an expression): name the figure after the title drawn.
  function labelFromDrawing(container) {
    var text = container.querySelector(".role-title-text text");
    if (!text) return;
    var lines = text.querySelectorAll("tspan");
    var label = lines.length
      ? Array.prototype.map.call(lines, function (t) { return t.textContent; }).join(" ")
      : text.textContent;
    if (label) container.setAttribute("aria-label", label);
  }

  // ---- drawing --------------------------------------------------------------------------------

  function showError(container, message) {
    container.dataset.vegaliteStatus = "error";
    var box = document.createElement("div");
    box.className = "vegalite-offline-error";
    box.textContent = "This chart could not be drawn: " + message;
    container.appendChild(box);
    console.error("vegalite-offline: " + message);
  }

  function available(container) {
    return Math.floor(container.getBoundingClientRect().width);
  }

  function drawnWidth(target) {
    var el = target.querySelector("svg.marks, canvas.marks");
    return el ? el.getBoundingClientRect().width : 0;
  }

  function boundParams(spec) {
    var names = [];
    walk(spec, function (node) {
      if (Array.isArray(node.params)) {
        node.params.forEach(function (p) { if (p && p.name && p.bind) names.push(p.name); });
      }
    });
    return names;
  }

  // The legend that reaches furthest right in the drawing: how far (px from the drawing's left
  // edge), how wide, whether it is a gradient, and how many columns of entries it has.
  function widestLegend(target) {
    var svg = target.querySelector("svg.marks");
    if (!svg) return null;
    var left = svg.getBoundingClientRect().left, widest = null;
    svg.querySelectorAll("g.role-legend").forEach(function (g) {
      var r = g.getBoundingClientRect();
      var xs = {};
      g.querySelectorAll("g.role-legend-symbol path").forEach(function (p) {
        xs[Math.round(p.getBoundingClientRect().left)] = true;
      });
      var legend = {
        left: r.left - left, right: r.right - left, width: r.width, columns: Object.keys(xs).length,
        gradient: !!g.querySelector(".role-legend-gradient"),
      };
      if (!widest || legend.right > widest.right) widest = legend;
    });
    return widest;
  }

  // How far right (px from the drawing's left edge) the axes of the plots reach, with their titles.
  function rightmostAxis(target) {
    var svg = target.querySelector("svg.marks");
    if (!svg) return 0;
    var left = svg.getBoundingClientRect().left, right = 0;
    svg.querySelectorAll("g.role-axis").forEach(function (g) {
      right = Math.max(right, g.getBoundingClientRect().right - left);
    });
    return right;
  }

  // vega-embed's actions menu opens from a <summary> that shows only an icon ("..."): give it a
  // name, read by screen readers and shown as a tooltip.
  function nameActions(target) {
    var summary = target.querySelector(":scope > details > summary");
    if (!summary) return;
    summary.setAttribute("aria-label", "Chart actions");
    summary.setAttribute("title", "Chart actions");
  }

  // Font Awesome (the theme's icons) watches the page for icons added to it, and for every node
  // added anywhere it searches the parent's whole subtree again: Vega adding a heatmap's thousands
  // of cells one by one made each redraw take seconds (the mode switch of the embeddings page: 6 s
  // instead of 0.3). It looks away while a chart is drawn (a chart has no icons) and watches again
  // once the mutations of the draw have been delivered (a task later).
  var drawing = 0;
  function iconsLookAway() {
    var icons = window.FontAwesome && window.FontAwesome.dom;
    if (!icons || !icons.unwatch || !icons.watch) return function () {};
    drawing += 1;
    icons.unwatch();
    return function () {
      setTimeout(function () {
        drawing -= 1;
        if (!drawing) icons.watch();
      }, 0);
    };
  }

  function embedOnce(container, spec, opt) {
    var state = container._vegaliteOffline;
    var target = container.querySelector(":scope > .vegalite-offline-chart");
    var kept = {};
    if (state.result) {
      state.params.forEach(function (name) {
        try { kept[name] = state.result.view.signal(name); } catch (e) { /* not a signal */ }
      });
      state.result.finalize();
      state.result = null;
    }
    var watchAgain = iconsLookAway();
    var drawn = window.vegaEmbed(target, spec, opt);
    drawn.then(watchAgain, watchAgain);
    return drawn.then(function (result) {
      state.result = result;
      nameActions(target);
      var changed = false;
      Object.keys(kept).forEach(function (name) {
        if (kept[name] !== undefined) { result.view.signal(name, kept[name]); changed = true; }
      });
      return changed ? result.view.runAsync().then(function () { return result; }) : result;
    });
  }

  // Draw a chart for its column and colour mode; narrow it again until it fits (MAX_PASSES).
  function draw(container) {
    var state = container._vegaliteOffline;
    var avail = available(container);
    var m = mode();
    state.avail = avail;
    state.mode = m;
    var fit = { shrink: 0, maxColumns: 0, legendColumns: 0, gradientLength: 0, legendLimit: 0, legendBelow: false };
    var opt = Object.assign({}, state.data.opt || {});
    opt.renderer = opt.renderer || "svg";
    opt.expressionFunctions = Object.assign({ vegaliteOfflineWrap: wrapExpression }, opt.expressionFunctions);
    opt.config = chartConfig(m, avail);
    var target = container.querySelector(":scope > .vegalite-offline-chart");

    function pass(n) {
      var spec = layout(state.data.spec, avail, m, fit);
      return embedOnce(container, spec, opt).then(function () {
        var w = drawnWidth(target);
        if (window.vegaliteOffline.debug) {
          console.log("vegalite-offline pass", n, avail, w, JSON.stringify(fit), JSON.stringify(widestLegend(target)));
        }
        if (w <= avail + 0.5 || n + 1 >= MAX_PASSES) return;
        // What is drawn must end PADDING px before the column does (Vega's padding follows it).
        var room = avail - PADDING;
        var legend = widestLegend(target);
        var grid = across(spec);
        var plotsRight = rightmostAxis(target);
        if (plotsRight > room + 0.5) {
          if (grid > 1 && (!fit.maxColumns || fit.maxColumns > 1)) {
            fit.maxColumns = Math.max(1, (fit.maxColumns || grid) - 1);
          } else {
            fit.shrink += Math.ceil((plotsRight - room) / grid) + 1;
          }
        }
        if (legend && legend.right > room + 0.5) {
          if (legend.gradient && !fit.legendBelow && legend.left > avail / 2) {
            fit.legendBelow = true; // a gradient beside the plots goes below them
          } else if (legend.gradient) {
            fit.gradientLength = Math.max(60, Math.floor(room - legend.left - 12));
            fit.legendLimit = Math.max(60, Math.floor(room - legend.left));
          } else if (legend.columns > 1) {
            var cols = Math.floor(legend.columns * (legend.width - (legend.right - room)) / legend.width);
            fit.legendColumns = Math.max(1, Math.min(cols, legend.columns - 1));
          } else {
            // Labels limited to what is left of the column; if they were limited already, the
            // symbols and padding beside them did not fit: take the overflow off the limit too.
            var limit = Math.floor(room - legend.left);
            if (fit.legendLimit && fit.legendLimit <= limit) limit = Math.floor(fit.legendLimit - (legend.right - room) - 2);
            fit.legendLimit = Math.max(60, limit);
          }
        } else if (plotsRight <= room + 0.5) {
          fit.shrink += Math.ceil((w - avail) / grid) + 1; // something else: a wide plot's marks
        }
        return pass(n + 1);
      });
    }
    return pass(0).then(function () {
      if (titleText(state.data.spec)) return;
      labelFromDrawing(container);
      state.params.forEach(function (name) {
        try {
          state.result.view.addSignalListener(name, function () {
            setTimeout(function () { labelFromDrawing(container); }, 0);
          });
        } catch (e) { /* not a signal of this view */ }
      });
    });
  }

  function embed(container) {
    if (container.dataset.vegaliteStatus) return Promise.resolve();
    container.dataset.vegaliteStatus = "pending";
    var data;
    try {
      data = JSON.parse(container.querySelector(":scope > script.vegalite-offline-spec").textContent);
    } catch (err) {
      showError(container, "unreadable spec (" + err.message + ")");
      return Promise.resolve();
    }
    container._vegaliteOffline = { data: data, result: null, params: boundParams(data.spec), queue: Promise.resolve() };
    addDescription(container, data.spec);
    return redraw(container).then(function () {
      var state = container._vegaliteOffline;
      if (container.dataset.vegaliteStatus !== "error" && !state.redraws) container.dataset.vegaliteStatus = "rendered";
      if (window.ResizeObserver) resizeObserver().observe(container);
    });
  }

  // Draws of one chart run one after another; a failed one shows its message.
  function redraw(container) {
    var state = container._vegaliteOffline;
    state.queue = state.queue.then(function () {
      if (container.dataset.vegaliteStatus === "error") return;
      return draw(container).catch(function (err) {
        showError(container, err && err.message ? err.message : String(err));
      });
    });
    return state.queue;
  }

  // A chart drawn again after the page changed (its column's width, the colour mode): "pending"
  // from now until the last queued draw is done, then "rendered" again.
  function redrawDrawn(container) {
    if (container.dataset.vegaliteStatus === "error") return;
    container.dataset.vegaliteStatus = "pending";
    var state = container._vegaliteOffline;
    state.redraws = (state.redraws || 0) + 1;
    redraw(container).then(function () {
      state.redraws -= 1;
      if (!state.redraws && container.dataset.vegaliteStatus !== "error") {
        container.dataset.vegaliteStatus = "rendered";
      }
    });
  }

  var observer = null;
  function resizeObserver() {
    if (observer) return observer;
    var timers = new Map();
    observer = new ResizeObserver(function (entries) {
      entries.forEach(function (entry) {
        var container = entry.target, state = container._vegaliteOffline;
        if (!state || container.dataset.vegaliteStatus === "error") return;
        if (Math.abs(available(container) - state.avail) < 1) return;
        // Pending at once, drawn once the width has stopped changing for 150 ms.
        container.dataset.vegaliteStatus = "pending";
        clearTimeout(timers.get(container));
        timers.set(container, setTimeout(function () { redrawDrawn(container); }, 150));
      });
    });
    return observer;
  }

  // The charts drawn or being drawn (a draw under way records the mode it draws in).
  function drawn() {
    return Array.prototype.filter.call(document.querySelectorAll("div.vegalite-offline"), function (c) {
      return c._vegaliteOffline && c.dataset.vegaliteStatus !== "error";
    });
  }

  // Redraw every chart in the new colour mode when the theme's switch changes it.
  function watchMode() {
    new MutationObserver(function () {
      drawn().forEach(function (c) {
        if (c._vegaliteOffline.mode !== mode()) redrawDrawn(c);
      });
    }).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
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
    watchMode();
    whenReady(embedAll, 200); // up to 10 s
  }

  window.vegaliteOffline = {
    embedAll: embedAll,
    describe: describe,
    contrast: function (a, b) { return contrast(rgb(a), rgb(b)); },
  };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
