"""The ablation lab (`src.recipes.ablations`, `src.ablations`, `src.viz.ablations`): each
ablation is the one change it names, the results file holds the whole grid, the command
line refuses bad options. That cells run again agree with the file is asserted by the
ablation chapter itself, which repeats three of them (tests/test_chapters.py runs it).
"""

from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from vega_helpers import described, rendered_marks

from src import ablations
from src.data.tokenizer import PAD
from src.recipes import ablations as lab
from src.recipes.numbers import number_settings
from src.robustness import machine
from src.shared.batch import Batch
from src.shared.lr_scheduler import rate
from src.shared.training import TrainingConfig, train
from src.transformer import make_model
from src.viz.ablations import loss_curves_chart, loss_frame, score_points, seed_points_chart


def _leaves(settings) -> dict[tuple[str, str], object]:
    d = settings.to_dict()
    return {(part, k): v for part in ("model", "training") for k, v in d[part].items()} | {
        ("", k): v for k, v in d.items() if k not in ("model", "training")
    }


@pytest.mark.parametrize("name", list(lab.ABLATIONS))
def test_each_ablation_changes_exactly_the_fields_it_names(name):
    a = lab.ABLATIONS[name]
    base, changed = _leaves(lab.baseline_settings(3)), _leaves(lab.lab_settings(name, 3))
    differ = {k for k in base if base[k] != changed[k]}
    assert differ == {(a.part, f) for f in a.changes}
    assert all(changed[(a.part, f)] == v for f, v in a.changes.items())


def test_without_warmup_the_rate_peaks_at_the_first_step_higher_or_at_the_baselines_peak():
    base = lab.baseline_settings().training
    d_model = lab.baseline_settings().model.d_model
    peak = rate(base.warmup, d_model, base.factor, base.warmup)
    assert peak == max(rate(s, d_model, base.factor, base.warmup) for s in range(1, 2000))
    high, same = (lab.lab_settings(c).training for c in ("no-warmup", "no-warmup-same-peak"))
    assert rate(1, d_model, high.factor, high.warmup) == pytest.approx(peak * base.warmup**0.5)
    assert rate(1, d_model, same.factor, same.warmup) == pytest.approx(peak)


def test_the_baseline_is_the_number_recipe_at_a_fixed_budget_with_the_papers_smoothing():
    recipe, base = _leaves(number_settings("fr")), _leaves(lab.baseline_settings(2))
    differ = {k for k in recipe if recipe[k] != base[k]}
    assert differ == {("training", "epochs"), ("training", "patience"), ("training", "smoothing"), ("", "seed")}
    assert base[("training", "patience")] == 0, "no stopping rule: every cell trains the same budget"
    assert base[("training", "smoothing")] == 0.1 and recipe[("training", "smoothing")] == 0.0
    assert base[("training", "epochs")] == lab.LAB_EPOCHS and base[("", "seed")] == 2


def test_an_unknown_config_is_refused_by_name():
    with pytest.raises(ValueError, match="config must be one of baseline, no-scaling"):
        lab.lab_settings("no-dropout")


def test_the_checkpoints_averaged_end_at_the_last_step():
    steps_per_epoch = math.ceil(lab.LAB_TASK.n_train / lab.baseline_settings().batch_size)
    assert (steps_per_epoch * lab.LAB_EPOCHS) % lab.EVERY == 0


def test_held_out_loss_is_the_unsmoothed_cross_entropy():
    torch.manual_seed(0)
    model = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2, dropout=0.0)
    data = torch.randint(4, 11, (6, 7))
    data[:, 0] = 1
    data[:2, 5:] = PAD
    batch = Batch(data, data, pad=PAD)
    held_out = lab.HeldOutLoss([batch], every=2)
    train(model, [batch] * 4, TrainingConfig(epochs=1, warmup=2, smoothing=0.3), pad=PAD,
          callbacks=[held_out])
    assert [r["step"] for r in held_out.rows] == [0, 2, 4]
    model.eval()
    with torch.no_grad():
        logp = model.generator(model(batch.src, batch.tgt, batch.src_mask, batch.tgt_mask))
    expected = F.nll_loss(logp.flatten(0, 1), batch.tgt_y.flatten(), ignore_index=PAD)
    assert held_out.rows[-1]["valid_nll"] == pytest.approx(float(expected), rel=1e-5)


def test_attention_peakedness_of_uniform_attention_and_of_unscaled_scores():
    torch.manual_seed(0)
    model = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2, dropout=0.0)
    for linear in model.encoder.layers[0].self_attn.linears[:2]:  # queries and keys of 0
        torch.nn.init.zeros_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
    src = torch.tensor([[4, 5, 6, 7], [4, 5, PAD, PAD]])
    got = lab.attention_peakedness(model, src)
    # uniform over 4 keys for the 4 real queries of row 0, over 2 keys for row 1's 2 queries
    assert got["entropy"] == pytest.approx((4 * math.log(4) + 2 * math.log(2)) / 6)
    assert got["max_weight"] == pytest.approx((4 * 0.25 + 2 * 0.5) / 6)
    assert got["saturated"] == 0.0
    ids = torch.randint(4, 40, (8, 20))
    peaks = {}
    for scaled in (True, False):
        torch.manual_seed(1)
        m = make_model(40, 40, N=2, d_model=128, d_ff=64, h=2, dropout=0.0, scale_scores=scaled)
        peaks[scaled] = lab.attention_peakedness(m, ids)
    assert peaks[False]["entropy"] < peaks[True]["entropy"]  # section 3.2.1: larger logits
    assert peaks[False]["max_weight"] > peaks[True]["max_weight"]


def test_shared_embeddings_get_one_tokenizer_of_both_languages():
    pairs = [("one", "un"), ("two", "deux"), ("twenty-one", "vingt et un")]
    src, tgt = lab.tokenizers(pairs, lab.lab_settings("shared-embeddings"))
    assert src is tgt and src.encode("deux") == tgt.encode("deux")
    apart_src, apart_tgt = lab.tokenizers(pairs, lab.baseline_settings())
    assert len(src) > max(len(apart_src), len(apart_tgt))


# -- the command line ------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "names"), [
    (["--configs", "baseline,no-dropout"], "--configs"), (["--configs", ""], "--configs"),
    (["--seeds", "x"], "--seeds"), (["--seeds", "-1"], "--seeds"),
    (["--threads", "0"], "--threads"), (["--threads", "two"], "--threads"),
])
def test_bad_options_are_usage_errors_naming_the_option(argv, names, capsys):
    with pytest.raises(SystemExit) as e:
        ablations.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {names}" in err and "expected" in err


def test_merge_refuses_a_file_of_another_recipe(tmp_path, capsys):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"recipe": {"epochs": 99}, "cells": []}))
    assert ablations.main(["--configs", "baseline", "--seeds", "0", "--json", str(path), "--merge"]) == 2
    assert "another recipe" in capsys.readouterr().err


def test_merge_keeps_only_cells_of_the_same_recipe_ablations_and_machine():
    recipe = json.loads(json.dumps(lab.lab_recipe()))
    report = {"recipe": recipe, "machine": machine()}
    assert ablations.merge_conflict(report, {"baseline", "post-norm"}) is None
    changed = json.loads(json.dumps(recipe))
    changed["ablations"]["post-norm"]["changes"] = {"norm_first": True}
    assert "post-norm" in ablations.merge_conflict(dict(report, recipe=changed), {"post-norm"})
    assert ablations.merge_conflict(dict(report, recipe=changed), {"no-scaling"}) is None
    other = dict(report, machine=dict(machine(), torch="1.0"))
    assert "another machine" in ablations.merge_conflict(other, {"baseline"})


def test_the_report_is_written_atomically(tmp_path):
    path = tmp_path / "sub" / "r.json"
    ablations.write_report(path, {"a": [1.5]})
    assert json.loads(path.read_text()) == {"a": [1.5]} and os.listdir(path.parent) == ["r.json"]


def _cell(config="baseline", seed=0, steps=(2.0, 1.0), exact=0.9) -> dict:
    return {"config": config, "seed": seed, "steps": list(steps),
            "held_out": [{"step": 0, "valid_nll": 3.0}, {"step": 2, "valid_nll": 1.5}],
            "test": {"exact_match": exact, "bleu": 90.0}, "beam": {"exact_match": exact, "bleu": 90.0},
            "averaged": {"exact_match": exact + 0.05, "bleu": 95.0},
            "env": {}, "capability": "AVX2", "torch": "2.13.0", "threads": 1}


def test_agreement_is_bit_for_bit_on_one_kernel_path_and_within_the_seed_interval_elsewhere():
    rec = _cell()  # averaged exact match 0.95
    assert ablations.agreement(_cell(), rec, same_path=True, interval=(0.9, 1.0))["agrees"]
    drift = _cell(steps=(2.0 + 1e-6, 1.1), exact=0.85)  # averaged 0.90
    assert not ablations.agreement(drift, rec, same_path=True, interval=(0.8, 1.0))["agrees"]
    assert ablations.agreement(drift, rec, same_path=False, interval=(0.8, 1.0))["agrees"]
    assert not ablations.agreement(drift, rec, same_path=False, interval=(0.92, 1.0))["agrees"]
    moved_first = _cell(steps=(2.1, 1.0))
    assert not ablations.agreement(moved_first, rec, same_path=False, interval=(0, 1))["agrees"]
    with pytest.raises(ValueError, match="different cells"):
        ablations.agreement(_cell(seed=1), rec, True, (0.0, 1.0))
    assert ablations.same_kernel_path(_cell(), rec, "cpu", "cpu")
    assert not ablations.same_kernel_path(dict(_cell(), threads=2), rec, "cpu", "cpu")
    assert not ablations.same_kernel_path(_cell(), rec, "cpu", "other cpu")


def test_the_seed_interval_is_the_averaged_range_widened_by_itself_with_a_floor():
    cells = [_cell(seed=s, exact=e) for s, e in enumerate((0.85, 0.9, 0.8))]  # averaged +0.05
    low, high = ablations.seed_interval(cells, "baseline")
    assert (low, high) == (pytest.approx(0.75), pytest.approx(1.0))  # 0.85..0.95, +-0.1, capped
    low, high = ablations.seed_interval(cells[:1], "baseline")
    assert (low, high) == (pytest.approx(0.88), pytest.approx(0.92))
    assert ablations.seed_interval([_cell(exact=-0.05)], "baseline") == (0.0, pytest.approx(0.02))
    with pytest.raises(ValueError, match="no run of 'post-norm'"):
        ablations.seed_interval(cells, "post-norm")


def test_the_table_has_a_row_per_cell_in_config_order():
    lines = ablations.table([_cell("post-norm", 1), _cell("baseline", 0, exact=0.5)]).splitlines()
    assert lines[2] == "| baseline | 0 | 0.500 | 90.00 | 0.500 | 0.550 | 95.00 |"
    assert lines[3].startswith("| post-norm | 1 | 0.900 |")


# -- the results file -------------------------------------------------------------------

REPORT = ablations.DEFAULT_JSON


def test_the_results_file_holds_every_cell_of_the_grid_once():
    report = json.loads(REPORT.read_text())
    assert report["recipe"] == json.loads(json.dumps(lab.lab_recipe())), "the file is of another recipe"
    cells = [(c["config"], c["seed"]) for c in report["cells"]]
    expected = [(c, s) for c in lab.CONFIGS for s in ablations.DEFAULT_SEEDS]
    assert sorted(cells) == sorted(expected) and len(set(cells)) == len(cells)
    steps = lab.LAB_EPOCHS * math.ceil(lab.LAB_TASK.n_train / lab.baseline_settings().batch_size)
    for c in report["cells"]:
        assert len(c["steps"]) == steps and all(math.isfinite(x) for x in c["steps"]), c["config"]
        assert [r["step"] for r in c["epochs"]] == [steps * (e + 1) // lab.LAB_EPOCHS for e in range(lab.LAB_EPOCHS)]
        assert c["averaged_steps"] == [steps - lab.EVERY * i for i in reversed(range(lab.KEEP))]
        for part in ("test", "beam", "averaged"):
            assert 0 <= c[part]["exact_match"] <= 1 and 0 <= c[part]["bleu"] <= 100
        assert c["threads"] == 1 and {"env", "capability", "torch"} <= set(c)
    assert {"cpu", "torch", "capability"} <= set(report["machine"])
    assert report["complete"] and report["runs"][-1]["command"].startswith("python -m src.ablations")


# -- the charts -------------------------------------------------------------------------

def test_loss_frame_averages_windows_of_steps():
    frame = loss_frame([_cell(steps=(4.0, 2.0, 1.0, 3.0))], window=2)
    train_rows = frame[frame["curve"] == "train"]
    assert train_rows["step"].tolist() == [2, 4] and train_rows["loss"].tolist() == [3.0, 2.0]
    assert frame[frame["curve"] == "held-out"]["loss"].tolist() == [3.0, 1.5]
    with pytest.raises(ValueError, match="window"):
        loss_frame([], window=0)


def test_loss_curves_draw_one_line_per_seed_in_each_ablation_panel():
    cells = [_cell(c, s, steps=[1.0 + s] * 20) for c in ("baseline", "no-warmup", "post-norm") for s in range(3)]
    spec = loss_curves_chart(cells, "train", "baseline", title="Curves").to_dict(validate=True)
    points = [described(m) for m in rendered_marks(spec, "line")]  # a line: an item a point
    # two panels, each the baseline's 3 seeds and the ablation's, two windows of 10 steps each
    assert len(points) == 2 * (3 + 3) * 2
    drawn = {(p["config"], p["seed"]) for p in points}
    assert drawn == {(c, str(s)) for c in ("baseline", "no-warmup", "post-norm") for s in range(3)}
    assert sum(p["config"] == "baseline" for p in points) == 2 * 3 * 2  # in both panels
    with pytest.raises(ValueError, match="'baseline' runs"):
        loss_curves_chart(cells[3:], "train", "baseline", title="t")
    with pytest.raises(ValueError, match="curve"):
        loss_curves_chart(cells, "valid", "baseline", title="t")


def test_seed_points_draw_every_seed_and_the_mean():
    cells = [_cell(c, s, exact=0.5 + 0.1 * s) for c in ("baseline", "post-norm") for s in range(3)]
    points = score_points(cells, "exact_match", {"last": "test", "averaged": "averaged"})
    assert len(points) == 12
    spec = seed_points_chart(points, "exact_match", "Exact match", "Scores", lab.CONFIGS).to_dict(validate=True)
    dots = [described(m) for m in rendered_marks(spec, "symbol")]
    assert len(dots) == 12
    ticks = [described(m) for m in rendered_marks(spec, "rect")]
    means = sorted(t["mean Exact match"] for t in ticks)
    assert means == ["0.600", "0.600", "0.650", "0.650"]
    with pytest.raises(ValueError, match="variant"):
        seed_points_chart(pd.DataFrame({"config": [], "seed": [], "x": []}), "x", "x", "t", [])

