"""The ablation lab's grid: `python -m src.ablations` (or `make ablations`).

Each cell (a setting of `src.recipes.ablations.CONFIGS` and a seed) trains in a fresh
process with a fixed number of threads, one cell after another, and the results go to
a JSON file (`book/data/ablations.json` by default, which the ablation chapter reads),
written atomically. Each cell records the torch version, the thread count and the
kernel path it ran with, so that a later run of the same cell can be compared with it
bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from src.recipes.ablations import BASELINE, CONFIGS, lab_recipe, run_cell
from src.robustness import PATHS, int_list, machine, subset_of

DEFAULT_JSON = Path(__file__).resolve().parents[1] / "book" / "data" / "ablations.json"
DEFAULT_SEEDS = (0, 1, 2)


def kernel_path() -> dict:
    """This process's kernel path: the switches of `src.robustness.PATHS` that are set,
    the capability ATen uses, torch's version and the thread count.
    """
    switches = sorted({k for env in PATHS.values() for k in env})
    return {
        "env": {k: os.environ[k] for k in switches if os.environ.get(k)},
        "capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def cell_in_process(config: str, seed: int, threads: int) -> dict:
    """Run one cell in this process with `threads` threads."""
    torch.set_num_threads(threads)
    return {**run_cell(config, seed), **kernel_path()}


def run_cell_process(
    config: str, seed: int, threads: int = 1, env: dict[str, str] | None = None
) -> dict:
    """Run one cell in a fresh process of its own (`env` adds environment variables,
    e.g. a kernel path); its result, with the seconds it took.
    """
    start = time.perf_counter()
    cell = json.dumps({"config": config, "seed": seed, "threads": threads})
    proc = subprocess.run(
        [sys.executable, "-m", "src.ablations", "--cell", cell],
        env={**os.environ, **(env or {}), "OMP_NUM_THREADS": str(threads)},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(
            f"cell {config} seed {seed} failed (exit {proc.returncode}): {last}"
        ) from None
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def run_cells(
    cells: list[tuple[str, int]],
    threads: int = 1,
    env: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    workers: int = 1,
) -> list[dict]:
    """Run each (config, seed) cell in a fresh process of its own, `workers` processes
    at a time; their results in order. A cell's result does not depend on `workers`:
    each process computes alone on its `threads` threads.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_cell_process, c, s, threads, env) for c, s in cells]
        results = []
        for future in futures:
            results.append(future.result())
            if log is not None:
                log(describe(results[-1]))
    return results


def same_kernel_path(cell: dict, recorded: dict, cpu: str, recorded_cpu: str) -> bool:
    """Whether a run repeats a recorded one on the same floats: the same CPU model,
    kernel-path switches, ATen capability, torch version and thread count.
    """
    keys = ("env", "capability", "torch", "threads")
    return cpu == recorded_cpu and all(cell[k] == recorded[k] for k in keys)


def agreement(
    cell: dict, recorded: dict, same_path: bool, interval: tuple[float, float]
) -> dict:
    """How a run of a cell compares with the grid's record of it.

    On the same kernel path the run must repeat the record bit for bit: every step's
    loss and every score equal. On another, rounding differs from the first update on
    and the run drifts as a run of another seed would: the first step's loss must agree
    to 1e-4 (relative; it is computed before any update), and the test exact match of
    its averaged checkpoints must fall in `interval` (`seed_interval`).
    """
    if (cell["config"], cell["seed"]) != (recorded["config"], recorded["seed"]):
        raise ValueError("cell and recorded are runs of different cells")
    first = abs(cell["steps"][0] - recorded["steps"][0]) / abs(recorded["steps"][0])
    averaged = cell["averaged"]["exact_match"]
    last_gap = abs(cell["test"]["exact_match"] - recorded["test"]["exact_match"])
    identical = cell["steps"] == recorded["steps"] and all(
        cell[k] == recorded[k] for k in ("test", "beam", "averaged", "held_out")
    )
    return {
        "config": cell["config"],
        "seed": cell["seed"],
        "same_path": same_path,
        "identical": identical,
        "max_loss_gap": max(
            abs(a - b) for a, b in zip(cell["steps"], recorded["steps"], strict=True)
        ),
        "first_step_gap": first,
        "exact_match_gap": last_gap,
        "averaged": averaged,
        "agrees": identical
        if same_path
        else first <= 1e-4 and interval[0] <= averaged <= interval[1],
    }


def seed_interval(cells: list[dict], config: str) -> tuple[float, float]:
    """Where the averaged checkpoints of a run of `config` on another kernel path
    should score (test exact match): from the lowest to the highest of the grid's
    seeds, widened on each side by that range, at least 0.02, within [0, 1].

    Such a run is one more draw of the seeds' spread. One more draw falls outside the
    range of three half the time (each of the four is as likely to be the lowest or the
    highest), so the range alone would fail every other run; widened by itself it holds
    the runs that the seeds make plausible. The averaged checkpoints are compared
    because they vary less over seeds than the last ones, which end wherever the last
    few steps left them.
    """
    scores = [c["averaged"]["exact_match"] for c in cells if c["config"] == config]
    if not scores:
        raise ValueError(f"the cells hold no run of {config!r}")
    low, high = min(scores), max(scores)
    widen = max(high - low, 0.02)
    return max(low - widen, 0.0), min(high + widen, 1.0)


def describe(r: dict) -> str:
    """One line about a finished cell."""
    return (
        f"{r['config']:>17} seed {r['seed']}: exact match "
        f"{r['test']['exact_match']:.3f}"
        f" (averaged {r['averaged']['exact_match']:.3f}), BLEU "
        f"{r['test']['bleu']:.2f}, {r['train_seconds']:.0f} s training"
    )


def table(cells: list[dict]) -> str:
    """A Markdown table, one row per config and seed: greedy exact match and BLEU, beam
    exact match, averaged-checkpoint exact match.
    """
    lines = [
        "| config | seed | exact match | BLEU | beam exact match | averaged exact "
        "match | averaged BLEU |",
        "|---|---|---|---|---|---|---|",
    ]
    order = {c: i for i, c in enumerate(CONFIGS)}
    for r in sorted(cells, key=lambda r: (order.get(r["config"], 99), r["seed"])):
        lines.append(
            f"| {r['config']} | {r['seed']} | {r['test']['exact_match']:.3f} | "
            f"{r['test']['bleu']:.2f} | {r['beam']['exact_match']:.3f} | "
            f"{r['averaged']['exact_match']:.3f} | {r['averaged']['bleu']:.2f} |"
        )
    return "\n".join(lines)


def write_report(path: Path, report: dict) -> None:
    """Write `report` as JSON to `path` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, path)


def _threads(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m src.ablations", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--configs",
        type=subset_of(CONFIGS),
        default=list(CONFIGS),
        help=f"comma-separated subset of {','.join(CONFIGS)} (default: all)",
    )
    p.add_argument(
        "--seeds", type=int_list, default=list(DEFAULT_SEEDS), help="e.g. 0-2 (default)"
    )
    p.add_argument(
        "--threads", type=_threads, default=1, help="threads per cell (default: 1)"
    )
    p.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"results file (default: {DEFAULT_JSON.name} in book/data, which the "
        "ablation chapter reads)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the cells of an existing results file that this run does not repeat",
    )
    # internal: run one cell, given as JSON, in this process
    p.add_argument("--cell", help=argparse.SUPPRESS)
    return p


def merge_conflict(report: dict, keep: set[str]) -> str | None:
    """Why cells of `report` cannot join this run's in one file (None if they can): they
    must come from this machine and the same recipe, and each config kept must still be
    the same ablation.
    """
    old, new = report.get("recipe", {}), lab_recipe()
    shared = [k for k in new if k != "ablations"]
    if any(old.get(k) != json.loads(json.dumps(new[k])) for k in shared):
        return "it holds cells of another recipe"
    changed = [
        c
        for c in keep - {BASELINE}
        if old.get("ablations", {}).get(c)
        != json.loads(json.dumps(new["ablations"][c]))
    ]
    if changed:
        return f"the ablations {', '.join(sorted(changed))} have changed since"
    if report.get("machine") != machine():
        return "it was written on another machine or torch"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cell:
        cell = json.loads(args.cell)
        result = cell_in_process(cell["config"], cell["seed"], cell["threads"])
        print(json.dumps(result))
        return 0
    cells = [(c, s) for c in args.configs for s in args.seeds]
    old, runs = [], []
    if args.merge and args.json.exists():
        report = json.loads(args.json.read_text())
        old = [r for r in report["cells"] if (r["config"], r["seed"]) not in cells]
        old = [r for r in old if r["config"] in CONFIGS]
        conflict = merge_conflict(report, {r["config"] for r in old})
        if conflict:
            print(
                f"error: cannot --merge into {args.json}: {conflict}; run without "
                "--merge",
                file=sys.stderr,
            )
            return 2
        runs = report.get("runs", [])
        if "command" in report:  # a file of one run
            runs = [{"command": report["command"], "seconds": report["seconds"]}]
    print(f"{len(cells)} cells, {args.threads} thread(s) each", file=sys.stderr)
    argv_text = shlex.join(sys.argv[1:] if argv is None else argv)
    command = f"python -m src.ablations {argv_text}".strip()
    order = {c: i for i, c in enumerate(CONFIGS)}
    grid = {(c, s) for c in CONFIGS for s in DEFAULT_SEEDS}
    start, results = time.perf_counter(), []
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    # the file is written after every cell: a grid stopped halfway keeps its cells
    for cell in cells:
        results += run_cells([cell], args.threads, log=log)
        every = sorted(old + results, key=lambda r: (order[r["config"]], r["seed"]))
        seconds = round(time.perf_counter() - start)
        write_report(
            args.json,
            {
                "machine": machine(),
                # the commands that wrote the file's cells, the last one last
                "runs": runs + [{"command": command, "seconds": seconds}],
                "complete": grid <= {(r["config"], r["seed"]) for r in every},
                "recipe": lab_recipe(),
                "cells": every,
            },
        )
    print(table(old + results))
    seconds = time.perf_counter() - start
    print(f"\n{len(results)} cells in {seconds / 60:.1f} min", file=sys.stderr)
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
