"""What a recipe promises: a trained model that misses its target raises
`TargetMissed`.
"""

from __future__ import annotations

import os

import torch


class TargetMissed(RuntimeError):
    """A trained model missed the target its recipe promises; the message names recipe,
    seed, score and a command.
    """


def reproduce_command(task: str, seed: int) -> str:
    """The command that trains one cell of `src.robustness` (task copy, fr or de) as
    this process would.
    """
    env = " ".join(
        f"{k}={os.environ[k]}"
        for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")
        if os.environ.get(k)
    )
    cmd = (
        f"python -m src.robustness --tasks {task} --seeds {seed} --paths native "
        f"--threads {torch.get_num_threads()}"
    )
    return f"{env} {cmd}".strip()
