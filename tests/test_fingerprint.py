"""One fingerprint of code keys both caches: it follows imports and changes with any file."""

from __future__ import annotations

import shutil
from pathlib import Path

from src.shared import fingerprint as fp

ROOT = Path(__file__).resolve().parents[1]


def test_the_training_fingerprint_covers_what_training_imports_and_no_more() -> None:
    covered = set(fp.closure(fp.TRAINING))
    assert {"src.transformer.attention", "src.shared.training", "src.data.tokenizer",
            "src.shared.lr_scheduler", "src.recipes.copy_task"} <= covered
    assert not any(m.startswith(("src.viz", "src.listings", "src.train", "src.bench")) for m in covered)


def test_a_changed_file_changes_the_fingerprint(tmp_path, monkeypatch) -> None:
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fp, "SRC", copy)
    before, everything = fp.fingerprint(fp.TRAINING), fp.fingerprint()
    (copy / "viz" / "masks.py").write_text((copy / "viz" / "masks.py").read_text() + "\n# a chart changed\n")
    assert fp.fingerprint(fp.TRAINING) == before  # a chart does not retrain models
    assert fp.fingerprint() != everything  # but the chapters run again
    attention = copy / "transformer" / "attention.py"
    attention.write_text(attention.read_text().replace("math.sqrt(d_k)", "math.sqrt(d_k) * 1.0"))
    assert fp.fingerprint(fp.TRAINING) != before
