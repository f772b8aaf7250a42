"""Checkpoints: round trip, atomic writes, clear errors, refusal of pickles that run code, the model cache."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch

from src.data.tokenizer import WordTokenizer
from src.shared import checkpoint as ck
from src.shared.checkpoint import Checkpoint, cached_model, load_checkpoint, save_checkpoint
from src.transformer import make_model


def tiny(**kw):
    args = {"src_vocab": 13, "tgt_vocab": 11, "N": 1, "d_model": 16, "d_ff": 32, "h": 2, "dropout": 0.0, **kw}
    return make_model(**args).eval()


def outputs(model):
    src = torch.tensor([[3, 4, 5, 2]])
    tgt = torch.tensor([[1, 6, 7]])
    return model(src, tgt, torch.ones(1, 1, 4), torch.ones(1, 3, 3))


def test_round_trip_gives_equal_outputs_config_and_vocabs(tmp_path):
    model = tiny(share_embeddings=False)
    vocab = WordTokenizer.build(["un deux trois"]).to_dict()
    path = save_checkpoint(tmp_path / "m.pt", model, {"tgt": vocab}, {"history": {"steps": [{"loss": 1.5}]}, "s": 3.0})
    ckpt = load_checkpoint(path)
    assert ckpt.config == model.config
    assert ckpt.vocabs == {"tgt": vocab}
    assert ckpt.extra["history"]["steps"][0]["loss"] == 1.5
    assert not ckpt.model.training
    assert torch.equal(outputs(ckpt.model), outputs(model))
    assert load_checkpoint(path, config=model.config).config == model.config  # the expected config passes


def test_shared_embeddings_stay_shared(tmp_path):
    model = tiny(src_vocab=11, share_embeddings=True)
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "s.pt", model))
    assert ckpt.model.src_embed.embeddings.lut.weight is ckpt.model.generator.proj.weight
    assert torch.equal(outputs(ckpt.model), outputs(model))


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny())
    other = tiny(d_model=32).config
    with pytest.raises(ValueError, match=r"another configuration \(d_model was 16, now 32\)"):
        load_checkpoint(path, config=other)
    with pytest.raises(ValueError, match="another configuration"):
        load_checkpoint(path, config={**vars(tiny().config), "N": 2})


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    model = tiny()
    path = save_checkpoint(tmp_path / "m.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["config"]["d_ff"] = 64
    torch.save(payload, path)
    with pytest.raises(ValueError, match="do not fit its configuration"):
        load_checkpoint(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_file_gives_a_clear_error(tmp_path, damage):
    path = save_checkpoint(tmp_path / "m.pt", tiny())
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(2000), "empty": b""}[damage])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_other_files_are_refused(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not written by save_checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


class Exploit:
    """Unpickling this object would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": ck.FORMAT, "version": ck.VERSION, "payload": Exploit(marker)}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(ValueError, match="not a readable checkpoint: it holds objects other than tensors"):
        load_checkpoint(path)
    assert not marker.exists()
    # a plain pickle file (not torch's zip format) is refused too
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Exploit(marker)))
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(raw)
    assert not marker.exists()


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    good = tiny()
    path = save_checkpoint(tmp_path / "m.pt", good)
    before = path.read_bytes()
    real_save = torch.save

    def crash(obj, f, *a, **kw):  # write half a file, then die
        real_save(obj, f, *a, **kw)
        f.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny(d_model=32))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary file left behind
    assert torch.equal(outputs(load_checkpoint(path).model), outputs(good))


def test_unsaveable_extras_fail_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r"extra\['fn'\]"):
        save_checkpoint(tmp_path / "m.pt", tiny(), extra={"fn": print})
    with pytest.raises(TypeError, match="make_model"):
        save_checkpoint(tmp_path / "m.pt", torch.nn.Linear(2, 2))
    assert not list(tmp_path.iterdir())


def test_cached_model_trains_once_per_settings(tmp_path, monkeypatch):
    calls = []

    def train_fn():
        calls.append(1)
        return Checkpoint(tiny(), {}, {"n": len(calls)})

    a = cached_model("toy", {"d": 16}, train_fn, directory=tmp_path)
    b = cached_model("toy", {"d": 16}, train_fn, directory=tmp_path)
    assert len(calls) == 1 and b.extra == {"n": 1}
    assert torch.equal(outputs(a.model), outputs(b.model))
    cached_model("toy", {"d": 17}, train_fn, directory=tmp_path)  # other settings: another model
    assert len(calls) == 2
    # a corrupt cached file is trained again
    for f in tmp_path.glob("toy-*.pt"):
        f.write_bytes(b"junk")
    cached_model("toy", {"d": 16}, train_fn, directory=tmp_path)
    assert len(calls) == 3
    # the default directory comes from the environment
    monkeypatch.setenv(ck.CACHE_ENV, str(tmp_path / "env"))
    cached_model("toy", {"d": 16}, train_fn)
    assert list((tmp_path / "env").glob("toy-*.pt"))
    with pytest.raises(ValueError, match="name"):
        cached_model("../escape", {}, train_fn, directory=tmp_path)


def test_cache_key_depends_on_settings_and_code():
    assert ck.settings_key("m", {"a": 1, "b": 2}) == ck.settings_key("m", {"b": 2, "a": 1})
    assert ck.settings_key("m", {"a": 1}) != ck.settings_key("m", {"a": 2})
    assert ck.settings_key("m", {"a": 1}) != ck.settings_key("n", {"a": 1})
    assert len(ck.code_fingerprint()) == 64
