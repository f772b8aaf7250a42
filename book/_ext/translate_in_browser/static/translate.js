/* Translate English number words into French in the page, with the book's trained model.
 *
 * The model was exported at build time (src/export_onnx.py) as two ONNX graphs:
 *   encoder: src (1, S) ids, src_mask (1, 1, S) -> memory (1, S, d_model)
 *   decoder: memory, src_mask, ys (1, t) ids -> log_probs (1, vocab) of the next token,
 *            attn (layers, 1, heads, t, S): the encoder-decoder attention weights.
 * onnxruntime-web runs them on WebAssembly, one thread. This file tokenizes like
 * src/data/tokenizer.py, decodes greedily like greedy_decode (src/transformer/decoding.py)
 * and draws the attention with the book's offline Vega bundle (window.vegaEmbed).
 *
 * It works from file:// too, where a page may not fetch() files: every binary comes inside
 * a classic <script> (gzip, then base64), written by book/_ext/translate_in_browser.
 */
(function () {
  'use strict';

  const HERE = document.currentScript.src.replace(/[^/]*$/, '');
  const DATA = window.TRANSLATE_DATA;  // translate-data.js: vocabularies, held-out numbers
  const VOCAB = DATA.vocab;
  const {pad: PAD, bos: BOS, eos: EOS, unk: UNK} = VOCAB.specials;
  const SRC_ID = new Map(VOCAB.src.map((token, id) => [token, id]));

  // ---- Tokenization, as split_words, WordTokenizer and join_words ----------------------

  /** 'ninety-seven thousand, one' -> ['ninety-seven', 'thousand', ',', 'one'] */
  function splitWords(sentence) {
    return sentence.match(/[^\s,]+|,/g) || [];
  }

  /** Source ids of a sentence, ending with </s> (Translator.encode_sources). */
  function encodeSource(sentence) {
    return [...splitWords(sentence).map(w => SRC_ID.get(w) ?? UNK), EOS];
  }

  /** The French sentence of output ids: up to </s>, without <s> and <pad>. */
  function decodeTarget(ids) {
    const words = [];
    for (const id of ids) {
      if (id === EOS) break;
      if (id !== PAD && id !== BOS) words.push(VOCAB.tgt[id]);
    }
    return words.map((w, i) => (i > 0 && w !== ',' ? ' ' : '') + w).join('');
  }

  // ---- Loading the runtime and the model -------------------------------------------------

  function loadScript(name) {
    return new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = HERE + name;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`could not load ${name}`));
      document.head.appendChild(script);
    });
  }

  /** Bytes of a gzip-compressed, base64-encoded string. */
  async function unpack(base64) {
    const bytes = Uint8Array.from(atob(base64), c => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  /** The encoder and decoder sessions, on onnxruntime-web's single-threaded WebAssembly. */
  async function loadModel() {
    for (const name of Object.keys(DATA.files)) await loadScript(name);
    const ort = window.ort;
    ort.env.wasm.numThreads = 1;  // no worker threads (they need cross-origin isolation)
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmBinary = await unpack(window.ORT_WASM_GZ);
    const loader = new Blob([window.ORT_LOADER_SOURCE], {type: 'text/javascript'});
    ort.env.wasm.wasmPaths = {mjs: URL.createObjectURL(loader)};
    const options = {executionProviders: ['wasm'], graphOptimizationLevel: 'all'};
    const graphs = window.TRANSLATE_MODEL_GZ;
    const model = {
      ort: ort,
      encoder: await ort.InferenceSession.create(await unpack(graphs.encoder), options),
      decoder: await ort.InferenceSession.create(await unpack(graphs.decoder), options),
    };
    // The first run of a session allocates its buffers: do it before anything is timed.
    for await (const step of greedyDecode(model, encodeSource(DATA.heldout[0][0]), 8)) void step;
    return model;
  }

  // ---- Greedy decoding, as greedy_decode ---------------------------------------------------

  function argmax(values) {
    let best = 0;
    for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    return best;  // the first of equal maxima, as torch.argmax
  }

  /** Decode `src` ids greedily, yielding after each new token: the prefix `ys` (from <s>),
   *  the attention of every layer and head, and the milliseconds spent in the model so far. */
  async function* greedyDecode(model, src, maxLen) {
    const {ort, encoder, decoder} = model;
    const start = performance.now();
    const srcIds = new ort.Tensor('int64', BigInt64Array.from(src, BigInt), [1, src.length]);
    const srcMask = new ort.Tensor('bool', new Uint8Array(src.length).fill(1), [1, 1, src.length]);
    const {memory} = await encoder.run({src: srcIds, src_mask: srcMask});
    const ys = [BOS];
    let ms = performance.now() - start;
    while (ys.length < maxLen) {
      const stepStart = performance.now();
      const input = new ort.Tensor('int64', BigInt64Array.from(ys, BigInt), [1, ys.length]);
      const out = await decoder.run({memory: memory, src_mask: srcMask, ys: input});
      ys.push(argmax(out.log_probs.data));
      ms += performance.now() - stepStart;
      yield {ys: ys.slice(), attn: out.attn, ms: ms};
      if (ys[ys.length - 1] === EOS) break;
    }
  }

  // ---- The attention chart -----------------------------------------------------------------

  /** "03 seven": a token with its position, as src/viz/attention.py labels them. */
  const label = (token, i) => `${String(i).padStart(2, '0')} ${token}`;

  // What the heatmap's cells share the column with: the row labels with their title on the left,
  // the colour legend on the right (below the cells in a column narrower than WIDE_PX).
  const ROW_LABELS_PX = 130;
  const LEGEND_PX = 90;
  const WIDE_PX = 560;
  const CELL_PX = [12, 30];  // the narrowest and widest cell

  /** A Vega-Lite heatmap of one head: decoder inputs (rows) attending to source tokens, as wide as
   * `columnPx` allows. */
  function attentionSpec(attn, layer, head, srcTokens, rowTokens, columnPx) {
    const [, , heads, t, s] = attn.dims;
    const values = [];
    for (let q = 0; q < t; q++) {
      for (let k = 0; k < s; k++) {
        const weight = attn.data[((layer * heads + head) * t + q) * s + k];
        values.push({query: label(rowTokens[q], q), key: label(srcTokens[k], k), weight});
      }
    }
    const wide = columnPx >= WIDE_PX;
    const room = columnPx - ROW_LABELS_PX - (wide ? LEGEND_PX : 0);
    const cell = Math.max(CELL_PX[0], Math.min(CELL_PX[1], Math.floor(room / s)));
    const name = 'Encoder-decoder attention', which = `layer ${layer + 1}, head ${head + 1}`;
    return {
      title: wide ? `${name}, ${which}` : [name, which],
      data: {values: values},
      mark: 'rect',
      width: {step: cell},
      height: {step: 20},
      encoding: {
        x: {field: 'key', type: 'ordinal', sort: null, title: 'source tokens',
            axis: {labelAngle: cell < 20 ? -90 : -45}},
        y: {field: 'query', type: 'ordinal', sort: null, title: 'target tokens (decoder input)'},
        color: {field: 'weight', type: 'quantitative', title: 'Attention weight',
                scale: {scheme: 'viridis', domain: [0, 1]},
                legend: {format: '.1f', orient: wide ? 'right' : 'bottom'}},
        tooltip: [{field: 'query'}, {field: 'key'}, {field: 'weight', format: '.3f'}],
      },
    };
  }

  // ---- The page ------------------------------------------------------------------------------

  const HELDOUT = new Map(DATA.heldout.map(([en, fr, ids]) => [en, {fr, ids}]));
  const median = xs => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };

  function build(root) {
    root.innerHTML = `
      <label class="translate-demo-label">English number words
        <input type="text" class="translate-demo-input" spellcheck="false" autocomplete="off">
      </label>
      <div class="translate-demo-buttons">
        <button type="button" class="translate-demo-go">Translate</button>
        <button type="button" class="translate-demo-random">A random held-out number</button>
        <label>layer <select class="translate-demo-layer"></select></label>
        <label>head <select class="translate-demo-head"></select></label>
      </div>
      <p class="translate-demo-output" aria-live="polite"></p>
      <p class="translate-demo-note"></p>
      <p class="translate-demo-status"></p>
      <div class="translate-demo-chart"></div>`;
    const $ = name => root.querySelector('.translate-demo-' + name);
    for (const [name, n] of [['layer', VOCAB.layers], ['head', VOCAB.heads]]) {
      $(name).innerHTML = [...Array(n).keys()].map(i => `<option>${i + 1}</option>`).join('');
    }
    return $;
  }

  function init(root) {
    const $ = build(root);
    const demo = {stepDelayMs: 60, latencies: [], last: null};
    window.translateDemo = demo;
    let model = null;
    let busy = false;
    const english = DATA.heldout.map(row => row[0]);
    $('input').value = english[0];

    let drawing = Promise.resolve();  // one drawing at a time, in the order asked
    const drawChart = () => (drawing = drawing.then(drawNow, drawNow));
    let drawnFor = null;  // the width of the column the chart was last drawn for
    const drawNow = () => {
      const last = demo.last;
      if (!last || !last.attn || !window.vegaEmbed) return Promise.resolve();
      drawnFor = $('chart').clientWidth;
      const rows = last.ys.slice(0, -1).map(id => VOCAB.tgt[id]);  // the decoder's inputs
      const spec = attentionSpec(last.attn, $('layer').value - 1, $('head').value - 1,
                                 last.srcTokens, rows, drawnFor);
      return window.vegaEmbed($('chart'), spec, {mode: 'vega-lite', actions: false, renderer: 'svg'});
    };

    /** Build-time translation (PyTorch), for when the model cannot run here. */
    function showPrecomputed(sentence) {
      const row = HELDOUT.get(sentence);
      $('output').textContent = row ? row.fr : '';
      $('output').dataset.ids = row ? row.ids.join(' ') : '';
      $('output').dataset.input = sentence;
      $('note').textContent = row
        ? 'Computed when the book was built, by PyTorch (greedy decoding).'
        : 'Only the held-out numbers have a translation computed at build time: draw one.';
      root.dataset.state = 'done';
    }

    async function translate() {
      if (busy) return;
      const sentence = $('input').value.trim().toLowerCase();
      if (!model) { showPrecomputed(sentence); return; }
      const src = encodeSource(sentence);
      const maxLen = 2 * src.length + 10;  // Translator.decode_ids
      if (src.length === 1) { $('note').textContent = 'Type a number in words.'; return; }
      if (src.length > VOCAB.max_positions || maxLen > VOCAB.max_positions) {
        $('note').textContent = `Too long: the exported graphs take at most ${VOCAB.max_positions} positions.`;
        return;
      }
      busy = true;
      root.querySelectorAll('button').forEach(b => { b.disabled = true; });
      root.dataset.state = 'running';
      const unknown = splitWords(sentence).filter(w => !SRC_ID.has(w));
      const srcTokens = [...splitWords(sentence), '</s>'].map((w, i) => src[i] === UNK ? '<unk>' : w);
      const reference = HELDOUT.get(sentence);
      $('note').textContent = unknown.length ? `Not in the English vocabulary, read as <unk>: ${unknown.join(', ')}` : '';
      $('output').textContent = '';
      let step = null;
      for await (step of greedyDecode(model, src, maxLen)) {
        demo.last = {ys: step.ys, attn: step.attn, srcTokens: srcTokens};
        $('output').textContent = decodeTarget(step.ys);
        if (demo.stepDelayMs > 0) {  // let the reader see each token arrive
          await drawChart();
          await new Promise(resolve => setTimeout(resolve, demo.stepDelayMs));
        }
      }
      await drawChart();
      demo.latencies.push(step.ms);
      const ids = step.ys;
      $('output').dataset.ids = ids.join(' ');
      $('output').dataset.ms = step.ms.toFixed(3);
      $('output').dataset.input = sentence;
      const steps = ids.length - 1;
      $('status').textContent =
        `The model took ${step.ms.toFixed(1)} ms here (the encoder once, the decoder ${steps} times); ` +
        `median over the ${demo.latencies.length} translation(s) of this visit: ${median(demo.latencies).toFixed(1)} ms.`;
      if (reference) {
        const same = reference.ids.join(' ') === ids.join(' ');
        $('note').textContent = `A held-out number: PyTorch's greedy decoding at build time gave ` +
          `"${reference.fr}", ${same ? 'the same tokens' : 'different tokens'}.`;
      }
      busy = false;
      root.querySelectorAll('button').forEach(b => { b.disabled = false; });
      root.dataset.state = 'done';
    }

    $('go').addEventListener('click', translate);
    $('input').addEventListener('keydown', e => { if (e.key === 'Enter') translate(); });
    $('random').addEventListener('click', () => {
      $('input').value = english[Math.floor(Math.random() * english.length)];
      translate();
    });
    for (const name of ['layer', 'head']) $(name).addEventListener('change', drawChart);
    if (window.ResizeObserver) {  // a phone turned: the chart drawn again for its new column
      new ResizeObserver(() => {
        if (drawnFor !== null && $('chart').clientWidth !== drawnFor) drawChart();
      }).observe($('chart'));
    }

    const mb = bytes => (bytes / 1e6).toFixed(1);
    if (typeof WebAssembly !== 'object') {
      root.dataset.runtime = 'none';
      $('status').textContent = 'This browser has no WebAssembly, so the model cannot run here. ' +
        'The held-out numbers show the translation PyTorch computed when the book was built.';
      showPrecomputed($('input').value);
      return;
    }
    const total = Object.values(DATA.files).reduce((a, b) => a + b, 0);
    $('status').textContent = `Loading onnxruntime-web ${DATA.ortVersion} and the model (${mb(total)} MB)…`;
    root.dataset.state = 'loading';
    loadModel().then(m => {
      model = m;
      root.dataset.runtime = 'wasm';
      $('status').textContent = `Ready: onnxruntime-web ${DATA.ortVersion}, WebAssembly, one thread.`;
      root.dataset.state = 'ready';
      translate();
    }).catch(error => {
      root.dataset.runtime = 'none';
      $('status').textContent = `The model could not be loaded (${error.message}): the held-out ` +
        'numbers show the translation PyTorch computed when the book was built.';
      showPrecomputed($('input').value);
    });
  }

  const start = () => document.querySelectorAll('div.translate-demo').forEach(init);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
