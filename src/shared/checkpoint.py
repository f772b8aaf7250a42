"""Checkpoints: a model with its configuration and vocabularies, written atomically and loaded safely.

- `save_checkpoint` writes to a temporary file in the target directory, then renames it over the
  target (`os.replace`, atomic on POSIX): a crash mid-write leaves the previous checkpoint intact.
- `load_checkpoint` uses `torch.load(weights_only=True)`, which unpickles only tensors and plain
  containers: a file that would run code when unpickled is refused, not executed.
- A checkpoint of another configuration, or a corrupt file, raises ValueError saying which.
- `cached_model` trains a model once and reuses it: chapters and `python -m src.evaluate` share
  models through a cache keyed by a hash of the training settings and of the code that trains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from src.transformer.model import EncoderDecoder, ModelConfig, make_model

FORMAT = "annotated-transformer-checkpoint"
VERSION = 1
CACHE_ENV = "TRANSFORMER_BOOK_CACHE"
_ROOT = Path(__file__).resolve().parents[2]
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


@dataclass
class Checkpoint:
    """A model with what is needed to use it: vocabularies (`to_dict` of tokenizers) and anything else plain."""

    model: EncoderDecoder
    vocabs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def _check_plain(obj: object, where: str) -> None:
    """Raise TypeError unless `obj` is made of what `torch.load(weights_only=True)` can read back."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str keys")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(
            f"{where} is a {type(obj).__name__}; a checkpoint holds only tensors, numbers, strings, lists and dicts"
        )


def save_checkpoint(
    path: str | Path, model: EncoderDecoder, vocabs: dict | None = None, extra: dict | None = None
) -> Path:
    """Write `model` (weights and `.config`), `vocabs` and `extra` to `path`, atomically."""
    if not isinstance(getattr(model, "config", None), ModelConfig):
        raise TypeError("model must be built by make_model (it needs a .config to be rebuilt when loaded)")
    vocabs, extra = vocabs or {}, extra or {}
    _check_plain(vocabs, "vocabs")
    _check_plain(extra, "extra")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocabs": vocabs,
        "extra": extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _as_config(config: ModelConfig | dict) -> ModelConfig:
    if isinstance(config, ModelConfig):
        return config
    try:
        return ModelConfig(**config)
    except TypeError as e:
        raise ValueError(f"not a model configuration: {e}") from None


def load_checkpoint(
    path: str | Path, config: ModelConfig | dict | None = None, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` and rebuild its model (in eval mode).

    With `config`, the checkpoint must have been saved from a model of exactly that configuration.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about the pickle protocol of foreign files
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated zip, random bytes, an empty file, or a pickle that would run code
        refused = isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in str(e)
        why = ("it holds objects other than tensors and plain containers, which could run code when "
               "unpickled, or bytes that are not a pickle" if refused else "it is corrupt or truncated")
        raise ValueError(f"{path} is not a readable checkpoint: {why} ({_first_line(e)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} was not written by save_checkpoint (no {FORMAT!r} marker)")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path} has checkpoint version {payload.get('version')}, this code reads version {VERSION}")
    saved = _as_config(payload["config"])
    if config is not None:
        wanted = _as_config(config)
        if wanted != saved:
            diff = {k: (getattr(saved, k), getattr(wanted, k)) for k in dataclasses.asdict(saved)
                    if getattr(saved, k) != getattr(wanted, k)}
            detail = ", ".join(f"{k}: saved {a!r}, expected {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"{path} holds a model of another configuration ({detail})")
    model = make_model(**dataclasses.asdict(saved))
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise ValueError(f"{path}: the weights do not fit its configuration: {str(e)[:300]}") from None
    model.eval()
    return Checkpoint(model, payload.get("vocabs", {}), payload.get("extra", {}))


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200] if text else ''}"


def cache_dir() -> Path:
    """Where `cached_model` keeps models: $TRANSFORMER_BOOK_CACHE, else `_build/.model_cache` in the repository."""
    return Path(os.environ.get(CACHE_ENV) or _ROOT / "_build" / ".model_cache")


# The code that decides what a trained model computes: a change here makes cached models stale.
TRAINING_CODE = (
    "transformer/attention.py", "transformer/embeddings.py", "transformer/layers.py", "transformer/model.py",
    "shared/training.py", "shared/loss.py", "shared/lr_scheduler.py",
    "data/tokenizer.py", "data/parallel.py", "data/numbers.py", "data/translation.py", "data/copy_task.py",
)


def code_fingerprint() -> str:
    """A hash of the code that builds, trains and feeds models, so a changed model is never read from the cache."""
    h = hashlib.sha256()
    for name in TRAINING_CODE:
        f = _ROOT / "src" / name
        h.update(name.encode())
        h.update(f.read_bytes() if f.is_file() else b"")
    return h.hexdigest()


def settings_key(name: str, settings: dict) -> str:
    """The cache key of a model: sha256 of its name, its settings (as sorted JSON) and the code fingerprint."""
    text = json.dumps({"name": name, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256((text + code_fingerprint()).encode()).hexdigest()


def cached_model(
    name: str, settings: dict, train_fn: Callable[[], Checkpoint], directory: str | Path | None = None
) -> Checkpoint:
    """Load model `name` trained with `settings` from the cache, or call `train_fn()` and cache its result.

    `settings` must describe everything that changes the trained model (data, sizes, seed, epochs):
    it is hashed into the file name. A corrupt cached file is trained again and replaced.
    """
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"name must be letters, digits, '-' or '_', got {name!r}")
    directory = Path(directory) if directory is not None else cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{settings_key(name, settings)[:16]}.pt"
    with _lock(directory / f"{path.stem}.lock"):  # two chapters run at once: the second waits, then loads
        if path.is_file():
            try:
                return load_checkpoint(path)
            except ValueError:
                pass  # corrupt: train again below
        ckpt = train_fn()
        save_checkpoint(path, ckpt.model, ckpt.vocabs, ckpt.extra)
        return ckpt


@contextlib.contextmanager
def _lock(path: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the atomic write still keeps files whole
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
