"""src/layer_comparison.py and src/viz/complexity.py: Table 1 of the paper as printed, path lengths measured from
gradients against their formulas, the operation counts and the saved-activation memory on cases with known answers,
the crossover, and the charts of the chapter "Why self-attention"."""

from __future__ import annotations

import math

import pytest
import torch
import vl_convert as vlc
from torch import nn
from vega_helpers import rendered_marks as marks

from src import layer_comparison as lc
from src.viz.complexity import complexity_frame, memory_chart, time_chart

# ---------------------------------------------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------------------------------------------

# Table 1 of Vaswani et al. (2017), as printed: layer type, complexity per layer, sequential operations, maximum
# path length.
PAPER_TABLE_1 = [
    ("Self-Attention", "O(n^2 · d)", "O(1)", "O(1)"),
    ("Recurrent", "O(n · d^2)", "O(n)", "O(n)"),
    ("Convolutional", "O(k · n · d^2)", "O(1)", "O(log_k(n))"),
    ("Self-Attention (restricted)", "O(r · n · d)", "O(1)", "O(n/r)"),
]


def test_table_1_is_written_as_the_paper_prints_it():
    assert [(r.layer, r.complexity, r.sequential, r.path) for r in lc.TABLE_1] == PAPER_TABLE_1


def test_table_1_evaluated_for_concrete_sizes():
    """n = 50 words of width d = 512, kernel k = 3, neighbourhood r = 10: the terms worked out by hand."""
    rows = {row["layer"]: row for row in lc.table_1(n=50, d=512, k=3, r=10)}
    assert rows["Self-Attention"]["complexity"] == 1_280_000  # 50^2 * 512
    assert rows["Recurrent"]["complexity"] == 13_107_200  # 50 * 512^2
    assert rows["Convolutional"]["complexity"] == 39_321_600  # 3 * 50 * 512^2
    assert rows["Self-Attention (restricted)"]["complexity"] == 256_000  # 10 * 50 * 512
    assert [rows[name]["sequential"] for name, *_ in PAPER_TABLE_1] == [1, 50, 1, 1]
    assert rows["Self-Attention"]["path"] == 1 and rows["Recurrent"]["path"] == 50
    assert rows["Convolutional"]["path"] == pytest.approx(3.5608, abs=1e-4)  # log_3(50)
    assert rows["Self-Attention (restricted)"]["path"] == 5  # 50 / 10
    # the column headers carry the paper's expressions
    assert rows["Recurrent"]["complexity per layer"] == "O(n · d^2)"


@pytest.mark.parametrize("d", [16, 64, 512])
def test_attention_and_recurrence_cost_the_same_at_n_equal_d(d):
    """Section 4: self-attention is cheaper than a recurrent layer exactly when n < d."""
    def cost(n, layer):
        return lc.table_1(n, d, 3, 5)[layer]["complexity"]

    assert cost(d, 0) == cost(d, 1)
    assert cost(d - 1, 0) < cost(d - 1, 1) and cost(d + 1, 0) > cost(d + 1, 1)


# ---------------------------------------------------------------------------------------------------------------
# Path length, measured from gradients
# ---------------------------------------------------------------------------------------------------------------

D = 6


def attention_stack(r):
    return lambda layers: nn.Sequential(*(lc.SelfAttentionLayer(D, 2, r) for _ in range(layers)))


@pytest.mark.parametrize("n", [5, 12])
def test_self_attention_connects_every_pair_in_one_layer(n):
    assert lc.path_length(attention_stack(None), n, D) == 1


@pytest.mark.parametrize("n, r", [(12, 3), (12, 5), (20, 7)])
def test_restricted_attention_needs_n_over_r_layers(n, r):
    measured = lc.path_length(attention_stack(r), n, D)
    assert measured == lc.restricted_attentions_to_connect(n, r) == math.ceil((n - 1) / (r // 2))


@pytest.mark.parametrize("n, k", [(9, 2), (16, 3), (27, 3), (20, 4)])
def test_contiguous_convolutions_need_about_n_over_k_layers(n, k):
    measured = lc.path_length(lambda layers: lc.convolution_stack(D, k, layers, dilated=False), n, D)
    assert measured == lc.convolutions_to_connect(n, k) == math.ceil((n - 1) / (k - 1))


@pytest.mark.parametrize("n, k", [(9, 2), (16, 2), (16, 3), (27, 3), (28, 3), (20, 4)])
def test_dilated_convolutions_need_log_k_n_layers(n, k):
    measured = lc.path_length(lambda layers: lc.convolution_stack(D, k, layers, dilated=True), n, D)
    smallest = next(layers for layers in range(1, n) if k**layers >= n)  # ceil(log_k(n)), without rounding error
    assert measured == lc.convolutions_to_connect(n, k, dilated=True) == smallest


@pytest.mark.parametrize("n", [1, 7, 20])
def test_the_recurrent_path_passes_through_every_step(n):
    assert lc.recurrent_path_length(lc.RecurrentLayer(D), n) == n


def test_one_layer_too_few_does_not_connect():
    """The dependency test itself: a contiguous stack one layer short leaves the first input out of the last output."""
    n, k = 16, 3
    needed = lc.convolutions_to_connect(n, k)
    torch.manual_seed(0)
    assert not lc.depends(lc.convolution_stack(D, k, needed - 1, False), n, D, output=n - 1, on=0)
    assert lc.depends(lc.convolution_stack(D, k, needed, False), n, D, output=n - 1, on=0)
    assert not lc.depends(lc.convolution_stack(D, k, needed, False), n, D, output=0, on=n - 1)  # one-sided


# ---------------------------------------------------------------------------------------------------------------
# The layers, their operation counts and their memory
# ---------------------------------------------------------------------------------------------------------------


def test_the_recurrent_loop_is_nn_rnn():
    torch.manual_seed(0)
    layer = lc.RecurrentLayer(8)
    x = torch.randn(3, 11, 8)
    torch.testing.assert_close(layer(x), lc.TorchRecurrentLayer(layer)(x))


def test_every_layer_keeps_the_shape():
    x = torch.randn(2, 10, 16)
    for layer in [*lc.make_layers(16, h=4, k=3).values(), lc.SelfAttentionLayer(16, 4, r=3),
                  lc.ConvolutionalLayer(16, 2, dilation=4)]:
        assert layer(x).shape == x.shape


@pytest.mark.parametrize("bad", [0, 2, -3])
def test_restricted_attention_wants_an_odd_neighbourhood(bad):
    with pytest.raises(ValueError, match="odd"):
        lc.SelfAttentionLayer(8, 2, r=bad)


def test_measure_counts_the_operations_of_the_formulas():
    n, d, k = 24, 16, 3
    rows = {row["layer"]: row for row in lc.measure([n], d, batch=1, repeats=1, h=4, k=k)}
    assert rows[lc.ATTENTION]["flops"] == 4 * n**2 * d + 8 * n * d**2
    assert rows[lc.RECURRENT]["flops"] == rows[lc.TORCH_RNN]["flops"] == 4 * n * d**2
    assert rows[lc.CONVOLUTIONAL]["flops"] == 2 * k * n * d**2
    assert all(row["ms"] > 0 and row["n"] == n and row["d"] == d for row in rows.values())


def test_saved_bytes_of_a_tanh_is_its_output():
    x = torch.randn(3, 5, requires_grad=True)
    assert lc.saved_bytes(lambda: torch.tanh(x), exclude=[]) == 3 * 5 * 4  # tanh keeps its output, float32


def test_saved_bytes_counts_a_tensor_saved_twice_once():
    x, y = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True)
    assert lc.saved_bytes(lambda: x * x, exclude=[]) == 4 * 6 * 4
    assert lc.saved_bytes(lambda: x * y, exclude=[]) == 2 * 4 * 6 * 4


def test_saved_bytes_counts_the_whole_storage_of_a_view():
    big, w = torch.randn(10, 10, requires_grad=True), torch.randn(2, 10, requires_grad=True)
    # the product keeps big[:2], a view that keeps all of big alive, and w
    assert lc.saved_bytes(lambda: big[:2] * w, exclude=[]) == (100 + 20) * 4


def test_saved_bytes_leaves_out_the_weights_it_is_told_to():
    linear, x = nn.Linear(8, 5), torch.randn(3, 8, requires_grad=True)
    assert lc.saved_bytes(lambda: linear(x), exclude=list(linear.parameters())) == 3 * 8 * 4  # the input
    # the weight too: the gradient of the input needs it (and only that: with x fixed, it is not saved)
    assert lc.saved_bytes(lambda: linear(x), exclude=[]) == (3 * 8 + 5 * 8) * 4
    assert lc.saved_bytes(lambda: linear(x.detach()), exclude=[]) == 3 * 8 * 4
    with torch.no_grad():
        assert lc.saved_bytes(lambda: linear(x), exclude=[]) == 0  # nothing is kept without autograd


def test_saved_bytes_of_the_layers():
    """The recurrent layer keeps its input, every state and the zero state before the first; the convolution its
    padded input and its output; self-attention its h x n x n weights plus a few n x d tensors."""
    b, n, d, h, k = 2, 12, 8, 2, 3

    def saved(layer, n):
        x = torch.randn(b, n, d)
        return lc.saved_bytes(lambda: layer(x), exclude=list(layer.parameters()))

    assert saved(lc.RecurrentLayer(d), n) == 4 * (b * n * d + b * n * d + b * d)
    assert saved(lc.ConvolutionalLayer(d, k), n) == 4 * (b * (n + k - 1) * d + b * n * d)
    attn = lc.SelfAttentionLayer(d, h)
    weights = lambda n: 4 * b * h * n * n  # noqa: E731
    rest = [saved(attn, n) - weights(n) for n in (n, 2 * n, 4 * n)]
    assert rest[0] > 0 and rest[1] == 2 * rest[0] and rest[2] == 4 * rest[0]  # beyond the weights: linear in n


# ---------------------------------------------------------------------------------------------------------------
# Crossover
# ---------------------------------------------------------------------------------------------------------------

NS = [16, 32, 64, 128, 256, 512, 1024]


def test_crossover_of_two_power_laws_is_exact():
    """n^2 against 100 n: equal at n = 100, between two measured lengths; a power law is a line on a log-log scale."""
    assert lc.crossover(NS, [n**2 for n in NS], [100 * n for n in NS]) == pytest.approx(100)
    assert lc.crossover(NS, [n**2 * 64 for n in NS], [n * 64**2 for n in NS]) == pytest.approx(64)


def test_crossover_takes_the_last_crossing_and_says_none_when_there_is_none():
    assert lc.crossover(NS, [2 * n for n in NS], [n for n in NS]) is None  # above everywhere
    assert lc.crossover(NS, [n for n in NS], [2 * n for n in NS]) is None  # below at the end
    wobbly = [3.0, 1.0, 1.0, 1.0, 1.0, 2.0, 4.0]  # above at first, below, above from 512 on
    assert 256 < lc.crossover(NS, wobbly, [1.5] * len(NS)) < 512


# ---------------------------------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------------------------------


def synthetic_rows():
    rows = []
    for d in (8, 32):
        for n in (4, 8, 16, 64):
            for layer, ms in (("self-attention", n * n * d / 1e3), ("recurrent", n * d * d / 1e3 + 0.01)):
                rows.append({"layer": layer, "n": n, "d": d, "ms": ms, "flops": 4 * n * d * d,
                             "saved_bytes": 4 * n * (n if layer == "self-attention" else d)})
    return rows


def test_time_chart_draws_every_row_and_marks_n_equal_d():
    rows = synthetic_rows()
    spec = time_chart(rows, {8: 8.5, 32: None}).to_dict()
    vlc.vegalite_to_svg(spec)  # valid Vega-Lite
    points = marks(spec, "symbol")
    assert len(points) == len(rows)
    texts = sorted(item["text"] for item in marks(spec, "text"))
    assert texts == ["measured crossing, n ≈ 8", "n = d = 32 (Table 1)", "n = d = 8 (Table 1)"]
    assert len(marks(spec, "rule")) == 3
    assert spec["title"] and all(panel["title"] in ("d = 8", "d = 32") for panel in spec["hconcat"])


def test_memory_chart_plots_megabytes():
    rows = synthetic_rows()
    spec = memory_chart(rows).to_dict()
    assert len(marks(spec, "symbol")) == len(rows)
    frame = complexity_frame(rows)
    assert frame["saved_mb"].tolist() == [r["saved_bytes"] / 1e6 for r in rows]
    assert "backward" in spec["hconcat"][0]["layer"][0]["encoding"]["y"]["title"]


def test_complexity_frame_wants_the_rows_of_measure():
    with pytest.raises(ValueError, match="no rows"):
        complexity_frame([])
    with pytest.raises(ValueError, match="saved_bytes"):
        complexity_frame([{"layer": "x", "n": 1, "d": 1, "ms": 1.0, "flops": 1}])
