"""Faults: a killed run resumes bit-identically, a crash or a full disk mid-write leaves the last good file."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from src import train as train_cli
from src.shared import checkpoint
from src.shared.checkpoint import (
    CheckpointWriteError,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from src.transformer import make_model

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# 3 epochs of 20 batches, a state every 3 steps: about 4 s of training on one thread
COPY = ["-m", "src.train", "copy", "--epochs", "3", "--batches", "20", "--batch-size", "40", "--seed", "5",
        "--checkpoint-every", "3", "--device", "cpu", "--no-progress"]


def cli(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *COPY, "--out", str(out), *extra], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)


def mid_epoch(path: Path) -> dict | None:
    """The state at `path` if it is inside an epoch after the first, else None."""
    try:
        state = torch.load(path, weights_only=True)
    except (FileNotFoundError, RuntimeError, EOFError):
        return None
    return state if state["epoch"] >= 1 and state["batch"] > 0 else None


def without_seconds(history: dict) -> dict:
    return {"steps": history["steps"], "epochs": [{k: v for k, v in e.items() if k != "seconds"}
                                                  for e in history["epochs"]]}


def test_a_killed_run_resumes_bit_identical_to_an_uninterrupted_one(tmp_path, capsys):
    (tmp_path / "ref").mkdir()
    (tmp_path / "run").mkdir()
    ref = tmp_path / "ref" / "m.pt"
    r = cli(ref)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "run" / "m.pt"
    state_path = out.with_suffix(".state.pt")
    proc = subprocess.Popen([sys.executable, *COPY, "--out", str(out)], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if mid_epoch(state_path):
                os.kill(proc.pid, signal.SIGSTOP)  # frozen: the state on disk cannot change under us
                if mid_epoch(state_path):
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                os.kill(proc.pid, signal.SIGCONT)  # an epoch-end state was written meanwhile: try again
            time.sleep(0.02)
    finally:
        if proc.poll() is None and proc.returncode is None:
            proc.kill()  # no-op when already killed above
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed mid-epoch"

    # killed: the final checkpoint was never begun, the state is whole, nothing half-written lies around
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.state.pt"]
    state = torch.load(state_path, weights_only=True)
    assert 1 <= state["epoch"] < 3 and state["batch"] > 0  # inside an epoch
    assert len(state["ranks"][0]["history"]["steps"]) == state["train_state"]["step"] < 60

    r = cli(out, "--resume")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.history.json", "m.pt"]  # the state is removed
    a = json.loads(ref.with_suffix(".history.json").read_text())
    b = json.loads(out.with_suffix(".history.json").read_text())
    assert len(b["steps"]) == 60 and len(b["epochs"]) == 3
    assert without_seconds(a) == without_seconds(b)  # every loss and learning rate, bit for bit
    wa, wb = load_checkpoint(ref).model.state_dict(), load_checkpoint(out).model.state_dict()
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    # resuming again: the run is finished, its state gone
    with pytest.raises(SystemExit) as e:
        train_cli.main([*COPY[2:], "--out", str(out), "--resume"])
    assert e.value.code == 2
    assert "no training state" in capsys.readouterr().err


def test_resuming_the_state_of_another_run_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "m.pt"
    state = out.with_suffix(".state.pt")
    config = train_cli.run_config(train_cli.parse([*COPY[2:], "--out", str(out)]))
    save_training_state(state, {"config": config, "world": 1, "epoch": 1, "batch": 2})
    before = state.read_bytes()
    for other in (["--batch-size", "80"], ["--seed", "6"]):
        with pytest.raises(SystemExit) as e:
            train_cli.main([*COPY[2:], *other, "--out", str(out), "--resume"])
        assert e.value.code == 2
        assert "is the state of another run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a copy-task state for the numbers task
        train_cli.main(["numbers", "--out", str(out), "--resume"])
    assert e.value.code == 2
    assert "task was 'copy', now 'numbers'" in capsys.readouterr().err
    state.write_bytes(b"not a state")
    with pytest.raises(SystemExit) as e:
        train_cli.main([*COPY[2:], "--out", str(out), "--resume"])
    assert e.value.code == 2 and "not a readable training state" in capsys.readouterr().err
    state.write_bytes(before)
    assert train_cli.parse([*COPY[2:], "--epochs", "9", "--out", str(out), "--resume"]).resume  # more epochs: fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.state.pt"]


CRASH = textwrap.dedent("""
    import os, sys, torch
    from src.shared.checkpoint import save_checkpoint
    from src.transformer import make_model

    path = sys.argv[1]
    torch.manual_seed(0)
    save_checkpoint(path, make_model(11, 11, N=1, d_model=16, d_ff=32, h=2))  # the last good checkpoint
    real_save = torch.save

    def dies_halfway(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half of the file is on disk
        f.flush()
        os._exit(1)  # the process dies here: no except, no finally

    torch.save = dies_halfway
    save_checkpoint(path, make_model(11, 11, N=2, d_model=32, d_ff=64, h=2))
""")


def test_a_crash_while_writing_leaves_the_last_good_checkpoint_and_no_temp_file(tmp_path):
    path = tmp_path / "m.pt"
    r = subprocess.run([sys.executable, "-c", CRASH, str(path)], cwd=ROOT, env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # the half file had no name
    torch.manual_seed(0)
    good = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2)
    loaded = load_checkpoint(path).model.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in good.state_dict().items())


class FullDisk:
    """A file whose disk fills up after `room` bytes: the write that crosses it writes what fits, then fails."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.f.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name: str):
        return getattr(self.f, name)

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named-temp-file"])
def test_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch, anonymous):
    if anonymous and not checkpoint._USE_TMPFILE:
        pytest.skip("no O_TMPFILE here")
    monkeypatch.setattr(checkpoint, "_USE_TMPFILE", anonymous)
    model = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2)
    path = save_checkpoint(tmp_path / "m.pt", model)
    state = save_training_state(tmp_path / "m.state.pt", {"epoch": 1, "weights": torch.ones(3000)})
    before = {p.name: p.read_bytes() for p in (path, state)}
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **kw: FullDisk(real_fdopen(fd, *a, **kw), room=5000))
    with pytest.raises(CheckpointWriteError) as e:
        save_checkpoint(path, make_model(11, 11, N=2, d_model=32, d_ff=64, h=2))
    assert str(path) in str(e.value) and "No space left on device" in str(e.value) and "ENOSPC" in str(e.value)
    assert isinstance(e.value, OSError)
    with pytest.raises(CheckpointWriteError, match="m.state.pt: No space left on device"):
        save_training_state(state, {"epoch": 2, "weights": torch.zeros(3000)})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # intact, and no temporary file
    assert load_training_state(state)["epoch"] == 1


def limit_file_size(limit: int):
    def apply() -> None:  # in the child: writes past `limit` bytes fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_the_cli_on_a_full_disk_prints_one_error_line(tmp_path):
    out = tmp_path / "m.pt"
    save_checkpoint(out, make_model(11, 11, N=1, d_model=16, d_ff=32, h=2))  # a previous good checkpoint
    out.with_suffix(".state.pt").write_bytes(b"previous state")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    r = subprocess.run([sys.executable, *COPY, "--epochs", "1", "--batches", "2", "--out", str(out)], cwd=ROOT,
                       env=ENV, capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size(200_000))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: cannot write ") and str(out.with_suffix(".state.pt")) in lines[0]
    assert "File too large" in lines[0] and "EFBIG" in lines[0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_an_interrupted_run_with_dropout_resumes_bit_identical(tmp_path):
    """In one process, with dropout on: the random state of the saved step is restored, not just the data's."""
    from src.data.copy_task import copy_batches
    from src.shared.resume import Checkpointing, SeededBatches
    from src.shared.training import TrainingConfig, train

    def run(interrupt_at: int | None, resume: bool) -> tuple[list, dict]:
        torch.manual_seed(3)
        model = make_model(11, 11, N=1, d_model=32, d_ff=64, h=4, dropout=0.3)
        drawn = {"batches": 0}

        def make(generator: torch.Generator):
            for batch in copy_batches(6, 16, generator=generator):
                if interrupt_at is not None and drawn["batches"] == interrupt_at:
                    raise KeyboardInterrupt  # the process dies here, mid-epoch
                drawn["batches"] += 1
                yield batch

        torch.manual_seed(11)  # the stream dropout draws from
        batches = SeededBatches(make, torch.Generator().manual_seed(7))
        ckpt = Checkpointing(tmp_path / "state.pt", every=4, resume=resume, config={"run": "dropout"})
        history = train(model, batches, TrainingConfig(epochs=3, warmup=10), pad=0, callbacks=[ckpt])
        return [(r["step"], r["loss"].hex()) for r in history.steps], model.state_dict()

    steps, weights = run(None, resume=False)
    (tmp_path / "state.pt").unlink()
    with pytest.raises(KeyboardInterrupt):
        run(interrupt_at=10, resume=False)  # epoch 2, batch 5: the last state is that of step 8
    assert load_training_state(tmp_path / "state.pt")["batch"] == 2  # saved mid-epoch
    resumed_steps, resumed_weights = run(None, resume=True)
    assert resumed_steps == steps  # every loss, bit for bit
    assert all(torch.equal(weights[k], resumed_weights[k]) for k in weights)
