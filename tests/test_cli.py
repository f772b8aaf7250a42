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

# Every option of every subcommand with a wrong value: each must exit 2 and write nothing.
# {tmp} is the test's directory, {file} a plain file in it; `files` cases get a valid corpus first.
COMMON_BAD = [
    ["--out", "{tmp}"],  # a directory
    ["--history", "{file}/h.json"],  # under a file
    ["--seed", "-1"],
    ["--device", "tpu"],
    ["--threads", "0"],
    ["--progress=yes"],
    ["--no-progress=no"],
    ["--checkpoint-every", "-1"],
    ["--checkpoint-every", "often"],
    ["--resume"],  # no training state to resume
    ["--resume=yes"],
]
MODEL_BAD = [
    ["--layers", "0"], ["-N", "two"], ["--d-model", "0"], ["--d-ff", "-1"], ["--heads", "0"],
    ["--dropout", "1.5"], ["--epochs", "0"], ["--batch-size", "0"], ["--max-tokens", "0"], ["--accum", "0"],
    ["--warmup", "0"], ["--factor", "0"], ["--smoothing", "-0.1"], ["--bpe-vocab", "0"],
    ["--d-model", "130", "--heads", "4"],
]
BAD_BY_TASK = {
    "copy": [*COMMON_BAD, ["--epochs", "0"], ["--epochs", "three"], ["--batches", "0"], ["--batch-size", "-4"]],
    "numbers": [*COMMON_BAD, *MODEL_BAD, ["--lang", "it"], ["--n-train", "0"], ["--n-valid", "-1"],
                ["--n-test", "x"], ["--n-train", "2000000"], ["--data-dir", "{file}"],
                ["--tokenizer", "sentencepiece"]],
    "files": [*COMMON_BAD, *MODEL_BAD, ["--data-dir", "{tmp}/nowhere"], ["--src", "xx"], ["--tgt", ""],
              ["--train-split", "missing"], ["--valid-split", "test"], ["--tokenizer", "chars"],
              ["--share-vocab=yes"], ["--no-share-vocab=no"], ["--max-len", "0"], ["--base=1"]],
}
CORPUS = ["--data-dir", "{tmp}/corpus", "--src", "en", "--tgt", "de"]
BAD_TRAIN = [[], ["translate"], ["files", "--src", "en", "--tgt", "de"]] + [
    [task, *(CORPUS if task == "files" else []), *bad] for task, cases in BAD_BY_TASK.items() for bad in cases
]


def no_files_written(tmp_path: Path, before: set[str]) -> bool:
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")} == before


@pytest.mark.parametrize("argv", BAD_TRAIN, ids=lambda a: " ".join(a) or "no-task")
def test_bad_train_options_exit_2_and_write_nothing(argv, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "corpus").mkdir()
    for name in ("train.en", "train.de", "valid.en", "valid.de"):
        (tmp_path / "corpus" / name).write_text("a b\n")
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{file}", str(tmp_path / "file")) for a in argv]
    if argv and argv[0] in ("copy", "numbers", "files") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out" / "m.pt")]
    before = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    with pytest.raises(SystemExit) as e:
        train_cli.main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err
    assert no_files_written(tmp_path, before)


def test_every_option_of_every_task_has_a_bad_value_case(tmp_path):
    parser = train_cli.build_parser()
    for task, sub in parser._subparsers._group_actions[0].choices.items():
        tried = {a.split("=")[0] for case in BAD_BY_TASK[task] for a in case if a.startswith("-")}
        options = {o for action in sub._actions for o in action.option_strings} - {"-h", "--help"}
        assert options - tried == set(), f"{task}: options without a bad-value case"
    # without the bad option, each task's command line is fine: the cases fail for their option
    (tmp_path / "corpus").mkdir()
    for name in ("train.en", "train.de", "valid.en", "valid.de"):
        (tmp_path / "corpus" / name).write_text("a b\n")
    for task in BAD_BY_TASK:
        base = [a.replace("{tmp}", str(tmp_path)) for a in CORPUS] if task == "files" else []
        assert train_cli.parse([task, *base, "--out", str(tmp_path / "m.pt")]).task == task


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
