"""Resumable training states: what `train` writes as it goes, and how a killed run goes
on from it bit-identically.

A state holds the model, the optimizer, the schedule, `TrainState`, the `History` so
far, every random state and the place inside the epoch. `Checkpointing`, a callback of
`train`, says where and how often to write it; `Checkpointing.restore` reads it back
into a fresh model and optimizer and returns a `Resumed` (where to go on), and
`Checkpointing.save` writes one.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from src import checks
from src.shared.batch import Batch
from src.shared.callbacks import Callback, Run
from src.shared.checkpoint import (
    config_diff,
    load_training_state,
    save_training_state,
)
from src.shared.history import History, TrainState


class ResumeError(ValueError):
    """A training state that cannot be resumed here: another configuration, process
    count or epoch count.
    """


class SeededBatches:
    """Batches drawn afresh each epoch with a `torch.Generator`, whose state `train`
    saves and restores.

    `make(generator)` returns one epoch's batches, e.g. `lambda g: copy_batches(20, 80,
    generator=g)`.
    """

    def __init__(
        self,
        make: Callable[[torch.Generator], Iterable[Batch]],
        generator: torch.Generator,
    ) -> None:
        self.make = make
        self.generator = generator

    def __call__(self) -> Iterable[Batch]:
        return self.make(self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def data_state(batches: Iterable[Batch] | Callable[[], Iterable[Batch]]) -> dict | None:
    """The state of `batches` if it has one (a `SeededBatches`), else None."""
    get = getattr(batches, "state_dict", None)
    return get() if callable(get) else None


def rng_state() -> dict:
    """Every random state training may draw from: torch's (CPU and CUDA), Python's
    `random` and NumPy's.
    """
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if "numpy" in sys.modules:  # only if something imported it
        key, keys, pos, has_gauss, cached = sys.modules["numpy"].random.get_state()
        state["numpy"] = [
            key,
            torch.from_numpy(keys.astype("int64")),
            pos,
            has_gauss,
            cached,
        ]
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        key, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state(
            (key, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
        )


def _gather(part: dict, world: int) -> list[dict]:
    """`part` of every process, in rank order (all processes must call this
    together).
    """
    if world == 1:
        return [part]
    import torch.distributed as dist

    parts: list[dict | None] = [None] * world
    dist.all_gather_object(parts, part)
    return parts


@dataclass
class Resumed:
    """Where `train` starts: epoch `first_epoch`, after its first `skip` batches.

    `totals` (summed loss, tokens) are those of the skipped batches, `rng` the random
    state to restore before going on (None for a fresh run), `state` and `history` the
    counts and rows so far.
    """

    state: TrainState
    history: History
    first_epoch: int = 0
    skip: int = 0
    totals: tuple[float, int] = (0.0, 0)
    rng: dict | None = None


@dataclass
class Checkpointing(Callback):
    """Training-state checkpoints for `train`: where to write them, how often, and
    whether to resume from one. A `Callback`: pass it to `train` as `checkpoint`.

    A run killed and resumed ends bit-identical to one that was not. A state is written
    every `every` optimizer steps (0: none inside an epoch) and at the end of every
    epoch. `config` (plain values) describes the run: resuming from the state of another
    configuration raises ResumeError (a ValueError). Under torchrun only `rank` 0 of
    `world` writes.
    """

    path: str | Path
    every: int = 0
    resume: bool = False
    config: dict = field(default_factory=dict)
    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        checks.non_negative_int("every", self.every)
        self.resumed: Resumed | None = None  # what `on_train_start` read back
        self.epoch_start: dict | None = None  # data state at the start of the epoch

    def on_train_start(self, run: Run) -> None:
        if self.resume:
            r = self.restore(
                run.core, run.optimizer, run.scheduler, run.batches, run.epochs
            )
            run.state, run.history, run.epoch = r.state, r.history, r.first_epoch
            self.resumed = r
        self.epoch_start = data_state(run.batches)

    def on_epoch_start(self, run: Run) -> None:
        r = self.resumed
        if r is not None and run.epoch == r.first_epoch:  # go on inside this epoch
            run.start = (r.skip, *r.totals)
            if r.rng is not None:
                set_rng_state(r.rng)

    def on_update(self, run: Run, done: int, totals: tuple[float, int]) -> None:
        if self.due(run.state.step):  # a state inside the epoch
            self.save(run, batch=done, totals=totals, data=self.epoch_start)

    def on_epoch_end(self, run: Run) -> None:
        self.epoch_start = data_state(run.batches)  # the next epoch draws from here
        self.save(run, data=self.epoch_start)

    def due(self, step: int) -> bool:
        """Whether to write a state after optimizer step `step`, inside an epoch."""
        return bool(self.every) and step % self.every == 0

    def restore(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        batches: Iterable[Batch] | Callable[[], Iterable[Batch]],
        epochs: int,
    ) -> Resumed:
        """Load the state at `path` into `model` (unwrapped from DDP), `optimizer`,
        `scheduler` and `batches`.

        A function in `batches` with `load_state_dict` (`SeededBatches`) gets its saved
        state; another is called again for the epochs already done to get back to where
        it was.
        """
        saved = load_training_state(self.path)
        _check_resumable(saved, self, epochs)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        part = saved["ranks"][self.rank]
        # gradients accumulated over an epoch end
        for name, p in model.named_parameters():
            if name in saved["grads"]:
                p.grad = saved["grads"][name].to(p.device)
        if saved["data"] is not None:
            batches.load_state_dict(saved["data"])
        elif callable(batches):
            for _ in range(saved["epoch"]):  # draw the finished epochs again
                batches()
        return Resumed(
            state=TrainState(**saved["train_state"]),
            history=History(
                steps=part["history"]["steps"], epochs=part["history"]["epochs"]
            ),
            first_epoch=saved["epoch"],
            skip=saved["batch"],
            totals=(part["total_loss"], part["total_tokens"]),
            rng=part["rng"],
        )

    def save(
        self,
        run: Run,
        *,
        batch: int = 0,
        totals: tuple[float, int] = (0.0, 0),
        data: dict | None = None,
    ) -> None:
        """Write the state to go on at batch `batch` of `run.epoch`; every process must
        call this together.

        `totals` (summed loss, tokens) are those of the batches done in the epoch,
        `data` the state of the batch function at the start of that epoch (see
        `data_state`).
        """
        model, history = run.core, run.history
        part = {
            "rng": rng_state(),
            "history": {"steps": history.steps, "epochs": history.epochs},
            "total_loss": totals[0],
            "total_tokens": totals[1],
        }
        parts = _gather(part, self.world)
        if self.rank != 0:
            return
        save_training_state(
            self.path,
            {
                "config": self.config,
                "world": self.world,
                "epoch": run.epoch,
                "batch": batch,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "train_state": dataclasses.asdict(run.state),
                "data": data,
                "grads": {
                    k: p.grad.detach().cpu()
                    for k, p in model.named_parameters()
                    if p.grad is not None
                },
                "ranks": parts,
            },
        )


def _check_resumable(saved: dict, checkpoint: Checkpointing, epochs: int) -> None:
    """Raise ResumeError unless `saved` is a state of this configuration, process count
    and epoch count.
    """
    path = checkpoint.path
    if saved.get("config") != checkpoint.config:
        diff = config_diff(saved.get("config"), checkpoint.config)
        raise ResumeError(f"{path} is the state of another run ({diff})")
    if saved["world"] != checkpoint.world:
        raise ResumeError(
            f"{path} was written by {saved['world']} process(es), this run has "
            f"{checkpoint.world}"
        )
    if saved["epoch"] > epochs:
        raise ResumeError(
            f"{path} is at epoch {saved['epoch']}, past the {epochs} epochs asked for"
        )
