"""Do the book's recipes hold on other machines? `python -m src.robustness` (or
`make robustness`).

Float rounding differs between CPUs, between the kernels ATen and MKL pick, and between
thread counts, so a recipe near the edge of stability can succeed on one machine and
fail on the next with the same seed. This command simulates other machines on one: each
cell of its grid trains a model in a fresh process under one *kernel path* (the switches
below) and one thread count, and checks the model against the target the book asserts:

- copy task: every held-out sequence copied exactly (exact match 1.0), over 10 seeds x 4
  kernel paths x {1, 2} threads. A copy cell trains past the point where the stopping
  rule of `train_copy_model` ends training, up to the fixed budget of
  `COPY_TRAINING.epochs` epochs, and reports both: the recipe's model (the
  one the rule stops at, bit-identical to what `train_copy_model` returns) and the
  fixed-budget model (the earlier recipe, for comparison).
- number translation (en->fr, en->de): greedy exact match >= 0.99 on the test split,
  over 3 seeds x 2 kernel paths.

Cells run in parallel, as many as the cores allow (a cell of t threads takes t cores).
The pass table goes to stdout, a line per finished cell to stderr, and everything to a
JSON file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from src.data.copy_task import held_out_sequences, valid_sequences
from src.data.numbers import NumbersTask
from src.recipes.copy_task import (
    COPY_TASK,
    COPY_TRAINING,
    UntilCopied,
    copy_recipe,
    exact_copies,
    train_copy_model,
)
from src.recipes.numbers import TARGET_EXACT_MATCH, number_settings, train_numbers
from src.shared.training import History

# A kernel path: environment variables that make this machine round like another one.
PATHS = {
    "native": {},
    # ATen's plain C++ kernels, no vector instructions
    "default": {"ATEN_CPU_CAPABILITY": "default"},
    # ATen's AVX2 kernels (where the CPU has AVX2)
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    # MKL's conditional numerical reproducibility, the most portable
    "compatible": {"MKL_CBWR": "COMPATIBLE"},
    "mkl-avx2": {"MKL_CBWR": "AVX2"},
}
TASKS = ("copy", "fr", "de")
GRID = {  # task -> default seeds, kernel paths and thread counts
    "copy": (range(10), ("native", "default", "avx2", "compatible"), (1, 2)),
    "fr": (range(3), ("native", "default"), (2,)),
    "de": (range(3), ("native", "default"), (2,)),
}
DEFAULT_JSON = Path(__file__).resolve().parents[1] / "book" / "data" / "robustness.json"


class _StopPoint(UntilCopied):
    """`UntilCopied` that notes where it would stop, scores the model there, and lets
    training go on.
    """

    def __init__(self, valid: torch.Tensor, patience: int) -> None:
        super().__init__(valid, patience)
        self.at: dict | None = None
        # epochs whose validation exact match fell below 1.0 after an epoch at 1.0
        self.collapses = 0

    def __call__(self, model: torch.nn.Module, history: History) -> bool:
        stop = super().__call__(model, history)
        row = history.epochs[-1]
        before = (
            history.epochs[-2]["valid_exact_match"] if len(history.epochs) > 1 else 0.0
        )
        self.collapses += before == 1.0 and row["valid_exact_match"] < 1.0
        if stop and self.at is None:
            score = exact_copies(model, held_out_sequences())
            self.at = {
                "epochs": row["epoch"] + 1,
                "steps": row["step"],
                "exact_match": score,
            }
        return False


def run_copy(seed: int) -> dict:
    """One copy cell: the recipe's model (where the stopping rule ends training) and the
    fixed-budget model.
    """
    rule = _StopPoint(valid_sequences(seed, COPY_TASK.valid), COPY_TRAINING.patience)
    start = time.perf_counter()
    model, history = train_copy_model(seed, until=rule)
    seconds = time.perf_counter() - start
    fixed = exact_copies(model, held_out_sequences())
    at = rule.at or {
        "epochs": len(history.epochs),
        "steps": history.epochs[-1]["step"],
        "exact_match": fixed,
    }
    per_epoch = sum(r["seconds"] for r in history.epochs) / len(history.epochs)
    return {
        **at,
        "seconds": round(per_epoch * at["epochs"], 1),
        "stopped": rule.at is not None,
        "fixed_budget_exact_match": fixed,
        "fixed_budget_epochs": len(history.epochs),
        "collapses": rule.collapses,
        "passed": at["exact_match"] == 1.0,
        "total_seconds": round(seconds, 1),
    }


def run_numbers(lang: str, seed: int) -> dict:
    """One translation cell: the book's number model for `lang`, trained from `seed`,
    scored on the test split.
    """
    task = NumbersTask(lang=lang)
    settings = dataclasses.replace(number_settings(lang), seed=seed)
    start = time.perf_counter()
    translator = train_numbers(task, settings, progress=False)
    seconds = time.perf_counter() - start
    score = translator.evaluate(task.pairs("test"))["exact_match"]
    return {
        "exact_match": score,
        "epochs": len(translator.history.epochs),
        "seconds": round(seconds, 1),
        "passed": score >= TARGET_EXACT_MATCH,
    }


def run_cell(cell: dict) -> dict:
    """Train and score one cell in this process (its environment already holds the
    kernel path).
    """
    torch.set_num_threads(cell["threads"])
    result = (
        run_copy(cell["seed"])
        if cell["task"] == "copy"
        else run_numbers(cell["task"], cell["seed"])
    )
    return {**cell, "capability": torch.backends.cpu.get_cpu_capability(), **result}


def machine() -> dict:
    """What the grid ran on."""
    cpu = platform.processor()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def grid(tasks, seeds, paths, threads) -> list[dict]:
    """The cells to run: each task over its seeds, kernel paths and thread counts
    (defaults from GRID).
    """
    native = torch.backends.cpu.get_cpu_capability()
    cells = []
    for task in tasks:
        d_seeds, d_paths, d_threads = GRID[task]
        for path in paths or d_paths:
            if path == "avx2" and native not in ("AVX2", "AVX512"):
                print(
                    "skipping kernel path avx2: this CPU's ATen capability is "
                    f"{native}",
                    file=sys.stderr,
                )
                continue
            for t in threads or d_threads:
                cells += [
                    {"task": task, "path": path, "threads": t, "seed": s}
                    for s in (seeds or d_seeds)
                ]
    return cells


def run_grid(cells: list[dict], cores: int, progress: bool | None = None) -> list[dict]:
    """Run every cell in its own process, as many at once as `cores` allows; return
    their results in order.
    """
    from tqdm.auto import tqdm

    pending, running, results = list(enumerate(cells)), [], {}
    bar = tqdm(
        total=len(cells),
        unit="cell",
        disable=not (sys.stderr.isatty() if progress is None else progress),
    )
    while pending or running:
        free = cores - sum(cells[i]["threads"] for i, _ in running)
        for i, cell in list(pending):
            # wait for cores; a cell wider than the machine runs alone
            if cell["threads"] > free and running:
                continue
            env = {
                **os.environ,
                **PATHS[cell["path"]],
                "OMP_NUM_THREADS": str(cell["threads"]),
            }
            proc = subprocess.Popen(
                [sys.executable, "-m", "src.robustness", "--cell", json.dumps(cell)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            running.append((i, proc))
            pending.remove((i, cell))
            free -= cell["threads"]
        time.sleep(0.2)
        for i, proc in [r for r in running if r[1].poll() is not None]:
            running.remove((i, proc))
            out, err = proc.communicate()
            try:
                results[i] = json.loads(out.strip().splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                results[i] = {
                    **cells[i],
                    "passed": False,
                    "error": (err.strip().splitlines() or ["no output"])[-1],
                }
            bar.update()
            bar.write(_describe(results[i]), file=sys.stderr)
    bar.close()
    return [results[i] for i in range(len(cells))]


def _describe(r: dict) -> str:
    head = f"{r['task']:>4} seed {r['seed']} {r['path']:>10} x{r['threads']}"
    if "error" in r:
        return f"{head}: FAILED TO RUN: {r['error']}"
    extra = f", stopped after {r['epochs']} epochs"
    return (
        f"{head}: exact match {r['exact_match']:.3f}{extra}, {r['seconds']} s "
        f"{'ok' if r['passed'] else 'MISSED'}"
    )


def table(results: list[dict]) -> str:
    """One row per task, kernel path and thread count; one column per seed (exact
    match); passed cells.
    """
    rows: dict[tuple, dict] = {}
    for r in results:
        rows.setdefault((r["task"], r["path"], r["threads"]), {})[r["seed"]] = r
    seeds = sorted({r["seed"] for r in results})
    head = (
        f"| task | kernel path | threads | {' | '.join(f's{s}' for s in seeds)} | "
        "passed |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for (task, path, threads), by_seed in rows.items():
        cells = [
            f"{by_seed[s]['exact_match']:.3f}"
            if s in by_seed and "exact_match" in by_seed[s]
            else ("error" if s in by_seed else "")
            for s in seeds
        ]
        passed = sum(r["passed"] for r in by_seed.values())
        lines.append(
            f"| {task} | {path} | {threads} | {' | '.join(cells)} | "
            f"{passed}/{len(by_seed)} |"
        )
    return "\n".join(lines)


def int_list(text: str) -> list[int]:
    """'0-9' or '0,1,2' -> a list of non-negative integers."""
    try:
        out = []
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 0-9 or 0,1,2, got {text!r}"
        ) from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(
            f"expected non-negative integers like 0-9 or 0,1,2, got {text!r}"
        )
    return out


def subset_of(allowed) -> Callable[[str], list[str]]:
    """An argparse `type`: a comma-separated subset of `allowed`."""

    def parse(text: str) -> list[str]:
        items = [t for t in text.split(",") if t]
        if not items or any(t not in allowed for t in items):
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {','.join(allowed)}, got "
                f"{text!r}"
            )
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m src.robustness", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--tasks",
        type=subset_of(TASKS),
        default=list(TASKS),
        help="comma-separated subset of copy,fr,de",
    )
    p.add_argument(
        "--seeds",
        type=int_list,
        help="e.g. 0-9 (default: 0-9 for copy, 0-2 for translation)",
    )
    p.add_argument(
        "--paths",
        type=subset_of(PATHS),
        help=(
            f"kernel paths, a subset of {','.join(PATHS)} (default: "
            "native,default,avx2,compatible for copy; native,default for translation)"
        ),
    )
    p.add_argument(
        "--threads",
        type=int_list,
        help="thread counts, e.g. 1,2 (default: 1,2 for copy, 2 for translation)",
    )
    p.add_argument(
        "--cores",
        type=int,
        default=os.cpu_count(),
        help="cores to fill with cells (default: all)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"results file (default: {DEFAULT_JSON.name} in "
        "book/data, which the copy-task chapter reads)",
    )
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    # internal: run one cell, given as JSON, in this process
    p.add_argument("--cell", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cell:
        print(json.dumps(run_cell(json.loads(args.cell))))
        return 0
    if args.threads and min(args.threads) < 1:
        parser.error("--threads must be positive integers")
    if args.cores < 1:
        parser.error(f"--cores must be a positive integer, got {args.cores}")
    cells = grid(args.tasks, args.seeds, args.paths, args.threads)
    start = time.perf_counter()
    results = run_grid(cells, args.cores, args.progress)
    seconds = time.perf_counter() - start
    print(table(results))
    failed = [r for r in results if not r["passed"]]
    print(
        f"\n{len(results) - len(failed)} of {len(results)} cells at their target "
        f"(copy: exact match 1.0; translation: >= {TARGET_EXACT_MATCH}) in "
        f"{seconds / 60:.1f} min"
    )
    report = {
        "machine": machine(),
        "seconds": round(seconds),
        "recipe": copy_recipe(),
        "number_recipe": {k: number_settings(k).to_dict() for k in ("fr", "de")},
        "targets": {"copy": 1.0, "fr": TARGET_EXACT_MATCH, "de": TARGET_EXACT_MATCH},
        "paths": {p: PATHS[p] for p in {r["path"] for r in results}},
        "cells": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_name(args.json.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, args.json)
    print(f"wrote {args.json}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
