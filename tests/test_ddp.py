"""Data-parallel training: two processes under `torchrun` follow the single-process loss, step by step."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.shared.distributed import shard
from src.shared.training import Batch

ROOT = Path(__file__).resolve().parents[1]


def test_shards_split_rows_and_keep_the_whole_batch_normalisation():
    src = torch.tensor([[3, 4, 2, 0], [5, 2, 0, 0], [6, 7, 8, 2], [9, 2, 0, 0], [3, 3, 2, 0]])
    tgt = torch.tensor([[1, 3, 4, 2], [1, 5, 2, 0], [1, 6, 7, 2], [1, 9, 2, 0], [1, 3, 2, 0]])
    whole = Batch(src, tgt, pad=0)
    parts = [shard(whole, r, 2) for r in range(2)]
    assert [p.src.size(0) for p in parts] == [3, 2]
    assert torch.equal(torch.cat([parts[0].src, parts[1].src])[[0, 3, 1, 4, 2]], src)
    assert torch.equal(parts[1].tgt_y, whole.tgt_y[1::2]) and torch.equal(parts[0].tgt, whole.tgt[0::2])
    assert all(p.ntokens == whole.ntokens / 2 for p in parts)
    with pytest.raises(ValueError, match="cannot be split"):
        shard(Batch(src[:1], tgt[:1]), 0, 2)


def train(tmp_path: Path, name: str, launcher: list[str]) -> dict:
    out = tmp_path / f"{name}.pt"
    args = ["-m", "src.train", "copy", "--epochs", "2", "--batches", "6", "--seed", "3", "--device", "cpu",
            "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([*launcher, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(out.with_suffix(".history.json").read_text())


@pytest.mark.slow
def test_two_process_torchrun_matches_single_process(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun, "torchrun is installed with torch"
    single = train(tmp_path, "single", [sys.executable])
    ddp = train(tmp_path, "ddp", [torchrun, "--standalone", "--nproc-per-node", "2"])
    assert single["world"] == 1 and ddp["world"] == 2
    assert len(ddp["steps"]) == len(single["steps"]) == 12
    for a, b in zip(single["steps"], ddp["steps"], strict=True):
        assert a["lr"] == b["lr"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)  # rounding grows a little step by step
    for a, b in zip(single["epochs"], ddp["epochs"], strict=True):
        assert b["eval_loss"] == pytest.approx(a["eval_loss"], rel=1e-3)
    # the loss went down (by 17% in 12 warm-up steps of the copy recipe): both models learned something
    assert single["steps"][-1]["loss"] < 0.9 * single["steps"][0]["loss"]
