"""The package's layers point one way: model <- training pieces <- data <- recipes <- harness and entry points.

Read from the source with `ast`, so the test sees what a reader of the code sees: every `src`
import at the top of its module, none inside a function, and no module of a lower layer importing
one of a higher layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# What each part of the package may import from `src` (besides itself and `src.checks`).
ALLOWED = {
    "src.transformer": set(),  # the model: math and shapes, nothing of training, data or charts
    "src.shared.batch": {"src.transformer"},  # a batch builds the model's masks
    "src.shared.history": set(),
    "src.shared.loss": set(),
    "src.shared.lr_scheduler": set(),
    "src.data": {"src.shared.batch"},  # tasks, tokenizers, corpora, metrics: they produce batches
    "src.shared.fingerprint": set(),  # reads files of src; imports none
    "src.shared.checkpoint": {"src.transformer", "src.shared.fingerprint"},
    "src.shared.callbacks": {"src.shared.batch", "src.shared.history"},
    "src.shared.resume": {
        "src.shared.batch", "src.shared.history", "src.shared.checkpoint", "src.shared.callbacks",
    },
    "src.shared.training": {"src.shared", "src.transformer"},
    "src.shared.distributed": {"src.shared.batch", "src.shared.history"},
    "src.recipes": {"src.data", "src.shared", "src.transformer"},
    "src.viz": {"src.transformer", "src.shared", "src.viz"},
    # section 4's layers side by side, measured with the benchmark's timers
    "src.layer_comparison": {"src.transformer", "src.bench"},
    # a trained translator as ONNX graphs and vocabularies, for the in-browser page
    "src.export_onnx": {"src.transformer", "src.data", "src.recipes"},
    # where attention heads look, tallied over a data set; the alignment of number words
    "src.attention_stats": {"src.data", "src.shared.batch"},
    # the ablation grid's command line: the lab's recipe, run like the robustness grid
    "src.ablations": {"src.recipes", "src.robustness"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def src_imports(tree: ast.Module) -> tuple[list[str], list[tuple[int, str]]]:
    """(`src` modules imported at module level, (line, module) of those imported anywhere deeper)."""
    top, nested = [], []
    top_nodes = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "src":
            names = [f"{node.module}.{a.name}" if node.module == "src" else node.module for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "src"]
        else:
            continue
        for name in names:
            (top.append(name) if id(node) in top_nodes else nested.append((node.lineno, name)))
    return top, nested


MODULES = {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(SRC.rglob("*.py"))}


def _layer(module: str) -> str | None:
    """The most specific key of ALLOWED that `module` falls under."""
    keys = [k for k in ALLOWED if module == k or module.startswith(k + ".")]
    return max(keys, key=len) if keys else None


def _within(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_a_module_imports_only_from_the_layers_below_it(module: str) -> None:
    layer = _layer(module)
    top, _ = src_imports(MODULES[module])
    allowed = ALLOWED[layer] | {layer, "src.checks"}
    wrong = [name for name in top if not _within(name, allowed)]
    assert not wrong, f"{module} ({layer}) imports {wrong}; it may import only from {sorted(allowed)}"


def test_no_src_import_hides_inside_a_function() -> None:
    nested = {m: n for m, tree in MODULES.items() if (n := src_imports(tree)[1])}
    assert not nested, f"imports inside functions (move them to the top of the module): {nested}"


def test_the_import_graph_has_no_cycle() -> None:
    graph = {m: {n for n in src_imports(tree)[0] if n in MODULES} for m, tree in MODULES.items()}
    for m in graph:  # importing a module runs its packages' __init__ first, unless it is inside them already
        parents = {".".join(n.split(".")[:i]) for n in graph[m] for i in range(2, n.count(".") + 1)}
        graph[m] |= {p for p in parents if p in MODULES and not _within(m, {p})}
    done, stack = set(), []

    def visit(m: str) -> None:
        if m in stack:
            cycle = stack[stack.index(m):] + [m]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if m in done:
            return
        stack.append(m)
        for n in sorted(graph[m]):
            visit(n)
        stack.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_the_checks_see_a_planted_violation() -> None:
    """The tests above can fail: a model module that imports training, from inside a function."""
    tree = ast.parse("from src.transformer import attention\n\ndef f():\n    from src.shared.training import train\n")
    top, nested = src_imports(tree)
    assert top == ["src.transformer"] and nested == [(4, "src.shared.training")]
    assert not _within("src.shared.training", ALLOWED["src.transformer"] | {"src.transformer"})


def test_inner_dropout_off_leaves_only_the_papers_dropout_sites():
    """Section 5.4: dropout on sublayer outputs and embedding sums; not on attention weights or inside the FFN."""
    import torch.nn as nn

    from src.transformer import make_model
    from src.transformer.attention import MultiHeadedAttention
    from src.transformer.layers import PositionwiseFeedForward

    def rates(model, kind):
        return {m.dropout.p for m in model.modules() if isinstance(m, kind)}

    paper = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2, dropout=0.3, inner_dropout=False)
    reference = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2, dropout=0.3)
    assert rates(paper, MultiHeadedAttention) == rates(paper, PositionwiseFeedForward) == {0.0}
    assert rates(reference, MultiHeadedAttention) == rates(reference, PositionwiseFeedForward) == {0.3}
    others = {m.p for m in paper.modules() if isinstance(m, nn.Dropout)} - {0.0}
    assert others == {0.3} and paper.config.inner_dropout is False
