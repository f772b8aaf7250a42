"""Self-attention, recurrent and convolutional layers compared, as in section 4 and
Table 1 of the paper: what each costs per layer, how many of its operations must run
one after another, and how many layers or steps separate two distant positions.

The three layers map a sequence of n vectors of width d, (batch, n, d), to another of
the same shape. Table 1's formulas are in `TABLE_1` and `table_1`; `measure` times one
forward pass of each layer and counts its floating-point operations and the bytes of
activations it keeps for the backward pass; `path_length` and `recurrent_path_length`
find, from gradients, how many layers or steps connect the first and last positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from src.bench import count_flops, interleaved
from src.transformer.attention import MultiHeadedAttention

# ---------------------------------------------------------------------------------
# The three layers
# ---------------------------------------------------------------------------------


class SelfAttentionLayer(nn.Module):
    """Multi-head self-attention, the book's `MultiHeadedAttention` with queries, keys
    and values all taken from the input x.

    With `r`, attention is *restricted*: position i attends only to the r positions
    i - r // 2, ..., i + r // 2 around it (r odd), by masking the others. The mask
    gives restricted attention's path length but not its cost: all n^2 scores are
    still computed.
    """

    def __init__(self, d: int, h: int = 4, r: int | None = None) -> None:
        super().__init__()
        if r is not None and (r < 1 or r % 2 == 0):
            raise ValueError(f"the neighbourhood r must be odd and positive, got {r}")
        self.attn = MultiHeadedAttention(h, d, dropout=0.0)
        self.r = r

    def neighbourhood_mask(self, n: int) -> torch.Tensor | None:
        """(1, n, n), True where |i - j| <= r // 2; None when unrestricted."""
        if self.r is None:
            return None
        i = torch.arange(n)
        return ((i[:, None] - i[None, :]).abs() <= self.r // 2).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, n, d) -> (batch, n, d): every position mixes all (or r) others."""
        return self.attn(x, x, x, mask=self.neighbourhood_mask(x.size(1)))


class RecurrentLayer(nn.Module):
    """An Elman recurrent layer, h_t = tanh(x_t W_x + h_(t-1) W_h + b), written as the
    loop it is: n steps, each of which needs the state the step before computed.

    The input projection x W_x is one product for all positions at once; only the
    recurrence is sequential. Its weights have the layout of `nn.RNN` (`as_torch_rnn`).
    """

    def __init__(self, d: int) -> None:
        super().__init__()
        self.input = nn.Linear(d, d)  # W_x and b
        self.hidden = nn.Linear(d, d, bias=False)  # W_h

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step: the projected input x_t (batch, d), the state h (batch, d)."""
        return torch.tanh(x_t + self.hidden(h))  # (batch, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, n, d) -> the states h_0 ... h_(n-1), (batch, n, d)."""
        projected = self.input(x)  # (batch, n, d), all positions in parallel
        h = x.new_zeros(x.size(0), x.size(2))  # (batch, d), the state before h_0
        states = []
        for t in range(x.size(1)):  # n sequential operations
            h = self.step(projected[:, t], h)
            states.append(h)
        return torch.stack(states, dim=1)  # (batch, n, d)

    def as_torch_rnn(self) -> nn.RNN:
        """The same layer as PyTorch's `nn.RNN`, whose loop runs in C++, not Python."""
        d = self.input.in_features
        rnn = nn.RNN(d, d, batch_first=True)
        with torch.no_grad():
            rnn.weight_ih_l0.copy_(self.input.weight)
            rnn.bias_ih_l0.copy_(self.input.bias)
            rnn.weight_hh_l0.copy_(self.hidden.weight)
            rnn.bias_hh_l0.zero_()
        return rnn


class TorchRecurrentLayer(nn.Module):
    """`RecurrentLayer` computed by PyTorch's `nn.RNN`: x (batch, n, d) -> states."""

    def __init__(self, layer: RecurrentLayer) -> None:
        super().__init__()
        self.rnn = layer.as_torch_rnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, n, d) -> the states h_0 ... h_(n-1), (batch, n, d)."""
        return self.rnn(x)[0]  # the states; [1] is the last one alone


class ConvolutionalLayer(nn.Module):
    """A 1-d convolution over positions with kernel width k, then tanh (the recurrent
    layer's nonlinearity). It is one-sided, as a decoder's must be: output position i
    sees the inputs i - (k - 1) * dilation, ..., i - dilation, i.
    """

    def __init__(self, d: int, k: int = 3, dilation: int = 1) -> None:
        super().__init__()
        if k < 2:
            raise ValueError(f"the kernel width k must be at least 2, got {k}")
        self.pad = (k - 1) * dilation  # zeros before position 0: the output keeps n
        self.conv = nn.Conv1d(d, d, k, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, n, d) -> (batch, n, d)."""
        x = F.pad(x.transpose(1, 2), (self.pad, 0))  # (batch, d, pad + n) for Conv1d
        return torch.tanh(self.conv(x)).transpose(1, 2)  # (batch, n, d)


def convolution_stack(d: int, k: int, layers: int, dilated: bool) -> nn.Sequential:
    """`layers` convolutions of width k. Dilated, layer l sees every k^l-th position
    (dilation k^l), so what an output sees grows k-fold with each layer, not by k - 1.
    """
    return nn.Sequential(
        *(ConvolutionalLayer(d, k, k**l if dilated else 1) for l in range(layers))
    )


# ---------------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerCosts:
    """One row of Table 1: the three measures as written in the paper and as functions
    of the sequence length n, the width d, the kernel width k and the neighbourhood r.
    """

    layer: str
    complexity: str
    sequential: str
    path: str
    complexity_of: Callable[[int, int, int, int], float]
    sequential_of: Callable[[int, int, int, int], float]
    path_of: Callable[[int, int, int, int], float]


# fmt: off

TABLE_1 = [  # (n, d, k, r): sequence length, width, kernel width, neighbourhood
    LayerCosts(
        "Self-Attention", "O(n^2 · d)", "O(1)", "O(1)",
        lambda n, d, k, r: n**2 * d, lambda n, d, k, r: 1, lambda n, d, k, r: 1,
    ),
    LayerCosts(
        "Recurrent", "O(n · d^2)", "O(n)", "O(n)",
        lambda n, d, k, r: n * d**2, lambda n, d, k, r: n, lambda n, d, k, r: n,
    ),
    LayerCosts(
        "Convolutional", "O(k · n · d^2)", "O(1)", "O(log_k(n))",
        lambda n, d, k, r: k * n * d**2, lambda n, d, k, r: 1,
        lambda n, d, k, r: math.log(n, k),
    ),
    LayerCosts(
        "Self-Attention (restricted)", "O(r · n · d)", "O(1)", "O(n/r)",
        lambda n, d, k, r: r * n * d, lambda n, d, k, r: 1, lambda n, d, k, r: n / r,
    ),
]
# fmt: on


def table_1(n: int, d: int, k: int, r: int) -> list[dict[str, object]]:
    """Table 1 with its O-terms evaluated (constants dropped, as the O drops them)."""
    return [
        {
            "layer": row.layer,
            "complexity per layer": row.complexity,
            "sequential operations": row.sequential,
            "maximum path length": row.path,
            "complexity": row.complexity_of(n, d, k, r),
            "sequential": row.sequential_of(n, d, k, r),
            "path": row.path_of(n, d, k, r),
        }
        for row in TABLE_1
    ]


def convolutions_to_connect(n: int, k: int, dilated: bool = False) -> int:
    """How many stacked `ConvolutionalLayer`s of width k connect input position 0 to
    output position n - 1: n/k contiguous ones, log_k(n) dilated ones (section 4),
    rounded up; exactly, for these layers, not only up to a constant factor.
    """
    layers, seen = 0, 1  # the input positions that one output position sees
    while seen < n:
        seen += (k - 1) * (k**layers if dilated else 1)
        layers += 1
    return layers


def restricted_attentions_to_connect(n: int, r: int) -> int:
    """How many stacked `SelfAttentionLayer`s restricted to r positions (r // 2 each
    side) connect positions 0 and n - 1, both ways: n/r of them, up to a factor 2.
    """
    return math.ceil((n - 1) / (r // 2))


# ---------------------------------------------------------------------------------
# Path length, from gradients
# ---------------------------------------------------------------------------------


def depends(layer: nn.Module, n: int, d: int, output: int, on: int) -> bool:
    """Whether position `output` of layer(x) changes with position `on` of x: the
    gradient of the one through the other is not exactly zero.
    """
    x = torch.randn(1, n, d, requires_grad=True)
    layer(x)[0, output].sum().backward()
    return bool(x.grad[0, on].abs().sum() > 0)


def path_length(make_stack: Callable[[int], nn.Module], n: int, d: int) -> int:
    """The fewest stacked layers, `make_stack(layers)`, after which output position
    n - 1 depends on input position 0: the longest path between two positions (the
    one-sided layers connect them no other way round).
    """
    torch.manual_seed(0)
    for layers in range(1, n):
        if depends(make_stack(layers), n, d, output=n - 1, on=0):
            return layers
    raise ValueError(f"{n - 1} layers do not connect {n} positions")


def recurrent_path_length(layer: RecurrentLayer, n: int) -> int:
    """How many steps of the recurrence lie on the path from input position 0 to
    output position n - 1: the states h_t that depend on x_0 and that h_(n-1) depends
    on, found from gradients. (Output 0 never depends on a later input: the layer
    reads left to right.)
    """
    d = layer.input.in_features
    x = torch.randn(1, n, d, requires_grad=True)
    projected = layer.input(x)  # (1, n, d)
    h, states = x.new_zeros(1, d), []
    for t in range(n):
        h = layer.step(projected[:, t], h)  # (1, d)
        states.append(h)
    last = torch.autograd.grad(states[-1].sum(), states, retain_graph=True)
    on_path = 0
    for t, state in enumerate(states):
        (from_first,) = torch.autograd.grad(state.sum(), x, retain_graph=True)
        on_path += bool(from_first[0, 0].abs().sum() > 0 and last[t].abs().sum() > 0)
    return on_path


# ---------------------------------------------------------------------------------
# Time, arithmetic and memory of one forward pass
# ---------------------------------------------------------------------------------


def saved_bytes(fn: Callable[[], object], exclude: list[torch.Tensor]) -> int:
    """Bytes of the tensors that autograd saves for the backward pass while `fn` runs,
    each storage counted once (a tensor saved twice, or two views of one tensor, keep
    one block of memory alive), the storages of `exclude` (the weights) not at all.

    Every tensor that the forward pass keeps for the backward pass goes through the
    pack hook of `saved_tensors_hooks`; this is the memory that training holds from
    the forward pass until the backward pass frees it.
    """
    skip = {p.untyped_storage().data_ptr() for p in exclude}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(storages.values())


# The names of the layers that `measure` compares
ATTENTION = "self-attention"
RECURRENT = "recurrent (Python loop)"
TORCH_RNN = "recurrent (nn.RNN)"
CONVOLUTIONAL = "convolutional"


def make_layers(d: int, h: int = 4, k: int = 3) -> dict[str, nn.Module]:
    """The contenders of `measure`, in evaluation mode: self-attention with h heads,
    the recurrent layer in Python and in PyTorch's kernel, a convolution of width k.
    """
    recurrent = RecurrentLayer(d)
    return {
        ATTENTION: SelfAttentionLayer(d, h).eval(),
        RECURRENT: recurrent.eval(),
        TORCH_RNN: TorchRecurrentLayer(recurrent).eval(),
        CONVOLUTIONAL: ConvolutionalLayer(d, k).eval(),
    }


def measure(
    ns: list[int], d: int, batch: int = 1, repeats: int = 3, h: int = 4, k: int = 3
) -> list[dict[str, object]]:
    """For each sequence length n, one row per layer of `make_layers(d, h, k)`: the
    median milliseconds of one forward pass, timed interleaved with the others
    (`src.bench.interleaved`) and without autograd; its floating-point operations
    (`src.bench.count_flops`); and the bytes of activations it saves for the backward
    pass (`saved_bytes`).
    """
    torch.manual_seed(0)
    layers = make_layers(d, h, k)
    rows = []
    for n in ns:
        x = torch.randn(batch, n, d)  # (batch, n, d)
        fns = {name: partial(layer, x) for name, layer in layers.items()}
        with torch.no_grad():
            seconds = interleaved(fns, repeats, warmup=1)
            flops = {name: count_flops(fn) for name, fn in fns.items()}
        for name, layer in layers.items():
            weights = list(layer.parameters())
            rows.append(
                {
                    "layer": name,
                    "n": n,
                    "d": d,
                    "batch": batch,
                    "ms": 1e3 * seconds[name],
                    "flops": flops[name],
                    "saved_bytes": saved_bytes(fns[name], exclude=weights),
                }
            )
    return rows


def crossover(ns: list[int], a: list[float], b: list[float]) -> float | None:
    """The n from which curve a stays above curve b: between the last measured n where
    a is below b and the next, interpolated linearly in log n and log(a / b). None if
    a is above b at every n, or below it at the last.
    """
    gap = [math.log(x / y) for x, y in zip(a, b)]  # > 0 where a is above b
    if gap[-1] < 0 or all(g >= 0 for g in gap):
        return None
    i = max(i for i, g in enumerate(gap) if g < 0)  # the last n where a is below
    share = -gap[i] / (gap[i + 1] - gap[i])  # of the way from ns[i] to ns[i + 1]
    return math.exp(math.log(ns[i]) + share * (math.log(ns[i + 1]) - math.log(ns[i])))
