"""The same seed gives bit-identical training, in one process and across processes: copy task and translation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from src.recipes.copy_task import COPY_TRAINING, train_copy_model

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (
    "import json, torch; from dataclasses import replace; "
    "from src.recipes.copy_task import COPY_TRAINING, train_copy_model; "
    "m, h = train_copy_model(7, replace(COPY_TRAINING, epochs=2)); "
    "print(json.dumps({'losses': [r['loss'].hex() for r in h.steps], "
    "'eval': [r['eval_loss'].hex() for r in h.epochs], "
    "'weight': float(sum(p.double().sum() for p in m.parameters())).hex()}))"
)


def copy_run(seed: int):
    """Two epochs of the copy-task recipe from `seed`."""
    return train_copy_model(seed, replace(COPY_TRAINING, epochs=2))


def fingerprint(model, history) -> dict:
    return {
        "losses": [r["loss"].hex() for r in history.steps],
        "eval": [r["eval_loss"].hex() for r in history.epochs],
        "weight": float(sum(p.double().sum() for p in model.parameters())).hex(),
    }


def run_in_subprocess(script: str = SCRIPT) -> dict:
    """`script`'s last line of output, run by another interpreter with this one's thread count
    (another count rounds differently)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_copy_training_is_bit_identical_in_one_process():
    a = fingerprint(*copy_run(7))
    torch.manual_seed(999)  # global state before the call must not matter
    b = fingerprint(*copy_run(7))
    assert a == b
    c = fingerprint(*copy_run(8))
    assert c["losses"] != a["losses"]  # the seed does matter


def test_copy_training_is_bit_identical_across_processes():
    here = fingerprint(*copy_run(7))
    assert run_in_subprocess() == here


# The number-translation path at a tiny size: 300 pairs, one layer, two epochs, dropout on (so the RNG matters).
TRANSLATION = (
    "from src.data.numbers import NumbersTask\n"
    "from src.recipes.numbers import train_numbers\n"
    "from src.recipes.translation import TranslationSettings\n"
    "from src.shared.training import TrainingConfig\n"
    "from src.transformer.model import ModelConfig\n"
    "def translation_fingerprint(seed):\n"
    "    task = NumbersTask('fr', n_train=300, n_valid=40, n_test=40, data_seed=0, blocks=False)\n"
    "    s = TranslationSettings(ModelConfig(N=1, d_model=32, d_ff=64, h=2, dropout=0.1),\n"
    "                            TrainingConfig(epochs=2, warmup=20), batch_size=30, seed=seed)\n"
    "    tr = train_numbers(task, s, progress=False)\n"
    "    scores = tr.evaluate(task.pairs('test'))\n"
    "    return {'losses': [r['loss'].hex() for r in tr.history.steps],\n"
    "            'epochs': [[r[k].hex() for k in ('train_loss', 'eval_loss', 'eval_accuracy')]\n"
    "                       for r in tr.history.epochs],\n"
    "            'scores': {k: v.hex() for k, v in scores.items()},\n"
    "            'translations': tr.translate([a for a, _ in task.pairs('test')]),\n"
    "            'weight': float(sum(p.detach().double().sum() for p in tr.model.parameters())).hex()}\n"
)
namespace: dict = {}
exec(TRANSLATION, namespace)
translation_fingerprint = namespace["translation_fingerprint"]


def test_translation_training_and_metrics_are_bit_identical_in_one_process():
    a = translation_fingerprint(seed=0)
    torch.manual_seed(123)  # global state before the call must not matter
    b = translation_fingerprint(seed=0)
    assert a == b
    assert len(a["losses"]) == 20 and float.fromhex(a["scores"]["chrf"]) > 0  # it trained and translated something
    c = translation_fingerprint(seed=1)
    assert c["losses"] != a["losses"] and c["weight"] != a["weight"]  # the seed does matter


def test_translation_training_and_metrics_are_bit_identical_across_processes():
    here = translation_fingerprint(seed=0)
    script = TRANSLATION + "import json; print(json.dumps(translation_fingerprint(0)))"
    assert run_in_subprocess(script) == here


# --- two builds of a chapter print the same numbers ---------------------------------------------------------------

_TIMING = re.compile(r"\d+(?:\.\d+)?\s*(?:ms|s|it/s|s/it)\b")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def mask_timings(text: str) -> str:
    """`text` with wall-clock figures masked: '31.1 s', '12 ms', '5.2 it/s', a 'seconds' table column, addresses."""
    lines = text.splitlines()
    if lines and "seconds" in lines[0].split():  # a DataFrame with a 'seconds' column: mask that column
        col = lines[0].split().index("seconds") + 1  # rows start with the index
        rows = [" ".join("<t>" if i == col else w for i, w in enumerate(line.split())) for line in lines[1:]]
        lines = [lines[0], *rows]
    return _ADDRESS.sub(" at <address>", _TIMING.sub("<time>", "\n".join(lines)))


def chapter_text_outputs(chapter: Path, cache: Path) -> list[str]:
    """Run `chapter` in a fresh kernel with an empty model cache; its text outputs (streams, text/plain), in order."""
    import jupytext
    from nbclient import NotebookClient

    from src.shared.checkpoint import CACHE_ENV

    notebook = jupytext.read(chapter)
    env = {**os.environ, CACHE_ENV: str(cache), "OMP_NUM_THREADS": "1"}
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(chapter.parent)}}).execute(env=env)
    texts = []
    for cell in notebook.cells:
        stream = None  # how a cell's prints split into stream messages depends on timing: join them
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.output_type == "stream":
                if stream == out.name:
                    texts[-1] += out.text
                else:
                    texts.append(f"{out.name}: {out.text}")
                stream = out.name
                continue
            stream = None
            if "text/plain" in out.get("data", {}):
                texts.append(out.data["text/plain"])
    return [t for t in texts if t.strip() not in ("stdout:", "stderr:")]  # an empty flush is no output


@pytest.mark.slow
def test_two_builds_of_the_copy_chapter_print_the_same_numbers(tmp_path):
    chapter = ROOT / "book" / "copy_task.md"
    caches = [tmp_path / "first", tmp_path / "second"]
    for cache in caches:
        cache.mkdir()
    with ThreadPoolExecutor(2) as pool:  # two kernels at once, one thread each
        runs = list(pool.map(lambda cache: chapter_text_outputs(chapter, cache), caches))
    cached = [sorted(p.name for p in cache.glob("copy-task-*.pt")) for cache in caches]
    # each build trained its own two models: the stopping rule's and the fixed budget's, with the same keys
    assert len(cached[0]) == 2 and cached[0] == cached[1]
    first, second = ([mask_timings(t) for t in run] for run in runs)
    assert any("<time>" in t for t in first) and any("<t>" in t for t in first)  # there were timings to mask
    assert any(t.startswith("stdout: trained ") for t in first) and len(first) > 10
    assert first == second


def test_masking_hides_only_timings():
    table = "   epoch  train_loss  seconds\n0      0     1.84187  0.77687\n1      1     1.35354  0.81212"
    assert mask_timings(table) == "   epoch  train_loss  seconds\n0 0 1.84187 <t>\n1 1 1.35354 <t>"
    assert mask_timings("trained 800 steps in 31.1 s, 12 ms a step, 5.2 it/s") == (
        "trained 800 steps in <time>, <time> a step, <time>")
    assert mask_timings("loss 1.84187") != mask_timings("loss 1.84188")
    assert mask_timings("<Styler at 0x7fc6261c5910>") == "<Styler at <address>>"
