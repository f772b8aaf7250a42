"""Command-line entry points: bad options exit with status 2 and write nothing; good ones write a checkpoint."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src import evaluate
from src import train as train_cli
from src.shared.checkpoint import Checkpoint

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
    ["--resume", "--out", "{tmp}/junk.pt"],  # junk.state.pt is not a training state
    ["--resume=yes"],
]
MODEL_BAD = [
    ["--layers", "0"], ["-N", "two"], ["--d-model", "0"], ["--d-ff", "-1"], ["--heads", "0"],
    ["--dropout", "1.5"], ["--epochs", "0"], ["--batch-size", "0"], ["--max-tokens", "0"], ["--accum", "0"],
    ["--warmup", "0"], ["--factor", "0"], ["--smoothing", "-0.1"], ["--bpe-vocab", "0"],
    ["--d-model", "130", "--heads", "4"], ["--patience", "-1"], ["--valid-target", "0"],
    ["--valid-target", "1.5"], ["--inner-dropout=yes"], ["--no-inner-dropout=no"], ["--norm-first=yes"],
    ["--no-norm-first=no"], ["--scale-scores=no"], ["--no-scale-scores=yes"], ["--positional=1"],
    ["--no-positional=0"],
]
BAD_BY_TASK = {
    "copy": [*COMMON_BAD, ["--epochs", "0"], ["--epochs", "three"], ["--batches", "0"], ["--batch-size", "-4"],
             ["--patience", "-1"]],
    "numbers": [*COMMON_BAD, *MODEL_BAD, ["--lang", "it"], ["--n-train", "0"], ["--n-valid", "-1"],
                ["--n-test", "x"], ["--n-train", "2000000"], ["--data-dir", "{file}"],
                ["--tokenizer", "sentencepiece"]],
    "files": [*COMMON_BAD, *MODEL_BAD, ["--data-dir", "{tmp}/nowhere"], ["--data-dir", "{tmp}/uneven"],
              ["--data-dir", "{tmp}/empty"], ["--data-dir", "{tmp}/blank"], ["--data-dir", "{tmp}/latin1"],
              ["--src", "xx"], ["--tgt", ""], ["--train-split", "missing"], ["--valid-split", "test"],
              ["--valid-split", "latin1"], ["--tokenizer", "chars"], ["--share-vocab=yes"], ["--no-share-vocab=no"],
              ["--max-len", "0"], ["--base=1"]],
}
# Corpus directories of `write_train_inputs`: a good one, and ones whose train files are bad.
BAD_CORPORA = {
    "uneven": ("a b\nc d\n", "a b\n"),  # different line counts
    "empty": ("", ""),
    "blank": ("  \n\n", "\n \n"),  # no sentence in either file
    "latin1": ("a b\n", "\xe9t\xe9\n".encode("latin-1")),  # not UTF-8
}
CORPUS = ["--data-dir", "{corpus}", "--src", "en", "--tgt", "de"]
BAD_TRAIN = [[], ["translate"], ["files", "--src", "en", "--tgt", "de"]] + [
    [task, *(CORPUS if task == "files" else []), *bad] for task, cases in BAD_BY_TASK.items() for bad in cases
]


def no_files_written(tmp_path: Path, before: set[str]) -> bool:
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")} == before


def fill(argv: list[str], names: dict[str, Path]) -> list[str]:
    """`argv` with each `{name}` replaced by its path, longest names first."""
    for name in sorted(names, key=len, reverse=True):
        argv = [a.replace("{" + name + "}", str(names[name])) for a in argv]
    return argv


def assert_one_error_line(err: str, prog: str, *named: str) -> None:
    """argparse's usage, then one line `<prog>: error: ...` that names each of `named`; no traceback."""
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith(f"{prog}: error: "), err
    for word in named:
        assert word in last, f"{word!r} not named in {last!r}"


def write_train_inputs(tmp_path: Path) -> dict[str, Path]:
    """A plain file, a state that is not one, a good corpus (with a non-UTF-8 `latin1` split) and bad corpora."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "junk.state.pt").write_bytes(bytes(range(256)))
    for name, (src, tgt) in {"corpus": ("a b\n", "a b\n"), **BAD_CORPORA}.items():
        (tmp_path / name).mkdir()
        for split in ("train", "valid"):
            for lang, text in (("en", src), ("de", tgt)):
                data = text if name == "corpus" or split == "train" else "a b\n"
                path = tmp_path / name / f"{split}.{lang}"
                path.write_bytes(data if isinstance(data, bytes) else data.encode())
    (tmp_path / "corpus" / "latin1.en").write_text("a b\n")
    (tmp_path / "corpus" / "latin1.de").write_bytes(BAD_CORPORA["latin1"][1])
    return {"tmp": tmp_path, "file": tmp_path / "file", "corpus": tmp_path / "corpus"}


@pytest.mark.parametrize("argv", BAD_TRAIN, ids=lambda a: " ".join(a) or "no-task")
def test_bad_train_options_exit_2_and_write_nothing(argv, tmp_path, capsys):
    names = write_train_inputs(tmp_path)
    # a case that names a path must name it in its error (the corpus of `files` cases is {corpus}, not {tmp})
    paths = [a for a in argv if "{tmp}" in a or "{file}" in a]
    argv = fill(argv, names)
    if argv and argv[0] in ("copy", "numbers", "files") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out" / "m.pt")]
    before = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    with pytest.raises(SystemExit) as e:
        train_cli.main(argv)
    assert e.value.code == 2
    prog = "python -m src.train" + (f" {argv[0]}" if argv and argv[0] in BAD_BY_TASK else "")
    assert_one_error_line(capsys.readouterr().err, prog, *([str(tmp_path)] if paths else []))
    assert no_files_written(tmp_path, before)


def test_every_option_of_every_task_has_a_bad_value_case(tmp_path):
    parser = train_cli.build_parser()
    for task, sub in parser._subparsers._group_actions[0].choices.items():
        tried = {a.split("=")[0] for case in BAD_BY_TASK[task] for a in case if a.startswith("-")}
        options = {o for action in sub._actions for o in action.option_strings} - {"-h", "--help"}
        assert options - tried == set(), f"{task}: options without a bad-value case"
    # without the bad option, each task's command line is fine: the cases fail for their option
    names = write_train_inputs(tmp_path)
    for task in BAD_BY_TASK:
        base = fill(CORPUS, names) if task == "files" else []
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
    assert base.max_tokens == 25000 and base.bpe_vocab == 37000 and base.share_embeddings and base.smoothing == 0.1
    small = train_cli.parse(common)
    assert (small.N, small.d_model, small.share_embeddings) == (3, 256, False)
    assert not (tmp_path / "m.pt").exists()


# Every option of `python -m src.evaluate` with a wrong value: each must exit 2 with one error line naming it.
# Each checkpoint option gets files that are no checkpoint, and checkpoints of the other tasks ({name}: the
# files of `evaluate_inputs`); `--tasks` keeps a case that is wrongly accepted from training a model.
NOT_A_CHECKPOINT = ["{tmp}/missing.pt", "{tmp}", "{text}", "{empty}", "{random}", "{truncated}", "{plain_dict}",
                    "{no_config}", "{misfit}"]
BAD_EVALUATE = [
    ["--tasks", "copy,xx"], ["--tasks", ""], ["--beam-size", "0"], ["--beam-size", "two"], ["--alpha", "-1"],
    ["--alpha", "nan"], ["--alpha", "inf"], ["--alpha=-inf"], ["--alpha", "high"], ["--progress=yes"],
    ["--no-progress=no"],
    *[["--tasks", task, f"--{task}", bad] for task in evaluate.TASKS for bad in NOT_A_CHECKPOINT],
    *[["--tasks", task, f"--{task}", "{" + other + "}"] for task in evaluate.TASKS for other in evaluate.TASKS
      if other != task],  # the wrong task or direction
    ["--tasks", "fr", "--fr", "{files}"], ["--tasks", "de", "--de", "{files}"],  # en->de, but no number task
    ["--tasks", "fr", "--fr", "{bad_vocab}"], ["--tasks", "de", "--de", "{big_vocab}"],
]


@pytest.fixture(scope="module")
def evaluate_inputs(tmp_path_factory) -> dict[str, Path]:
    """Tiny checkpoints as `python -m src.train` writes them (copy, fr, de, files), and files that are not ones."""
    from src.data.numbers import NumbersTask
    from src.data.tokenizer import WordTokenizer
    from src.recipes.copy_task import COPY_MODEL
    from src.recipes.translation import Translator
    from src.shared.checkpoint import save_checkpoint
    from src.transformer.model import make_model

    tmp = tmp_path_factory.mktemp("evaluate")
    tiny = {"N": 1, "d_model": 16, "d_ff": 32, "h": 2}

    def translator(extra: dict, extra_tokens: int = 0) -> Path:
        en, other = WordTokenizer.build(["one two"]), WordTokenizer.build(["un deux"])
        model = make_model(len(en), len(other) + extra_tokens, **tiny)
        return Translator(model, en, other, extra=extra).to_checkpoint()

    checkpoints = {
        "copy": Checkpoint(dataclasses.replace(COPY_MODEL, **tiny).build(), {}, {"train_seconds": 1.0}),
        "fr": translator({"task": dataclasses.asdict(NumbersTask("fr"))}),
        "de": translator({"task": dataclasses.asdict(NumbersTask("de"))}),
        "files": translator({"corpus": {"data_dir": "multi30k", "src": "en", "tgt": "de"}}),
        "big_vocab": translator({"task": dataclasses.asdict(NumbersTask("de"))}, extra_tokens=3),
        "bad_vocab": translator({"task": dataclasses.asdict(NumbersTask("fr"))}),
    }
    checkpoints["bad_vocab"].vocabs["tgt"] = {"kind": "word"}  # no tokens
    names = {"tmp": tmp}
    for name, ckpt in checkpoints.items():
        names[name] = save_checkpoint(tmp / f"{name}.pt", ckpt.model, ckpt.vocabs, ckpt.extra)
    good = names["copy"].read_bytes()
    payload = torch.load(names["copy"], weights_only=True)
    for name, data in {"text": b"root:x:0:0:root:/root:/bin/bash\n", "empty": b"", "random": bytes(range(256)) * 8,
                       "truncated": good[: len(good) // 2]}.items():
        names[name] = tmp / f"{name}.pt"
        names[name].write_bytes(data)
    for name, obj in {"plain_dict": {"weights": torch.zeros(3)},
                      "no_config": {k: v for k, v in payload.items() if k != "config"},
                      "misfit": {**payload, "config": {**payload["config"], "d_ff": 64}}}.items():
        names[name] = tmp / f"{name}.pt"
        torch.save(obj, names[name])
    return names


@pytest.mark.parametrize("argv", BAD_EVALUATE, ids=lambda a: " ".join(a) or "none")
def test_bad_evaluate_options_exit_2(argv, evaluate_inputs, capsys):
    option = [a for a in argv if a.startswith("--")][-1].split("=")[0]
    paths = fill([a for a in argv if "{" in a], evaluate_inputs)  # a file the error must name
    before = {str(p.relative_to(evaluate_inputs["tmp"])) for p in evaluate_inputs["tmp"].rglob("*")}
    with pytest.raises(SystemExit) as e:
        evaluate.main(fill(argv, evaluate_inputs))
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, "python -m src.evaluate", option, *paths)
    assert no_files_written(evaluate_inputs["tmp"], before)


def test_every_evaluate_option_has_a_bad_value_case(evaluate_inputs):
    tried = {a.split("=")[0] for case in BAD_EVALUATE for a in case if a.startswith("-")}
    options = {o for action in evaluate.build_parser()._actions for o in action.option_strings} - {"-h", "--help"}
    assert options - tried == set(), "options without a bad-value case"
    # the right checkpoint for each task is accepted: the cases fail for what their file holds
    assert isinstance(evaluate.load_for("copy", evaluate_inputs["copy"]), Checkpoint)
    for lang in ("fr", "de"):
        assert evaluate.load_for(lang, evaluate_inputs[lang]).extra["task"]["lang"] == lang


def test_a_checkpoint_of_another_task_is_named(evaluate_inputs, capsys):
    for argv, held in [(["--fr", "{de}"], "English -> German"), (["--copy", "{fr}"], "English -> French"),
                       (["--de", "{copy}"], "copy-task"), (["--de", "{files}"], "trained on the en -> de files")]:
        with pytest.raises(SystemExit):
            evaluate.main(fill(argv, evaluate_inputs))
        assert held in capsys.readouterr().err.splitlines()[-1]


def run(*args, cwd=ROOT, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_real_process_exit_status_is_2(tmp_path):
    r = run("-m", "src.train", "copy", "--epochs", "0", "--out", str(tmp_path / "m.pt"))
    assert r.returncode == 2 and "--epochs" in r.stderr
    assert not list(tmp_path.iterdir())


def test_real_process_bad_files_exit_2_with_one_error_line(tmp_path, evaluate_inputs):
    names = write_train_inputs(tmp_path)
    before = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    r = run("-m", "src.train", "files", *fill(CORPUS, names), "--data-dir", str(tmp_path / "uneven"),
            "--out", str(tmp_path / "m.pt"))
    assert r.returncode == 2 and r.stdout == ""
    assert_one_error_line(r.stderr, "python -m src.train files", str(tmp_path / "uneven" / "train.en"))
    assert no_files_written(tmp_path, before)
    r = run("-m", "src.evaluate", "--copy", str(evaluate_inputs["text"]))
    assert r.returncode == 2 and r.stdout == ""
    assert_one_error_line(r.stderr, "python -m src.evaluate", "--copy", str(evaluate_inputs["text"]))


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
    from src.recipes.translation import Translator
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
    assert toy.model.src_embed.embeddings.lut.weight is toy.model.generator.proj.weight
    assert isinstance(toy.translate(["a dog sleeps"])[0], str)
