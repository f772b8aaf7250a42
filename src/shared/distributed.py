"""Data-parallel training with `torch.distributed`: one process per device, each on a
slice of every batch.

Under `torchrun --nproc-per-node P`, each process reads RANK, WORLD_SIZE and LOCAL_RANK
from its environment, joins a process group (gloo on CPU, nccl on GPU) and wraps the
model in `DistributedDataParallel`, which averages gradients across processes during
`backward()`.

Every process builds the same batches from the same seed and keeps rows `rank::world` of
each.
Each slice's loss is normalised by the token count of the *whole* batch divided by
`world`, so the averaged gradient is exactly the single-process gradient of the whole
batch: the two trainings follow the same path, up to floating-point summation order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from src.shared.batch import Batch
from src.shared.history import History


@dataclass
class DistContext:
    """Where this process stands: its rank among `world` processes and the device it
    trains on.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' -> the process's GPU when there is one, else the CPU; 'cpu' and 'cuda' as
    asked.
    """
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no GPU is available")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init(device: str = "auto") -> DistContext:
    """Join the process group when started by `torchrun` (WORLD_SIZE > 1); otherwise a
    single process.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank, dev)


def cleanup(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


class DDP(DistributedDataParallel):
    """DistributedDataParallel that forwards unknown attributes (`generator`,
    `src_embed`, ...) to the model.

    `train` reads them from the model it is given; `forward` still goes through DDP, so
    gradients are averaged. Buffers (the positional-encoding table) never change: synced
    once, not at every forward.
    """

    def __init__(self, module: torch.nn.Module, ctx: DistContext) -> None:
        ids = [ctx.device] if ctx.device.type == "cuda" else None
        super().__init__(module, device_ids=ids, forward_sync_buffers=False)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """The model on its device, wrapped in `DDP` when there are several processes."""
    model = model.to(ctx.device)
    return DDP(model, ctx) if ctx.distributed else model


def shard(batch: Batch, rank: int, world: int) -> Batch:
    """Rows `rank::world` of `batch`, with `ntokens` set so the averaged gradient equals
    the whole batch's.
    """
    if batch.src.size(0) < world:
        raise ValueError(
            f"a batch of {batch.src.size(0)} rows cannot be split across {world} "
            "processes"
        )
    # the full target again: (batch, tgt_len)
    tgt = torch.cat([batch.tgt[:, :1], batch.tgt_y], dim=1)
    part = Batch(batch.src[rank::world], tgt[rank::world], pad=batch.pad)
    part.ntokens = batch.ntokens / world
    return part


class Sharded:
    """A function returning this process's slices of each epoch's batches, on its
    device.

    Batches too small to give every process a row are dropped (the last batch of a
    bucketed epoch can be).
    When the batches come from a function with `state_dict`/`load_state_dict` (a
    `SeededBatches`), so does this one, so that `train` can save and restore where the
    data stands.
    """

    def __init__(
        self, batches: Iterable[Batch] | Callable[[], Iterable[Batch]], ctx: DistContext
    ) -> None:
        self.batches = batches
        self.ctx = ctx
        if callable(getattr(batches, "state_dict", None)):
            self.state_dict = batches.state_dict
            self.load_state_dict = batches.load_state_dict

    def __call__(self) -> list[Batch]:
        ctx = self.ctx
        data = self.batches() if callable(self.batches) else self.batches
        if not ctx.distributed:
            return [b.to(ctx.device) for b in data]
        return [
            shard(b, ctx.rank, ctx.world).to(ctx.device)
            for b in data
            if b.src.size(0) >= ctx.world
        ]


def sharded(
    batches: Iterable[Batch] | Callable[[], Iterable[Batch]], ctx: DistContext
) -> Sharded:
    """This process's slices of each epoch's batches, on its device: see `Sharded`."""
    return Sharded(batches, ctx)


def average_history(history: History, ctx: DistContext) -> History:
    """The losses of all processes, averaged step by step: the loss of the whole
    batches.
    """
    if not ctx.distributed:
        return history
    gathered: list[History | None] = [None] * ctx.world
    dist.all_gather_object(gathered, history)
    out = History(
        steps=[dict(s) for s in history.steps], epochs=[dict(e) for e in history.epochs]
    )
    for i, row in enumerate(out.steps):
        row["loss"] = sum(h.steps[i]["loss"] for h in gathered) / ctx.world
    for i, row in enumerate(out.epochs):
        row["train_loss"] = sum(h.epochs[i]["train_loss"] for h in gathered) / ctx.world
    return out
