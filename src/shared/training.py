"""One epoch of training or evaluation, and `train`, the loop a chapter calls.

`Batch`, `History` and `TrainState` live in modules of their own; they are imported here
too, so `from src.shared.training import Batch` (the seed notebook's import) keeps
working.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from src import checks
from src.shared.batch import Batch
from src.shared.history import History, TrainState
from src.shared.loss import LabelSmoothing, LossCompute
from src.shared.lr_scheduler import make_optimizer, make_scheduler
from src.shared.resume import Checkpointing, Resumed, data_state


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
    max_grad_norm: float | None = None,
) -> tuple[float, TrainState]:
    """Run one pass over `data_iter`; return the mean loss per target token and the
    updated state.

    mode "train" backpropagates and steps the optimizer every `accum_iter` batches;
    "eval" does not.
    `on_step(state, loss)` and `after_update(batches_done, summed_loss, tokens)` run
    after each step.
    To go on mid-epoch, `start` skips batches already done and `totals` (summed loss,
    tokens) holds theirs.
    `max_grad_norm` clips the gradient's global norm before each update (None: no
    clipping).
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
        # (batch, tgt_len, d_model)
        out = model(batch.src, batch.tgt, batch.src_mask, batch.tgt_mask)
        loss, loss_node = loss_compute(out, batch.tgt_y, batch.ntokens)
        total_loss += loss
        total_tokens += batch.ntokens
        if mode == "train":
            loss_node.backward()
            state.samples += batch.src.size(0)
            state.tokens += batch.ntokens
            if (i + 1) % accum_iter == 0:
                state.lr = optimizer.param_groups[0]["lr"]
                if max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
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


def token_accuracy(model: nn.Module, batches: Iterable[Batch]) -> float:
    """Share of non-padding target tokens that the model, teacher-forced, predicts
    exactly.
    """
    correct, total = 0, 0
    with torch.no_grad():
        for b in batches:
            # (batch, tgt_len)
            pred = model.generator(model(b.src, b.tgt, b.src_mask, b.tgt_mask)).argmax(
                -1
            )
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
    max_grad_norm: float | None = None,
    until: Callable[[nn.Module, History], bool] | None = None,
    progress: bool | None = None,
    checkpoint: Checkpointing | None = None,
) -> History:
    """Train `model` with Adam, the paper's schedule and label smoothing; return the
    loss history.

    `batches` is a list of `Batch`, or a function that returns fresh batches each epoch.
    `fused` trains with PyTorch's fused attention (fast; attention weights are not kept)
    and switches back to the explicit softmax afterwards, so `.attn` is filled again for
    charts.
    `max_grad_norm` clips the gradient norm of every update. `until(model, history)`
    runs after each epoch and may add its own measurements to that epoch's row,
    `history.epochs[-1]`; training stops early when it returns True, so `epochs` is then
    a cap.
    Progress bars show on a terminal and stay quiet elsewhere (`progress=None`).
    `checkpoint` writes training states and resumes from one: see
    `src.shared.resume.Checkpointing`.
    """
    epochs = checks.positive_int("epochs", epochs)
    if not (callable(batches) or isinstance(batches, Iterable)):
        raise TypeError(
            "batches must be a list of Batch or a function returning one, got "
            f"{type(batches).__name__}"
        )
    d_model = model.src_embed.embeddings.d_model
    vocab = model.generator.proj.out_features
    criterion = LabelSmoothing(vocab, padding_idx=pad, smoothing=smoothing)
    loss_compute = LossCompute(model.generator, criterion)
    optimizer = make_optimizer(model)
    scheduler = make_scheduler(optimizer, d_model, factor=factor, warmup=warmup)
    if progress is None:
        progress = sys.stderr.isatty()
    core = getattr(model, "module", model)  # under DDP, the wrapped model
    resumed = Resumed(TrainState(), History())  # a fresh run starts at epoch 0, batch 0
    # a resumed one where its saved state left off
    if checkpoint is not None and checkpoint.resume:
        resumed = checkpoint.restore(core, optimizer, scheduler, batches, epochs)
    history, state = resumed.history, resumed.state
    epoch_bar = range(resumed.first_epoch, epochs)
    if progress:
        epoch_bar = tqdm(
            epoch_bar,
            desc="epochs",
            unit="epoch",
            initial=resumed.first_epoch,
            total=epochs,
        )

    def record(s: TrainState, loss: float) -> None:
        history.steps.append({"step": s.step, "epoch": epoch, "loss": loss, "lr": s.lr})

    def after_update(done: int, total_loss: float, total_tokens: int) -> None:
        # every `checkpoint.every` steps, a state mid-epoch
        if checkpoint is not None and checkpoint.due(state.step):
            checkpoint.save(
                core,
                optimizer,
                scheduler,
                state,
                history,
                epoch=epoch,
                batch=done,
                totals=(total_loss, total_tokens),
                data=epoch_start,
            )

    if hasattr(model, "set_fused_attention"):
        model.set_fused_attention(fused)
    try:
        for epoch in epoch_bar:
            start = time.perf_counter()
            model.train()
            # a resumed epoch draws its batches again from here
            epoch_start = data_state(batches)
            data = batches() if callable(batches) else batches
            # (0, (0.0, 0)) but in the epoch a run resumes in
            skip, totals = resumed.start_of(epoch)
            train_loss, state = run_epoch(
                data,
                model,
                loss_compute,
                optimizer,
                scheduler,
                "train",
                accum_iter,
                state,
                record,
                start=skip,
                totals=totals,
                after_update=after_update,
                max_grad_norm=max_grad_norm,
            )
            row = {"epoch": epoch, "step": state.step, "train_loss": train_loss}
            if eval_batches is not None:
                model.eval()
                with torch.no_grad():
                    row["eval_loss"], _ = run_epoch(
                        eval_batches, model, loss_compute, mode="eval"
                    )
                row["eval_accuracy"] = token_accuracy(model, eval_batches)
            row["seconds"] = time.perf_counter() - start
            history.epochs.append(row)
            done = until is not None and until(core, history)
            if checkpoint is not None:  # a state at the end of every epoch
                checkpoint.save(
                    core,
                    optimizer,
                    scheduler,
                    state,
                    history,
                    epoch=epoch + 1,
                    data=data_state(batches),
                )
            if progress:
                epoch_bar.set_postfix(
                    {
                        k: round(v, 4)
                        for k, v in row.items()
                        if k.endswith(("loss", "accuracy"))
                    }
                )
            if done:
                break
    finally:
        if hasattr(model, "set_fused_attention"):
            model.set_fused_attention(False)
        model.eval()
    return history
