"""The learning-rate schedule of the paper, equation (3): linear warm-up, then inverse
square root decay.
"""

from __future__ import annotations

import torch

from src import checks


def rate(step: int, model_size: int, factor: float, warmup: int) -> float:
    """lrate = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5).

    Step 0 is valid: it is counted as step 1, so a `LambdaLR` (which calls this with 0
    first) never raises a zero division and never starts at a learning rate of zero.
    """
    step = checks.non_negative_int("step", step)
    model_size = checks.positive_int("model_size", model_size)
    warmup = checks.positive_int("warmup", warmup)
    factor = checks.positive_float("factor", factor)
    step = max(step, 1)
    return factor * model_size**-0.5 * min(step**-0.5, step * warmup**-1.5)


def make_optimizer(
    model: torch.nn.Module, base_lr: float = 1.0, fused: bool = True
) -> torch.optim.Adam:
    """Adam with the paper's beta_1 = 0.9, beta_2 = 0.98, epsilon = 1e-9 (section 5.3).

    `fused`: one kernel per parameter; False gives PyTorch's `foreach` implementation of
    the same update.
    """
    return torch.optim.Adam(
        model.parameters(),
        lr=base_lr,
        betas=(0.9, 0.98),
        eps=1e-9,
        fused=fused,
        foreach=not fused,
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    model_size: int,
    factor: float = 1.0,
    warmup: int = 4000,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` whose multiplier is `rate(step, ...)`: set the optimizer's base lr
    to 1.

    `LambdaLR` counts the steps it has taken, from 0; the k-th update (k = 1, 2, ...) is
    taken after k - 1 of them, so it is given `rate(k)`, equation (3) with the paper's
    numbering.
    """
    # check the arguments now, not at the first step
    rate(1, model_size, factor, warmup)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda done: rate(done + 1, model_size, factor, warmup)
    )
