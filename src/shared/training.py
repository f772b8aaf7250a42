"""Batches with their masks, one epoch of training or evaluation, and `train`, the loop a chapter calls."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from src import checks
from src.shared.loss import LabelSmoothing, LossCompute
from src.shared.lr_scheduler import make_optimizer, make_scheduler
from src.transformer.attention import subsequent_mask


class Batch:
    """A batch of source and target ids with their masks, for teacher-forced training.

    src: (batch, src_len); tgt: (batch, tgt_len) including the start symbol.
    The decoder reads `tgt` = tgt[:, :-1] and learns to predict `tgt_y` = tgt[:, 1:].
    """

    def __init__(self, src: torch.Tensor, tgt: torch.Tensor | None = None, pad: int = 0) -> None:
        checks.token_ids("src", src, vocab=torch.iinfo(torch.long).max)
        self.src = src
        self.src_mask = (src != pad).unsqueeze(-2)  # (batch, 1, src_len)
        self.pad = pad
        if tgt is not None:
            checks.token_ids("tgt", tgt, vocab=torch.iinfo(torch.long).max)
            if tgt.size(0) != src.size(0):
                raise ValueError(f"tgt has batch size {tgt.size(0)} but src has {src.size(0)}")
            if tgt.size(1) < 2:
                raise ValueError(f"tgt needs at least 2 positions (start symbol and one token), got {tgt.size(1)}")
            self.tgt = tgt[:, :-1]  # (batch, tgt_len - 1)
            self.tgt_y = tgt[:, 1:]  # (batch, tgt_len - 1)
            self.tgt_mask = self.make_std_mask(self.tgt, pad)
            self.ntokens = int((self.tgt_y != pad).sum())

    @staticmethod
    def make_std_mask(tgt: torch.Tensor, pad: int) -> torch.Tensor:
        """Hide padding and future positions: (batch, tgt_len, tgt_len)."""
        return (tgt != pad).unsqueeze(-2) & subsequent_mask(tgt.size(-1)).to(tgt.device)

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on another device."""
        for name in ("src", "src_mask", "tgt", "tgt_y", "tgt_mask"):
            if hasattr(self, name):
                setattr(self, name, getattr(self, name).to(device))
        return self


@dataclass
class TrainState:
    """Counts that survive across epochs."""

    step: int = 0  # optimizer steps
    accum_step: int = 0  # gradient accumulation steps
    samples: int = 0  # examples seen
    tokens: int = 0  # target tokens seen
    lr: float = 0.0  # learning rate of the last update


def run_epoch(
    data_iter: Iterable[Batch],
    model: nn.Module,
    loss_compute: LossCompute,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    mode: str = "train",
    accum_iter: int = 1,
    train_state: TrainState | None = None,
    on_step: Callable[[TrainState, float], None] | None = None,
    start: int = 0,
    totals: tuple[float, int] = (0.0, 0),
    after_update: Callable[[int, float, int], None] | None = None,
) -> tuple[float, TrainState]:
    """Run one pass over `data_iter`; return the mean loss per target token and the updated state.

    mode "train" backpropagates and steps the optimizer every `accum_iter` batches; "eval" does not.
    To resume an epoch, `start` skips the batches already done and `totals` (summed loss, tokens)
    carries their loss; `after_update(batches_done, total_loss, total_tokens)` runs after each update.
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    if mode == "train" and optimizer is None:
        raise ValueError("optimizer is required when mode='train'")
    accum_iter = checks.positive_int("accum_iter", accum_iter)
    start = checks.non_negative_int("start", start)
    state = train_state if train_state is not None else TrainState()
    total_loss, total_tokens = totals
    for i, batch in itertools.islice(enumerate(data_iter), start, None):
        out = model(batch.src, batch.tgt, batch.src_mask, batch.tgt_mask)  # (batch, tgt_len, d_model)
        loss, loss_node = loss_compute(out, batch.tgt_y, batch.ntokens)
        total_loss += loss
        total_tokens += batch.ntokens
        if mode == "train":
            loss_node.backward()
            state.samples += batch.src.size(0)
            state.tokens += batch.ntokens
            if (i + 1) % accum_iter == 0:
                state.lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                state.step += 1
                state.accum_step += 1
                if scheduler is not None:
                    scheduler.step()
                if on_step is not None:
                    on_step(state, loss / max(batch.ntokens, 1))
                if after_update is not None:
                    after_update(i + 1, total_loss, total_tokens)
    return total_loss / max(total_tokens, 1), state


@dataclass
class History:
    """What `train` measured: one row per optimizer step and one per epoch."""

    steps: list[dict] = field(default_factory=list)  # step, epoch, loss, lr
    epochs: list[dict] = field(default_factory=list)  # epoch, train_loss, eval_loss, eval_accuracy, seconds


class SeededBatches:
    """Batches drawn afresh each epoch with a `torch.Generator`, whose state `train` saves and restores.

    `make(generator)` returns one epoch's batches, e.g. `lambda g: copy_batches(20, 80, generator=g)`.
    """

    def __init__(self, make: Callable[[torch.Generator], Iterable[Batch]], generator: torch.Generator) -> None:
        self.make = make
        self.generator = generator

    def __call__(self) -> Iterable[Batch]:
        return self.make(self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


@dataclass
class Checkpointing:
    """Training-state checkpoints for `train`: where to write them, how often, and whether to resume from one.

    A state holds the model, the optimizer, the schedule, `TrainState`, the `History` so far, every
    random state and the place in the epoch: a run killed and resumed ends bit-identical to one
    that was not. It is written every `every` optimizer steps (0: none inside an epoch) and at the
    end of every epoch. `config` (plain values) describes the run: resuming from the state of
    another configuration raises ResumeError (a ValueError). Under torchrun only `rank` 0 of `world` writes.
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


_ACTIVE: list[Checkpointing] = []


@contextlib.contextmanager
def checkpointing(checkpoint: Checkpointing) -> Iterator[Checkpointing]:
    """Inside the block, `train` calls that get no `checkpoint` of their own use this one (for deeper callers)."""
    _ACTIVE.append(checkpoint)
    try:
        yield checkpoint
    finally:
        _ACTIVE.remove(checkpoint)


def rng_state() -> dict:
    """Every random state training may draw from: torch's (CPU and CUDA), Python's `random` and NumPy's."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if "numpy" in sys.modules:  # only if something imported it
        key, keys, pos, has_gauss, cached = sys.modules["numpy"].random.get_state()
        state["numpy"] = [key, torch.from_numpy(keys.astype("int64")), pos, has_gauss, cached]
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
        np.random.set_state((key, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def _gather(part: dict, world: int) -> list[dict]:
    """`part` of every process, in rank order (all processes must call this together)."""
    if world == 1:
        return [part]
    import torch.distributed as dist

    parts: list[dict | None] = [None] * world
    dist.all_gather_object(parts, part)
    return parts


class ResumeError(ValueError):
    """A training state that cannot be resumed here: another configuration, process count or epoch count."""


def _check_resumable(saved: dict, checkpoint: Checkpointing, epochs: int) -> None:
    path = checkpoint.path
    if saved.get("config") != checkpoint.config:
        old, new = saved.get("config") or {}, checkpoint.config
        diff = [f"{k}: saved {old.get(k)!r}, now {new.get(k)!r}" for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)]
        raise ResumeError(f"{path} is the state of another run ({'; '.join(diff)})")
    if saved["world"] != checkpoint.world:
        raise ResumeError(f"{path} was written by {saved['world']} process(es), this run has {checkpoint.world}")
    if saved["epoch"] > epochs:
        raise ResumeError(f"{path} is at epoch {saved['epoch']}, past the {epochs} epochs asked for")


def token_accuracy(model: nn.Module, batches: Iterable[Batch]) -> float:
    """Share of non-padding target tokens that the model, teacher-forced, predicts exactly."""
    correct, total = 0, 0
    with torch.no_grad():
        for b in batches:
            pred = model.generator(model(b.src, b.tgt, b.src_mask, b.tgt_mask)).argmax(-1)  # (batch, tgt_len)
            keep = b.tgt_y != b.pad
            correct += int((pred == b.tgt_y)[keep].sum())
            total += int(keep.sum())
    return correct / max(total, 1)


def train(
    model: nn.Module,
    batches: Iterable[Batch] | Callable[[], Iterable[Batch]],
    epochs: int,
    *,
    pad: int = 0,
    eval_batches: Iterable[Batch] | None = None,
    smoothing: float = 0.0,
    factor: float = 1.0,
    warmup: int = 400,
    accum_iter: int = 1,
    fused: bool = True,
    progress: bool | None = None,
    checkpoint: Checkpointing | None = None,
) -> History:
    """Train `model` with Adam, the paper's schedule and label smoothing; return the loss history.

    `batches` is a list of `Batch`, or a function that returns fresh batches each epoch.
    `fused` trains with PyTorch's fused attention (fast; attention weights are not kept) and
    switches back to the explicit softmax afterwards, so `.attn` is filled again for charts.
    Progress bars show on a terminal and stay quiet elsewhere (`progress=None`).
    `checkpoint` writes training states and resumes from one (`Checkpointing`); a function in
    `batches` with `state_dict`/`load_state_dict` (`SeededBatches`) has its state saved, another is
    called again for the epochs already done to get back to where it was.
    """
    epochs = checks.positive_int("epochs", epochs)
    if not (callable(batches) or isinstance(batches, Iterable)):
        raise TypeError(f"batches must be a list of Batch or a function returning one, got {type(batches).__name__}")
    d_model = model.src_embed[0].d_model
    vocab = model.generator.proj.out_features
    criterion = LabelSmoothing(vocab, padding_idx=pad, smoothing=smoothing)
    loss_compute = LossCompute(model.generator, criterion)
    optimizer = make_optimizer(model)
    scheduler = make_scheduler(optimizer, d_model, factor=factor, warmup=warmup)
    if progress is None:
        progress = sys.stderr.isatty()
    history, state = History(), TrainState()
    checkpoint = checkpoint if checkpoint is not None else (_ACTIVE[-1] if _ACTIVE else None)
    core = getattr(model, "module", model)  # under DDP, the wrapped model
    first_epoch, skip, totals, rng = 0, 0, (0.0, 0), None
    if checkpoint is not None and checkpoint.resume:
        from src.shared.checkpoint import load_training_state

        saved = load_training_state(checkpoint.path)
        _check_resumable(saved, checkpoint, epochs)
        core.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = TrainState(**saved["train_state"])
        part = saved["ranks"][checkpoint.rank]
        history = History(steps=part["history"]["steps"], epochs=part["history"]["epochs"])
        for name, p in core.named_parameters():  # gradients accumulated over an epoch end
            if name in saved["grads"]:
                p.grad = saved["grads"][name].to(p.device)
        if saved["data"] is not None:
            batches.load_state_dict(saved["data"])
        elif callable(batches):
            for _ in range(saved["epoch"]):  # draw the finished epochs again
                batches()
        first_epoch, skip, rng = saved["epoch"], saved["batch"], part["rng"]
        totals = (part["total_loss"], part["total_tokens"])

    def save_state(next_epoch: int, done: int, sums: tuple[float, int], data_state: dict | None) -> None:
        from src.shared.checkpoint import save_training_state

        part = {"rng": rng_state(), "history": {"steps": history.steps, "epochs": history.epochs},
                "total_loss": sums[0], "total_tokens": sums[1]}
        parts = _gather(part, checkpoint.world)
        if checkpoint.rank != 0:
            return
        save_training_state(checkpoint.path, {
            "config": checkpoint.config, "world": checkpoint.world, "epoch": next_epoch, "batch": done,
            "model": {k: v.detach().cpu() for k, v in core.state_dict().items()},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "train_state": dataclasses.asdict(state), "data": data_state,
            "grads": {k: p.grad.detach().cpu() for k, p in core.named_parameters() if p.grad is not None},
            "ranks": parts,
        })

    def data_state() -> dict | None:
        get = getattr(batches, "state_dict", None)
        return get() if callable(get) else None

    epoch_bar = range(first_epoch, epochs)
    if progress:
        from tqdm.auto import tqdm

        epoch_bar = tqdm(epoch_bar, desc="epochs", unit="epoch", initial=first_epoch, total=epochs)

    def record(s: TrainState, loss: float) -> None:
        history.steps.append({"step": s.step, "epoch": epoch, "loss": loss, "lr": s.lr})

    def after_update(done: int, total_loss: float, total_tokens: int) -> None:
        if checkpoint is not None and checkpoint.every and state.step % checkpoint.every == 0:
            save_state(epoch, done, (total_loss, total_tokens), epoch_start)

    if hasattr(model, "set_fused_attention"):
        model.set_fused_attention(fused)
    try:
        for epoch in epoch_bar:
            start = time.perf_counter()
            model.train()
            epoch_start = data_state()  # a resumed epoch draws its batches again from here
            data = batches() if callable(batches) else batches
            if rng is not None:  # resuming: the random state at the saved step
                set_rng_state(rng)
                rng = None
            train_loss, state = run_epoch(
                data, model, loss_compute, optimizer, scheduler, "train", accum_iter, state, record,
                start=skip, totals=totals, after_update=after_update,
            )
            skip, totals = 0, (0.0, 0)
            row = {"epoch": epoch, "step": state.step, "train_loss": train_loss}
            if eval_batches is not None:
                model.eval()
                with torch.no_grad():
                    row["eval_loss"], _ = run_epoch(eval_batches, model, loss_compute, mode="eval")
                row["eval_accuracy"] = token_accuracy(model, eval_batches)
            row["seconds"] = time.perf_counter() - start
            history.epochs.append(row)
            if checkpoint is not None:
                save_state(epoch + 1, 0, (0.0, 0), data_state())
            if progress:
                epoch_bar.set_postfix({k: round(v, 4) for k, v in row.items() if k.endswith(("loss", "accuracy"))})
    finally:
        if hasattr(model, "set_fused_attention"):
            model.set_fused_attention(False)
        model.eval()
    return history
