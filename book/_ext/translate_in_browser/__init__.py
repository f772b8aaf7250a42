"""The page that translates in the reader's browser: the trained model, exported at build time.

A page holding a container ``<div class="translate-demo">`` (book/translate_in_browser.md) gets a
small script, ``translate.js`` (tokenization, greedy decoding and the attention chart, next to this
file), and the Vega bundle of ``vegalite_offline``. Before the pages are written, this extension

* loads the English -> French number model from the model cache (``numbers_translator("fr")``,
  which trains it first when the cache does not hold it) and exports it with
  ``src.export_onnx.export_translator``: ``encoder.onnx``, ``decoder.onnx`` and ``vocab.json``;
* translates the held-out test numbers with PyTorch (``Translator.decode_ids``, greedy), shown
  when the browser has no WebAssembly;
* writes everything into ``_static/translate/`` of the site, with onnxruntime-web's files from
  ``node_modules`` (installed by ``make install`` from package-lock.json).

A page opened from ``file://`` may not ``fetch()`` a file nor import a module from a ``file://``
address, but it may load classic scripts. So every binary travels gzip-compressed and
base64-encoded inside a script that assigns it to a global (about a third larger than the binary
gzipped; the WebAssembly binary shrinks to about a third), and onnxruntime-web gets the WebAssembly
binary as bytes (``ort.env.wasm.wasmBinary``) and its Emscripten loader (an ES module) as a
``blob:`` URL made from its text (``ort.env.wasm.wasmPaths.mjs``), which Chromium imports from a
``file://`` page. The same files work over HTTP (``make serve``). Nothing
is written into the source tree; the export runs again only when the model, the exporter or the
runtime changed (a stamp file records what was exported).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from vegalite_offline import BUNDLE_NAME, has_charts

from src import export_onnx
from src.data.numbers import NumbersTask
from src.data.tokenizer import EOS
from src.recipes.numbers import numbers_translator

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
ROOT = HERE.parents[2]  # the repository: book/_ext/translate_in_browser -> .
ORT_DIST = ROOT / "node_modules" / "onnxruntime-web" / "dist"
ORT_FILES = {  # what the page needs of onnxruntime-web: the WebAssembly backend only
    "api": "ort.wasm.min.js",
    "loader": "ort-wasm-simd-threaded.mjs",
    "wasm": "ort-wasm-simd-threaded.wasm",
}
CONTAINER_MARK = 'class="translate-demo"'
OUT = "translate"  # under _static
STATIC_FILES = ("translate.js", "translate.css")
STAMP = ".export-stamp"


def has_demo(doctree: nodes.Node | None) -> bool:
    """Whether the doctree holds the page's container."""
    if doctree is None:
        return False
    return any(
        CONTAINER_MARK in node.astext()
        for node in doctree.findall(nodes.raw)
        if "html" in node.get("format", "").split()
    )


def _packed(data: bytes) -> str:
    """Bytes gzip-compressed, then base64: what a script can carry and the page unpack."""
    return base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0)).decode("ascii")


def _script(name: str, value: Any) -> str:
    """A classic script assigning `value` (as JSON) to window[name]."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c")  # never `</script>` inside
    return f"window.{name} = {text};\n"


def _ort_version() -> str:
    package = ORT_DIST.parent / "package.json"
    if not package.is_file():
        raise ExtensionError(
            f"translate_in_browser: {package} not found; install onnxruntime-web with "
            "`make install` (npm ci, from package-lock.json)"
        )
    return json.loads(package.read_text())["version"]


def _model_fingerprint(translator) -> str:
    """A hash of the weights, the vocabularies, the exporter's code, this extension and the
    runtime: what the exported files depend on."""
    h = hashlib.sha256()
    for name, tensor in sorted(translator.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(export_onnx.vocabularies(translator), sort_keys=True).encode())
    h.update(Path(export_onnx.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(_ort_version().encode())
    return h.hexdigest()


def _heldout(translator) -> list[list]:
    """[English, PyTorch's greedy French, its token ids] for every held-out test number."""
    english = [en for en, _ in NumbersTask(lang="fr").pairs("test")]
    out = []
    for start in range(0, len(english), 250):
        batch = english[start : start + 250]
        ys = translator.decode_ids(translator.encode_sources(batch))  # greedy
        for sentence, row in zip(batch, ys.tolist(), strict=True):
            ids = row[: row.index(EOS) + 1] if EOS in row else row  # up to </s>
            out.append([sentence, translator.tgt_tok.decode(ids), ids])
    return out


def write_assets(target: Path) -> None:
    """Export the model and write the page's files into `target`, unless they are current."""
    version = _ort_version()
    for name in ORT_FILES.values():
        if not (ORT_DIST / name).is_file():
            raise ExtensionError(f"translate_in_browser: {ORT_DIST / name} not found")
    translator = numbers_translator("fr", progress=False)
    stamp = _model_fingerprint(translator)
    target.mkdir(parents=True, exist_ok=True)
    for name in STATIC_FILES:  # the readable code: always the current version
        shutil.copyfile(HERE / "static" / name, target / name)
    if (target / STAMP).is_file() and (target / STAMP).read_text().strip() == stamp:
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = export_onnx.export_translator(translator, tmp)
            graphs = {name: paths[name].read_bytes() for name in ("encoder", "decoder")}
            vocab = json.loads(paths["vocab"].read_text(encoding="utf-8"))
        heldout = _heldout(translator)
    finally:
        torch.set_num_threads(threads)
    wasm = (ORT_DIST / ORT_FILES["wasm"]).read_bytes()
    loader = (ORT_DIST / ORT_FILES["loader"]).read_text(encoding="utf-8")
    shutil.copyfile(ORT_DIST / ORT_FILES["api"], target / ORT_FILES["api"])
    (target / "ort-loader.js").write_text(_script("ORT_LOADER_SOURCE", loader))
    (target / "ort-wasm.js").write_text(_script("ORT_WASM_GZ", _packed(wasm)))
    model = {name: _packed(data) for name, data in graphs.items()}
    (target / "model.js").write_text(_script("TRANSLATE_MODEL_GZ", model))
    # what translate.js loads once the page is shown, as the page reports it
    lazy = [ORT_FILES["api"], "ort-loader.js", "ort-wasm.js", "model.js"]
    data = {
        "vocab": vocab,
        "heldout": heldout,
        "ortVersion": version,
        "files": {name: (target / name).stat().st_size for name in lazy},
        "unpacked": {
            "encoder.onnx": len(graphs["encoder"]),
            "decoder.onnx": len(graphs["decoder"]),
            ORT_FILES["wasm"]: len(wasm),
        },
    }
    (target / "translate-data.js").write_text(
        _script("TRANSLATE_DATA", data), encoding="utf-8"
    )
    (target / STAMP).write_text(stamp + "\n")


def _collect(app: Sphinx) -> list:
    """Before the pages are written: export the model if a page of the build holds the demo."""
    if app.builder.format != "html":
        return []
    pages = [d for d in sorted(app.env.found_docs) if has_demo(app.env.get_doctree(d))]
    if pages:
        target = Path(app.outdir) / "_static" / OUT
        write_assets(target)
        size = sum(p.stat().st_size for p in target.iterdir() if p.name != STAMP)
        logger.info(f"translate_in_browser: {size / 1e6:.1f} MB in {target} for {pages}")
    return []


def _html_page_context(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    if not has_demo(doctree):
        return
    if not has_charts(doctree):  # otherwise vegalite_offline adds it already
        app.add_js_file(BUNDLE_NAME, priority=600, loading_method="defer")
    # translate.js loads the rest (runtime, model) itself, only once the page is shown
    app.add_js_file(f"{OUT}/translate-data.js", priority=610, loading_method="defer")
    app.add_js_file(f"{OUT}/translate.js", priority=611, loading_method="defer")
    app.add_css_file(f"{OUT}/translate.css")


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("vegalite_offline")
    app.connect("html-collect-pages", _collect)
    app.connect("html-page-context", _html_page_context)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
