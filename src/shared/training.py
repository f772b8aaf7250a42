"""One epoch of training or evaluation, and `train`, the loop a chapter calls.

`Batch`, `History` and `TrainState` live in modules of their own; they are imported here
too, so `from src.shared.training import Batch` (the seed notebook's import) keeps
working.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from src import checks
from src.shared.batch import Batch
from src.shared.callbacks import Callback, Callbacks, ProgressBar, Run
from src.shared.history import History, TrainState
from src.shared.loss import LabelSmoothing, LossCompute
from src.shared.lr_scheduler import make_optimizer, make_scheduler
from src.shared.resume import Checkpointing


def run_epoch(
    data_iter: Iterable[Batch],
    model: nn.Module,
    loss_compute: LossCompute,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    mode: str = "train",
    accum_iter: int = 1,
    train_state: TrainState | None = None,
    on_update: Callable[[int, float, tuple[float, int]], None] | None = None,
    start: tuple[int, float, int] = (0, 0.0, 0),
) -> tuple[float, TrainState]:
    """One pass over `data_iter`: the mean loss per target token, and the counts.

    "train" backpropagates and updates the weights every `accum_iter` batches; "eval"
    does not. After each update `on_update(batches_done, loss, (summed_loss, tokens))`
    runs. `start` (batches done, their summed loss and tokens) goes on inside an epoch.
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    if mode == "train" and optimizer is None:
        raise ValueError("optimizer is required when mode='train'")
    state = train_state if train_state is not None else TrainState()
    done, total_loss, total_tokens = start
    for i, batch in itertools.islice(enumerate(data_iter, 1), done, None):
        out = model(batch.src, batch.tgt, batch.src_mask, batch.tgt_mask)
        loss, loss_node = loss_compute(out, batch.tgt_y, batch.ntokens)
        total_loss, total_tokens = total_loss + loss, total_tokens + batch.ntokens
        if mode == "train":
            loss_node.backward()
            state.samples += batch.src.size(0)
            state.tokens += batch.ntokens
            if i % accum_iter == 0:
                update(optimizer, scheduler, state)
                if on_update is not None:
                    per_token = loss / max(batch.ntokens, 1)
                    on_update(i, per_token, (total_loss, total_tokens))
    return total_loss / max(total_tokens, 1), state


def update(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    state: TrainState,
) -> None:
    """One step of the optimizer with the schedule's rate, then the next step's rate."""
    state.lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    state.step += 1
    state.accum_step += 1
    if scheduler is not None:
        scheduler.step()


def evaluate(
    model: nn.Module, batches: Iterable[Batch], loss_compute: LossCompute
) -> dict[str, float]:
    """Loss per target token and token accuracy on `batches`, teacher-forced."""
    model.eval()
    with torch.no_grad():
        loss, _ = run_epoch(batches, model, loss_compute, mode="eval")
    return {"eval_loss": loss, "eval_accuracy": token_accuracy(model, batches)}


def token_accuracy(model: nn.Module, batches: Iterable[Batch]) -> float:
    """Share of non-padding target tokens that the model, teacher-forced, predicts."""
    correct, total = 0, 0
    with torch.no_grad():
        for b in batches:
            out = model(b.src, b.tgt, b.src_mask, b.tgt_mask)
            pred = model.generator(out).argmax(-1)  # (batch, tgt_len)
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
    until: Callable[[nn.Module, History], bool] | None = None,
    progress: bool | None = None,
    checkpoint: Checkpointing | None = None,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train with Adam, the paper's learning rate schedule and label smoothing.

    `batches`: a list of `Batch`, or a function returning an epoch's batches. `until(
    model, history)` may stop training after an epoch (`epochs` is then a cap). `fused`
    trains with PyTorch's fused attention (`.attn` is kept again afterwards). A progress
    bar (on a terminal, with `progress=None`), `checkpoint` and `callbacks` are hooks.
    """
    d_model = model.src_embed.embeddings.d_model
    vocab = model.generator.proj.out_features
    loss_compute = LossCompute(model.generator, LabelSmoothing(vocab, pad, smoothing))
    optimizer = make_optimizer(model)
    scheduler = make_scheduler(optimizer, d_model, factor=factor, warmup=warmup)
    run = Run(model, optimizer, scheduler, batches, check_epochs(epochs, batches))
    bar = sys.stderr.isatty() if progress is None else progress
    hooks = Callbacks([checkpoint, ProgressBar() if bar else None, *callbacks])

    def record(done: int, loss: float, totals: tuple[float, int]) -> None:
        s = run.state
        step = {"step": s.step, "epoch": run.epoch, "loss": loss, "lr": s.lr}
        run.history.steps.append(step)
        hooks.on_update(run, done, totals)

    model.set_fused_attention(fused)
    hooks.on_train_start(run)
    try:
        while run.epoch < run.epochs:
            start, run.start = time.perf_counter(), (0, 0.0, 0)
            model.train()
            data = batches() if callable(batches) else batches
            hooks.on_epoch_start(run)
            loss, _ = run_epoch(
                data, model, loss_compute, optimizer, scheduler, "train", accum_iter,
                run.state, on_update=record, start=run.start,
            )  # fmt: skip
            row = {"epoch": run.epoch, "step": run.state.step, "train_loss": loss}
            if eval_batches is not None:
                row |= evaluate(model, eval_batches, loss_compute)
            run.history.epochs.append({**row, "seconds": time.perf_counter() - start})
            stop = until is not None and until(run.core, run.history)
            run.epoch += 1
            hooks.on_epoch_end(run)
            if stop:
                break
    finally:
        model.set_fused_attention(False)
        model.eval()
        hooks.on_train_end(run)
    return run.history


def check_epochs(epochs: int, batches: object) -> int:
    """`epochs` if it is a positive int and `batches` a list or function, else raise."""
    if not (callable(batches) or isinstance(batches, Iterable)):
        raise TypeError(
            "batches must be a list of Batch or a function returning one, got "
            f"{type(batches).__name__}"
        )
    return checks.positive_int("epochs", epochs)
