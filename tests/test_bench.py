"""The benchmark's measuring tools: FLOP counts against the formula, the time breakdown, tiny runs end to end."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src import bench
from src.shared.lr_scheduler import make_optimizer


def test_interleaved_returns_the_median_of_each_function() -> None:
    calls = {"a": 0, "b": 0}

    def count(name: str):
        def fn() -> None:
            calls[name] += 1
        return fn

    t = bench.interleaved({"a": count("a"), "b": count("b")}, repeats=5, warmup=2)
    assert set(t) == {"a", "b"} and all(v >= 0 for v in t.values())
    assert calls == {"a": 7, "b": 7}


def test_count_flops_of_a_linear_layer_forward_and_backward_is_six_m_n_k() -> None:
    m, k, n = 8, 16, 32
    layer = torch.nn.Linear(k, n)
    x = torch.randn(m, k, requires_grad=True)
    assert bench.count_flops(lambda: layer(x)) == 2 * m * n * k
    # Backward: a product for the input's gradient and one for the weight's, each 2 m n k.
    assert bench.count_flops(lambda: layer(x).sum().backward()) == 6 * m * n * k


def test_op_times_put_each_operation_in_its_group() -> None:
    assert bench.OpTimes.group("mm") == bench.OpTimes.group("addmm") == bench.OpTimes.group("bmm") == "matmul"
    assert bench.OpTimes.group("bernoulli_") == "dropout_rng"
    assert bench.OpTimes.group("_fused_adam_") == bench.OpTimes.group("_foreach_mul_") == "adam"
    assert bench.OpTimes.group("native_layer_norm") == "other"


def test_op_times_see_forward_backward_and_optimizer() -> None:
    model = torch.nn.Linear(256, 256)
    optimizer = make_optimizer(model)
    x = torch.randn(512, 256)

    def step() -> None:
        F.dropout(model(x), 0.1, training=True).sum().backward()
        optimizer.step()

    with bench.OpTimes() as times:
        step()
    assert all(times.seconds[k] > 0 for k in ("matmul", "dropout_rng", "adam", "other"))
    flops = bench.count_flops(step)
    shares = bench.step_breakdown(step, flops)
    assert abs(sum(v for k, v in shares.items() if k.startswith("time_share_")) - 1) < 1e-9
    assert shares["matmul_gflops"] > 0


def test_bench_training_row_is_consistent_with_its_own_figures() -> None:
    (row,) = bench.bench_training(2, sizes=[("tiny", 32, 1, 64, 4, 4, 6)])
    assert row["size"] == "tiny"
    assert abs(row["ratio"] - row["book_ms"] / row["torch_ms"]) < 1e-9
    assert abs(row["book_gflops"] - row["gflop_per_step"] / (row["book_ms"] / 1e3)) < 1e-6 * row["book_gflops"]
    assert abs(row["tokens_per_s_book"] - 4 * 6 / (row["book_ms"] / 1e3)) < 1e-6 * row["tokens_per_s_book"]
    assert 0 < row["time_share_matmul"] < 1


def test_bench_optimizer_compares_fused_adam_with_foreach_on_the_same_parameters() -> None:
    row = bench.bench_optimizer(2, d_model=32, N=1)
    model = bench.make_model(bench.VOCAB, bench.VOCAB, N=1, d_model=32, d_ff=128, h=8)
    assert row["parameters"] == sum(p.numel() for p in model.parameters())
    assert abs(row["speedup"] - row["foreach_ms"] / row["fused_ms"]) < 1e-9


def test_table_aligns_columns() -> None:
    text = bench.table([{"size": "a", "ratio": 0.98765}, {"size": "bbb", "ratio": 1.5}], ["size", "ratio"])
    lines = text.splitlines()
    assert lines[0].split() == ["size", "ratio"] and lines[1].split() == ["a", "0.988"]
    assert len({len(line) for line in lines}) == 1


def test_bench_threads_measures_one_thread_and_all_and_restores_the_count() -> None:
    before = torch.get_num_threads()
    rows = bench.bench_threads(1, size=("tiny", 32, 1, 64, 4, 4, 6))
    assert torch.get_num_threads() == before
    assert [r["threads"] for r in rows] == sorted({1, before})
    for r in rows:
        assert abs(r["share_of_peak"] - r["book_gflops"] / r["matmul_peak_gflops"]) < 1e-9


def test_matmul_best_is_the_fastest_of_its_repeats(monkeypatch) -> None:
    """The best rate of each size comes from the fastest product; the peak is the best size's."""
    ticks = iter([0.0, 2.0, 2.0, 3.0, 3.0, 6.0] * 2)  # products of 2 s, 1 s, 3 s at each size
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(ticks))
    rates = bench.matmul_best(sizes=(4, 8), repeats=3)
    assert rates == {4: 2 * 4**3 / 1.0 / 1e9, 8: 2 * 8**3 / 1.0 / 1e9}


def test_dropout_draws_count_one_number_per_element_dropped_out() -> None:
    x = torch.ones(3, 5)
    assert bench.dropout_draws(lambda: F.dropout(x, 0.5, training=True)) == 15
    assert bench.dropout_draws(lambda: F.dropout(x, 0.5, training=False)) == 0
