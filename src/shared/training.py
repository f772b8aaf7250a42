"""One epoch of training or evaluation, and `train`, the loop a chapter calls.

`Batch`, `History` and `TrainState` live in modules of their own; they are imported here
too, so `from src.shared.training import Batch` (the seed notebook's import) keeps
working.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from src import checks
from src.shared.batch import Batch
from src.shared.callbacks import NO_CALLBACKS, Callback, Callbacks, FusedAttention, Run
from src.shared.history import History, TrainState
from src.shared.loss import LabelSmoothing, LossCompute
from src.shared.lr_scheduler import make_optimizer, make_scheduler

__all__ = ["Batch", "History", "TrainState", "TrainingConfig", "run_epoch", "train"]


@dataclass(frozen=True)
class TrainingConfig:
    """How `train` trains: Adam with the learning rate of equation (3) (section 5.3),
    label smoothing (section 5.4), and for how long.
    """

    epochs: int = 10  # at most; a stopping rule may end training sooner
    factor: float = 1.0  # scales the learning rate of equation (3)
    warmup: int = 400  # steps over which the learning rate rises
    smoothing: float = 0.0  # epsilon_ls of label smoothing
    accum_iter: int = 1  # batches per optimizer step (gradient accumulation)
    fused: bool = True  # attention through PyTorch's scaled_dot_product_attention
    # the recipes' stopping rule (`UntilExact`): end after `patience` epochs in a row
    # at `valid_target` held-out exact match (0: train every epoch)
    patience: int = 0
    valid_target: float = 1.0

    def __post_init__(self) -> None:
        for name in ("epochs", "warmup", "accum_iter"):
            checks.positive_int(name, getattr(self, name))
        checks.positive_float("factor", self.factor)
        checks.probability("smoothing", self.smoothing)
        checks.non_negative_int("patience", self.patience)
        if not 0.0 < self.valid_target <= 1.0:
            raise ValueError(f"valid_target must be in (0, 1], got {self.valid_target}")

    def to_dict(self) -> dict:
        return asdict(self)


def run_epoch(
    data_iter: Iterable[Batch],
    model: nn.Module,
    loss_compute: LossCompute,
    run: Run | None = None,
    accum_iter: int = 1,
    hooks: Callback = NO_CALLBACKS,
) -> float:
    """One pass over `data_iter`: the mean loss per target token. Given the `run` that
    `train` makes, backpropagate, and every `accum_iter` batches update the weights.
    """
    done, total_loss, total_tokens = run.start if run is not None else (0, 0.0, 0)
    for i, batch in itertools.islice(enumerate(data_iter, 1), done, None):
        out = model(batch.src, batch.tgt, batch.src_mask, batch.tgt_mask)
        loss, loss_node = loss_compute(out, batch.tgt_y, batch.ntokens)
        total_loss, total_tokens = total_loss + loss, total_tokens + batch.ntokens
        if run is None:  # only measure
            continue
        loss_node.backward()
        run.state.samples += batch.src.size(0)
        run.state.tokens += batch.ntokens
        if i % accum_iter == 0:
            update(run.optimizer, run.scheduler, run.state)
            run.record_step(loss / max(batch.ntokens, 1))
            hooks.on_update(run, i, (total_loss, total_tokens))
    return total_loss / max(total_tokens, 1)


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
        loss = run_epoch(batches, model, loss_compute)
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
    config: TrainingConfig,
    *,
    pad: int = 0,
    eval_batches: Iterable[Batch] | None = None,
    until: Callable[[nn.Module, History], bool] | None = None,
    callbacks: Sequence[Callback | None] = (),
) -> History:
    """Train `model` on `batches` (a list, or a function returning an epoch's) as
    `config` says. After each epoch `until(model, history)` may stop training.
    """
    d_model, vocab = model.generator.proj.in_features, model.generator.proj.out_features
    criterion = LabelSmoothing(vocab, pad, config.smoothing)
    loss_compute = LossCompute(model.generator, criterion)
    optimizer = make_optimizer(model)
    scheduler = make_scheduler(optimizer, d_model, config.factor, config.warmup)
    run = Run(model, optimizer, scheduler, check_batches(batches), config.epochs)
    hooks = Callbacks([FusedAttention(config.fused), *callbacks])
    hooks.on_train_start(run)
    try:
        while run.epoch < run.epochs:
            start, run.start = time.perf_counter(), (0, 0.0, 0)
            model.train()
            data = batches() if callable(batches) else batches
            hooks.on_epoch_start(run)
            loss = run_epoch(data, model, loss_compute, run, config.accum_iter, hooks)
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
        model.eval()
        hooks.on_train_end(run)
    return run.history


def check_batches(batches: object) -> Iterable[Batch] | Callable[[], Iterable[Batch]]:
    """`batches`, if it is a list of batches or a function returning one."""
    if not (callable(batches) or isinstance(batches, Iterable)):
        raise TypeError(
            "batches must be a list of Batch or a function returning one, got "
            f"{type(batches).__name__}"
        )
    return batches
