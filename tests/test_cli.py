"""Command-line entry points: bad options exit with status 2 and write nothing; good ones write a checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src import evaluate
from src import train as train_cli

ROOT = Path(__file__).resolve().parents[1]

BAD_TRAIN = [
    [],
    ["translate"],
    ["copy", "--epochs", "0"],
    ["copy", "--epochs", "three"],
    ["copy", "--batch-size", "-4"],
    ["copy", "--seed", "-1"],
    ["copy", "--device", "tpu"],
    ["numbers", "--lang", "it"],
    ["numbers", "--dropout", "1.5"],
    ["numbers", "--smoothing", "-0.1"],
    ["numbers", "--factor", "0"],
    ["numbers", "--d-model", "130", "--heads", "4"],
    ["numbers", "--n-train", "2000000"],
    ["numbers", "--tokenizer", "sentencepiece"],
    ["files", "--src", "en", "--tgt", "de"],
    ["files", "--data-dir", "{tmp}/nowhere", "--src", "en", "--tgt", "de"],
]


def no_files_written(tmp_path: Path, before: set[str]) -> bool:
    return {p.name for p in tmp_path.rglob("*")} == before


@pytest.mark.parametrize("argv", BAD_TRAIN, ids=lambda a: " ".join(a) or "no-task")
def test_bad_train_options_exit_2_and_write_nothing(argv, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv and argv[0] in ("copy", "numbers", "files"):
        argv += ["--out", str(tmp_path / "out" / "m.pt")]
    before = {p.name for p in tmp_path.rglob("*")}
    with pytest.raises(SystemExit) as e:
        train_cli.main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err
    assert no_files_written(tmp_path, before)


def test_unwritable_or_directory_outputs_exit_2(tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    for out in (tmp_path / "adir", tmp_path / "file.txt" / "m.pt"):
        (tmp_path / "file.txt").write_text("x")
        with pytest.raises(SystemExit) as e:
            train_cli.main(["copy", "--out", str(out)])
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "not a writable directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "file.txt"]
    assert not list((tmp_path / "adir").iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU that is missing")
def test_missing_gpu_exits_2(tmp_path):
    with pytest.raises(SystemExit) as e:
        train_cli.main(["copy", "--device", "cuda", "--out", str(tmp_path / "m.pt")])
    assert e.value.code == 2 and not list(tmp_path.iterdir())


def test_missing_corpus_files_are_named(tmp_path, capsys):
    (tmp_path / "train.en").write_text("one\n")
    with pytest.raises(SystemExit) as e:
        train_cli.main(["files", "--data-dir", str(tmp_path), "--src", "en", "--tgt", "de",
                        "--out", str(tmp_path / "m.pt")])
    assert e.value.code == 2
    assert "train.de" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.en"]


def test_base_preset_and_explicit_options(tmp_path):
    for name in ("train.en", "train.de", "valid.en", "valid.de"):
        (tmp_path / name).write_text("a\n")
    common = ["files", "--data-dir", str(tmp_path), "--src", "en", "--tgt", "de", "--out", str(tmp_path / "m.pt")]
    base = train_cli.parse([*common, "--base", "--layers", "4"])
    assert (base.N, base.d_model, base.d_ff, base.h) == (4, 512, 2048, 8)  # the preset, but the explicit N wins
    assert base.max_tokens == 25000 and base.bpe_vocab == 37000 and base.share_vocab and base.smoothing == 0.1
    small = train_cli.parse(common)
    assert (small.N, small.d_model, small.share_vocab) == (3, 256, False)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("argv", [
    ["--tasks", "copy,xx"], ["--tasks", ""], ["--beam-size", "0"], ["--alpha", "-1"],
    ["--fr", "missing.pt"], ["--beam-size", "two"],
])
def test_bad_evaluate_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        evaluate.main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def run(*args, cwd=ROOT, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_real_process_exit_status_is_2(tmp_path):
    r = run("-m", "src.train", "copy", "--epochs", "0", "--out", str(tmp_path / "m.pt"))
    assert r.returncode == 2 and "--epochs" in r.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_train_then_evaluate_a_copy_checkpoint(tmp_path):
    out = tmp_path / "copy.pt"
    r = run("-m", "src.train", "copy", "--epochs", "2", "--batches", "4", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    history = json.loads(out.with_suffix(".history.json").read_text())
    assert len(history["steps"]) == 8 and history["world"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.history.json", "copy.pt"]
    r = run("-m", "src.evaluate", "--tasks", "copy", "--copy", str(out))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert set(result) == {"copy"} and 0.0 <= result["copy"]["exact_match"] <= 1.0


@pytest.mark.slow
def test_train_files_on_a_toy_corpus(tmp_path):
    """The recipe's `files` command end to end: read the files, train BPE and a model, write a checkpoint."""
    from src.data.translation import Translator
    from src.shared.checkpoint import load_checkpoint

    en = ["a dog runs", "two men talk", "a cat sleeps", "the sun shines"]
    de = ["ein hund rennt", "zwei männer reden", "eine katze schläft", "die sonne scheint"]
    for split in ("train", "val"):
        (tmp_path / f"{split}.en").write_text("\n".join(en) + "\n")
        (tmp_path / f"{split}.de").write_text("\n".join(de) + "\n")
    out = tmp_path / "toy.pt"
    r = run("-m", "src.train", "files", "--data-dir", str(tmp_path), "--src", "en", "--tgt", "de",
            "--valid-split", "val", "--layers", "1", "--d-model", "16", "--d-ff", "32", "--heads", "2",
            "--bpe-vocab", "50", "--max-tokens", "32", "--epochs", "2", "--warmup", "5", "--share-vocab",
            "--out", str(out))
    assert r.returncode == 0, r.stderr
    toy = Translator.from_checkpoint(load_checkpoint(out))
    assert toy.src_tok.to_dict() == toy.tgt_tok.to_dict()  # one shared vocabulary
    assert toy.model.src_embed[0].lut.weight is toy.model.generator.proj.weight
    assert isinstance(toy.translate(["a dog sleeps"])[0], str)
