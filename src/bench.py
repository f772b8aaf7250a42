"""Benchmarks: training step vs `nn.Transformer`, cached vs uncached decoding, GFLOP/s.

Run with `make bench` (or `python -m src.bench [--quick] [--json]`). Contenders are
measured side by side in one process, interleaved, after a warm-up; figures are medians
over repetitions, and comparisons are reported as ratios, which survive a noisy shared
machine better than seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from src.shared.loss import LabelSmoothing, LossCompute
from src.shared.lr_scheduler import make_optimizer
from src.shared.training import Batch
from src.transformer import beam_search, greedy_decode, make_model
from src.transformer.model import EncoderDecoder
from src.transformer.reference import TorchTransformer

VOCAB = 1000

# (name, d_model, N, d_ff, h, batch, length)
TRAIN_SIZES = [
    ("d512 N2 b80 L10", 512, 2, 2048, 8, 80, 10),
    ("d256 N3 b64 L32", 256, 3, 1024, 4, 64, 32),
    ("base d512 N6 b16 L32", 512, 6, 2048, 8, 16, 32),
]


def book_model(d_model: int, N: int, d_ff: int, h: int) -> EncoderDecoder:
    """The book's model as `train` runs it: dropout 0.1, fused attention, training
    mode.
    """
    book = make_model(VOCAB, VOCAB, N=N, d_model=d_model, d_ff=d_ff, h=h, dropout=0.1)
    book.set_fused_attention(True)
    return book.train()


def make_contenders(d_model: int, N: int, d_ff: int, h: int) -> dict[str, nn.Module]:
    torch_model = TorchTransformer(
        make_model(VOCAB, VOCAB, N=N, d_model=d_model, d_ff=d_ff, h=h, dropout=0.1)
    )
    return {"book": book_model(d_model, N, d_ff, h), "torch": torch_model.train()}


def random_batch(batch: int, length: int) -> Batch:
    data = torch.randint(4, VOCAB, (batch, length + 1))
    data[:, 0] = 1
    return Batch(data[:, 1:], data, pad=0)


def train_step_fn(model: nn.Module, batch: Batch) -> Callable[[], None]:
    """One training step: forward, label-smoothed loss, backward, Adam update."""
    loss_compute = LossCompute(
        model.generator, LabelSmoothing(VOCAB, padding_idx=0, smoothing=0.1)
    )
    optimizer = make_optimizer(model, base_lr=1e-4)

    def step() -> None:
        out = model(batch.src, batch.tgt, batch.src_mask, batch.tgt_mask)
        _, loss = loss_compute(out, batch.tgt_y, batch.ntokens)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
) -> dict[str, float]:
    """Median seconds of each function, timed in turn, round after round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def count_flops(fn: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class OpTimes(TorchDispatchMode):
    """Seconds spent in each group of ATen operations while active: forward, backward
    and optimizer alike.
    """

    MATMULS = {"mm", "addmm", "bmm", "baddbmm"}

    def __init__(self) -> None:
        super().__init__()
        self.seconds = {"matmul": 0.0, "dropout_rng": 0.0, "adam": 0.0, "other": 0.0}

    @classmethod
    def group(cls, name: str) -> str:
        if name in cls.MATMULS:
            return "matmul"
        if name == "bernoulli_":  # the random mask of every dropout
            return "dropout_rng"
        return "adam" if name.startswith(("_fused_adam", "_foreach")) else "other"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        self.seconds[self.group(func.overloadpacket.__name__)] += (
            time.perf_counter() - start
        )
        return out


def step_breakdown(
    fn: Callable[[], None], flops: int, steps: int = 2
) -> dict[str, float]:
    """Where a step's time goes (matrix products, dropout's random numbers, the Adam
    update, everything else, as shares), and the GFLOP/s of the matrix products
    alone."""
    with OpTimes() as times:
        for _ in range(steps):
            fn()
    total = sum(times.seconds.values())
    shares = {f"time_share_{k}": v / total for k, v in times.seconds.items()}
    return {**shares, "matmul_gflops": flops * steps / times.seconds["matmul"] / 1e9}


def matmul_peak(repeats: int = 10) -> float:
    """This machine's fp32 matmul GFLOP/s: the best of `matmul_best` over its sizes."""
    return max(matmul_best(repeats=repeats).values())


def matmul_best(
    sizes: tuple[int, ...] = (256, 512, 1024, 2048), repeats: int = 10
) -> dict[int, float]:
    """The best fp32 GFLOP/s of an n x n matrix product for each n of `sizes`: the
    fastest of `repeats` products, after a warm-up.

    Interference only ever slows a product down, so the fastest of many is the closest
    a measurement comes to what the processor does undisturbed.
    """
    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(2):
            a @ b
        fastest = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            fastest = min(fastest, time.perf_counter() - start)
        rates[n] = 2 * n**3 / fastest / 1e9
    return rates


class DropoutDraws(TorchDispatchMode):
    """Counts the random numbers that dropout's masks draw (`bernoulli_`) while
    active."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ == "bernoulli_":
            self.numbers += args[0].numel()
        return func(*args, **(kwargs or {}))


def dropout_draws(fn: Callable[[], None]) -> int:
    """How many random numbers dropout draws in one call of `fn` (a training step)."""
    with DropoutDraws() as draws:
        fn()
    return draws.numbers


def bench_training(repeats: int, sizes=TRAIN_SIZES) -> list[dict]:
    rows = []
    for name, d_model, N, d_ff, h, batch, length in sizes:
        torch.manual_seed(0)
        data = random_batch(batch, length)
        fns = {
            k: train_step_fn(m, data)
            for k, m in make_contenders(d_model, N, d_ff, h).items()
        }
        flops = count_flops(fns["book"])
        t = interleaved(fns, repeats)
        breakdown = step_breakdown(fns["book"], flops)
        rows.append(
            {
                "size": name,
                "book_ms": 1e3 * t["book"],
                "torch_ms": 1e3 * t["torch"],
                "ratio": t["book"] / t["torch"],
                "gflop_per_step": flops / 1e9,
                "book_gflops": flops / t["book"] / 1e9,
                "tokens_per_s_book": batch * length / t["book"],
                "tokens_per_s_torch": batch * length / t["torch"],
                **breakdown,
            }
        )
    return rows


def bench_threads(repeats: int, size: tuple = TRAIN_SIZES[-1]) -> list[dict]:
    """The book's step at `size` (the base model) against the matmul peak, on one thread
    and on all.

    Dropout's random numbers come from a generator that runs on one core, so on more
    threads the others wait meanwhile; per thread, a step uses the processor better than
    on all together.
    """
    name, d_model, N, d_ff, h, batch, length = size
    all_threads = torch.get_num_threads()
    rows = []
    for threads in sorted({1, all_threads}):
        torch.set_num_threads(threads)
        try:
            torch.manual_seed(0)
            peak = matmul_peak(repeats=repeats)
            step = train_step_fn(
                book_model(d_model, N, d_ff, h), random_batch(batch, length)
            )
            flops = count_flops(step)
            seconds = interleaved({"book": step}, repeats)["book"]
        finally:
            torch.set_num_threads(all_threads)
        rows.append(
            {
                "size": name,
                "threads": threads,
                "matmul_peak_gflops": peak,
                "book_ms": 1e3 * seconds,
                "book_gflops": flops / seconds / 1e9,
                "share_of_peak": flops / seconds / 1e9 / peak,
            }
        )
    return rows


def bench_optimizer(repeats: int, d_model: int = 512, N: int = 6) -> dict:
    """One Adam update of the base model's parameters: PyTorch's fused kernel against
    the `foreach` loop.
    """
    torch.manual_seed(0)
    model = make_model(VOCAB, VOCAB, N=N, d_model=d_model, d_ff=4 * d_model, h=8)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    fns = {
        kind: make_optimizer(model, base_lr=1e-6, fused=kind == "fused").step
        for kind in ("fused", "foreach")
    }
    t = interleaved(fns, repeats)
    params = sum(p.numel() for p in model.parameters())
    return {
        "parameters": params,
        "fused_ms": 1e3 * t["fused"],
        "foreach_ms": 1e3 * t["foreach"],
        "speedup": t["foreach"] / t["fused"],
    }


def bench_decoding(repeats: int, lengths=(32, 128, 256), batch: int = 8) -> list[dict]:
    """Decode a batch of `batch` sources (as translation decodes a test set) with the
    d512 N2 model.

    At batch 1 a cached step is bound by reading the weights from memory, not by
    arithmetic, and the cache's advantage is smaller; the JSON records the batch size.
    """
    torch.manual_seed(0)
    model = make_model(VOCAB, VOCAB, N=2, d_model=512, d_ff=2048, h=8).eval()
    src = torch.randint(4, VOCAB, (batch, 32))
    mask = torch.ones(batch, 1, 32, dtype=torch.bool)
    rows = []
    for n in lengths:
        fns = {
            "cached": lambda n=n: greedy_decode(model, src, mask, n, 1, use_cache=True),
            "uncached": lambda n=n: greedy_decode(
                model, src, mask, n, 1, use_cache=False
            ),
            "beam4": lambda n=n: beam_search(model, src, mask, n, 1, beam_size=4),
        }
        t = interleaved(fns, repeats, warmup=1)
        rows.append(
            {
                "tokens": n,
                "batch": batch,
                "cached_ms": 1e3 * t["cached"],
                "uncached_ms": 1e3 * t["uncached"],
                "speedup": t["uncached"] / t["cached"],
                "beam4_ms": 1e3 * t["beam4"],
                "beam4_over_greedy": t["beam4"] / t["cached"],
                "cached_ms_per_token": 1e3 * t["cached"] / (n - 1),
                "uncached_ms_per_token": 1e3 * t["uncached"] / (n - 1),
            }
        )
    return rows


def run(quick: bool = False) -> dict:
    """All benchmarks; `quick` uses fewer repetitions and skips the base size (for the
    book build).
    """
    repeats = 3 if quick else 7
    sizes = TRAIN_SIZES[:2] if quick else TRAIN_SIZES
    peak = matmul_peak(repeats=repeats)
    training = bench_training(repeats, sizes)
    for row in training:
        row["share_of_peak"] = row["book_gflops"] / peak
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "matmul_peak_gflops": peak,
        "training": training,
        "decoding": bench_decoding(
            2 if quick else 3, (32, 128) if quick else (32, 128, 256)
        ),
        "optimizer": bench_optimizer(repeats),
        "threads_rows": [] if quick else bench_threads(repeats),
    }


def table(rows: list[dict], columns: list[str]) -> str:
    cells = [
        [f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in columns]
        for r in rows
    ]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m src.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions, no base-size model"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of tables"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("_build/bench.json"),
        help="where to write the JSON",
    )
    args = parser.parse_args(argv)
    results = run(args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(args.out)
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f"torch {results['torch']}, {results['threads']} threads, "
        f"fp32 matmul peak {results['matmul_peak_gflops']:.1f} GFLOP/s\n"
    )
    print(
        "Training step (forward, backward, Adam), book model over torch.nn.Transformer:"
    )
    print(
        table(
            results["training"],
            ["size", "book_ms", "torch_ms", "ratio", "book_gflops", "share_of_peak"],
        )
    )
    print(
        "\nWhere the book's step spends its time (each operation timed by OpTimes), "
        "and the GFLOP/s of its matrix products alone:"
    )
    print(
        table(
            results["training"],
            [
                "size",
                "time_share_matmul",
                "time_share_dropout_rng",
                "time_share_adam",
                "time_share_other",
                "matmul_gflops",
            ],
        )
    )
    print(
        "\nGreedy decoding, cached keys/values against recomputing the prefix; beam 4 "
        "against greedy:"
    )
    columns = [
        "tokens",
        "cached_ms",
        "uncached_ms",
        "speedup",
        "beam4_ms",
        "beam4_over_greedy",
    ]
    print(table(results["decoding"], columns))
    if results["threads_rows"]:
        print(
            "\nThe base model's step against the matmul peak measured on the same "
            "number of threads:"
        )
        print(
            table(
                results["threads_rows"],
                [
                    "size",
                    "threads",
                    "matmul_peak_gflops",
                    "book_ms",
                    "book_gflops",
                    "share_of_peak",
                ],
            )
        )
    print("\nAdam update of the base model's parameters, fused kernel against foreach:")
    print(
        table(
            [results["optimizer"]], ["parameters", "fused_ms", "foreach_ms", "speedup"]
        )
    )
    print(f"\nJSON written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
