"""The robustness grid (`src.robustness`): its cells, its command line, its table and its stopping point."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from src import robustness
from src.data.copy_task import held_out_sequences
from src.recipes import copy_task
from src.recipes.copy_task import train_copy_model


def test_the_default_grid_covers_what_the_recipes_promise():
    cells = robustness.grid(robustness.TASKS, None, None, None)
    copy = [c for c in cells if c["task"] == "copy"]
    has_avx2 = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    assert len(copy) == 10 * (4 if has_avx2 else 3) * 2
    assert {c["path"] for c in copy} == {"native", "default", "compatible"} | ({"avx2"} if has_avx2 else set())
    for lang in ("fr", "de"):
        numbers = [c for c in cells if c["task"] == lang]
        assert len(numbers) == 3 * 2 and {c["path"] for c in numbers} == {"native", "default"}
    assert len({tuple(sorted(c.items())) for c in cells}) == len(cells), "no cell twice"


def test_every_kernel_path_sets_only_the_documented_switches():
    for name, env in robustness.PATHS.items():
        assert set(env) <= {"ATEN_CPU_CAPABILITY", "MKL_CBWR"}, name
    assert robustness.PATHS["native"] == {}


@pytest.mark.parametrize(("text", "expected"), [("0-2", [0, 1, 2]), ("3", [3]), ("0,4-5", [0, 4, 5])])
def test_seed_ranges_parse(text, expected):
    assert robustness.int_list(text) == expected


@pytest.mark.parametrize("argv", [["--tasks", "copy,it"], ["--seeds", "a-b"], ["--seeds", "-1"],
                                  ["--paths", "fast"], ["--threads", "0"], ["--cores", "0"]])
def test_bad_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        robustness.main(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_the_table_has_a_row_per_path_and_counts_what_passed():
    results = [{"task": "copy", "path": p, "threads": 1, "seed": s, "exact_match": m, "passed": m == 1.0}
               for p, ms in [("native", (1.0, 1.0)), ("default", (1.0, 0.994))] for s, m in enumerate(ms)]
    results.append({"task": "fr", "path": "native", "threads": 2, "seed": 0, "passed": False, "error": "Killed"})
    lines = robustness.table(results).splitlines()
    assert lines[2] == "| copy | native | 1 | 1.000 | 1.000 | 2/2 |"
    assert lines[3] == "| copy | default | 1 | 1.000 | 0.994 | 1/2 |"
    assert lines[4] == "| fr | native | 2 | error |  | 0/1 |"


def test_the_stop_point_is_the_model_train_copy_model_returns(monkeypatch):
    """The grid scores the model where the rule stops, then trains on: that model must be the recipe's."""
    monkeypatch.setattr(copy_task, "exact_copies", lambda model, sequences: 1.0)  # stop after `patience` epochs

    def fingerprint(model, sequences) -> float:  # stands in for the held-out score: a sum of all weights
        return float(sum(p.detach().double().sum() for p in model.parameters()))

    monkeypatch.setattr(robustness, "exact_copies", fingerprint)
    rule = robustness._StopPoint(held_out_sequences(4), patience=2)
    four = replace(copy_task.COPY_TRAINING, epochs=4)
    _, went_on = train_copy_model(3, four, until=rule)
    stopped, history = train_copy_model(3, four, until=copy_task.UntilCopied(held_out_sequences(4), 2))
    assert len(went_on.epochs) == 4 and len(history.epochs) == 2 == rule.at["epochs"]
    assert rule.at["exact_match"] == fingerprint(stopped, None)
