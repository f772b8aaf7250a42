"""Checkpoints: a model with its configuration and vocabularies, written atomically and
loaded safely.

- `save_checkpoint` writes to a temporary file in the target directory, then renames it
  over the target (`os.replace`, atomic on POSIX): a crash mid-write leaves the previous
  checkpoint intact.
  On Linux the temporary file is anonymous (`O_TMPFILE`) until it is complete, so even a
  killed process leaves no half-written file behind. A failed write (disk full, file too
  large) raises `CheckpointWriteError` naming the file and the reason.
- `save_training_state` / `load_training_state` do the same for what `train` needs to
  resume (`src.shared.resume`).
- `load_checkpoint` uses `torch.load(weights_only=True)`, which unpickles only tensors
  and plain containers: a file that would run code when unpickled is refused, not
  executed.
- A checkpoint of another configuration, or a corrupt file, raises ValueError saying
  which.
- `cached_model` trains a model once and reuses it: chapters and
  `python -m src.evaluate` share models through a cache keyed by a hash of the training
  settings and of the code that trains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import pickle
import secrets
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from src.shared.fingerprint import TRAINING, fingerprint
from src.transformer.model import EncoderDecoder, ModelConfig

FORMAT = "annotated-transformer-checkpoint"
STATE_FORMAT = "annotated-transformer-training-state"
VERSION = 1
CACHE_ENV = "TRANSFORMER_BOOK_CACHE"
_ROOT = Path(__file__).resolve().parents[2]
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


@dataclass
class Checkpoint:
    """A model with what is needed to use it: vocabularies (`to_dict` of tokenizers) and
    anything else plain.
    """

    model: EncoderDecoder
    vocabs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def _check_plain(obj: object, where: str) -> None:
    """Raise TypeError unless `obj` is made of what `torch.load(weights_only=True)` can
    read back.
    """
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(
                    f"{where} has a key of type {type(k).__name__}; use str keys"
                )
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(
            f"{where} is a {type(obj).__name__}; a checkpoint holds only tensors, "
            "numbers, strings, lists and dicts"
        )


def save_checkpoint(
    path: str | Path,
    model: EncoderDecoder,
    vocabs: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write `model` (weights and `.config`), `vocabs` and `extra` to `path`,
    atomically.
    """
    if not isinstance(getattr(model, "config", None), ModelConfig):
        raise TypeError(
            "model must be built by make_model (it needs a .config to be rebuilt when "
            "loaded)"
        )
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
    return _atomic_save(payload, path)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, file too large, no permission); the
    old file is intact.
    """


class _Recorder:
    """A file wrapper that remembers the OSError of a failed write: torch.save turns it
    into a vague RuntimeError.
    """

    def __init__(self, f) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def __getattr__(self, name: str):
        return getattr(self.f, name)  # flush, tell, fileno, ...


# Linux: anonymous until complete
_USE_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")


def _open_temp(directory: Path, name: str) -> tuple[int, str | None]:
    """A file descriptor to write to, and the temporary name it has (None: anonymous,
    `O_TMPFILE`).
    """
    if _USE_TMPFILE:
        try:
            return os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o644), None
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                # a full disk or no permission: report it; a file system without
                # O_TMPFILE: fall back
                raise
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)


def _atomic_save(payload: dict, path: str | Path) -> Path:
    """torch.save `payload` to `path` through a temporary file renamed over it;
    CheckpointWriteError on failure.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temp(path.parent, path.name)
        with os.fdopen(fd, "wb") as f:
            recorder = _Recorder(f)
            try:
                torch.save(payload, recorder)
            except RuntimeError as e:
                if recorder.error is None:
                    raise
                raise recorder.error from e
            f.flush()
            os.fsync(f.fileno())
            # give the anonymous file a name next to the target, then rename it
            if tmp is None:
                tmp = str(
                    path.parent
                    / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
                )
                proc = os.open("/proc/self/fd", os.O_RDONLY)
                # linkat(AT_SYMLINK_FOLLOW) on the descriptor's /proc entry; plain
                # link() would not follow
                try:
                    os.link(str(f.fileno()), tmp, src_dir_fd=proc, follow_symlinks=True)
                finally:
                    os.close(proc)
        # mkstemp makes it private; a checkpoint is an ordinary file
        os.chmod(tmp, 0o644)
        # atomic: readers see the old file or the new one, never half of one
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, CheckpointWriteError):
            reason = e.strerror or str(e)
            code = f", {errno.errorcode[e.errno]}" if e.errno in errno.errorcode else ""
            raise CheckpointWriteError(
                f"cannot write {path}: {reason}{code}; any previous {path.name} is "
                "unchanged"
            ) from None
        raise
    return path


def save_training_state(path: str | Path, state: dict) -> Path:
    """Write the training state of `train` (plain values and tensors only) to `path`,
    atomically.
    """
    _check_plain(state, "state")
    return _atomic_save({"format": STATE_FORMAT, "version": VERSION, **state}, path)


def load_training_state(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> dict:
    """Read a state written by `save_training_state` with weights_only=True; ValueError
    if it is not one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(
            f"{path} is not a readable training state: {_first_line(e)}"
        ) from None
    if (
        not isinstance(state, dict)
        or state.get("format") != STATE_FORMAT
        or state.get("version") != VERSION
    ):
        raise ValueError(
            f"{path} was not written by save_training_state (no {STATE_FORMAT!r} "
            "marker)"
        )
    return state


def config_diff(saved: object, now: dict) -> str:
    """What differs between a saved configuration and this one, one key at a time."""
    old = saved if isinstance(saved, dict) else {}
    return "; ".join(
        f"{k} was {old.get(k)!r}, now {now.get(k)!r}"
        for k in sorted(set(old) | set(now))
        if old.get(k) != now.get(k)
    )


def _as_config(config: ModelConfig | dict) -> ModelConfig:
    if isinstance(config, ModelConfig):
        return config
    try:
        return ModelConfig(**config)
    except TypeError as e:
        raise ValueError(f"not a model configuration: {e}") from None


def load_checkpoint(
    path: str | Path,
    config: ModelConfig | dict | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` and rebuild its model (in eval
    mode).

    With `config`, the checkpoint must have been saved from a model of exactly that
    configuration.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of foreign files
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    # a truncated zip, random bytes, an empty file, or a pickle that would run code
    except Exception as e:
        refused = isinstance(
            e, pickle.UnpicklingError
        ) and "Weights only load failed" in str(e)
        why = (
            "it holds objects other than tensors and plain containers, which could run "
            "code when unpickled, or bytes that are not a pickle"
            if refused
            else "it is corrupt or truncated"
        )
        raise ValueError(
            f"{path} is not a readable checkpoint: {why} ({_first_line(e)})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} was not written by save_checkpoint (no {FORMAT!r} marker)"
        )
    if payload.get("version") != VERSION:
        raise ValueError(
            f"{path} has checkpoint version {payload.get('version')}, this code reads "
            f"version {VERSION}"
        )
    try:
        saved = _as_config(payload.get("config"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if not isinstance(payload.get("vocabs", {}), dict) or not isinstance(
        payload.get("extra", {}), dict
    ):
        raise ValueError(
            f"{path} has vocabs or extra that are not dicts, which save_checkpoint "
            "never writes"
        )
    if config is not None:
        wanted = _as_config(config)
        if wanted != saved:
            detail = config_diff(dataclasses.asdict(saved), dataclasses.asdict(wanted))
            raise ValueError(
                f"{path} holds a model of another configuration ({detail})"
            )
    try:
        model = saved.build()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} holds no usable model configuration: {e}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as e:
        detail = " ".join(str(e).split())[:300]  # one line
        raise ValueError(
            f"{path}: the weights do not fit its configuration: {detail}"
        ) from None
    model.eval()
    return Checkpoint(model, payload.get("vocabs", {}), payload.get("extra", {}))


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200] if text else ''}"


def cache_dir() -> Path:
    """Where `cached_model` keeps models: $TRANSFORMER_BOOK_CACHE, else
    `_build/.model_cache` in the repository.
    """
    return Path(os.environ.get(CACHE_ENV) or _ROOT / "_build" / ".model_cache")


def code_fingerprint() -> str:
    """A hash of the code that builds, trains and feeds models, so a changed model is
    never read from the cache (`src.shared.fingerprint`).
    """
    return fingerprint(TRAINING)


def settings_key(name: str, settings: dict) -> str:
    """The cache key of a model: sha256 of its name, its settings (as sorted JSON) and
    the code fingerprint.
    """
    text = json.dumps({"name": name, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256((text + code_fingerprint()).encode()).hexdigest()


def cached_model(
    name: str,
    settings: dict,
    train_fn: Callable[[], Checkpoint],
    directory: str | Path | None = None,
) -> Checkpoint:
    """Load model `name` trained with `settings` from the cache, or call `train_fn()`
    and cache its result.

    `settings` must describe everything that changes the trained model (data, sizes,
    seed, epochs):
    it is hashed into the file name. A corrupt cached file is trained again and
    replaced.
    """
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"name must be letters, digits, '-' or '_', got {name!r}")
    directory = Path(directory) if directory is not None else cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{settings_key(name, settings)[:16]}.pt"
    # two chapters run at once: the second waits, then loads
    with _lock(directory / f"{path.stem}.lock"):
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
