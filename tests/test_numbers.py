"""The number-word corpus and the tokenizers: disjoint splits, file format, exact round trips."""

from __future__ import annotations

import pytest

from src.data.numbers import building_blocks, number_words, split_numbers, write_number_corpus
from src.data.tokenizer import (
    BOS,
    EOS,
    PAD,
    SPECIALS,
    UNK,
    BPETokenizer,
    WordTokenizer,
    join_words,
    split_words,
    tokenizer_from_dict,
)


def test_number_words_in_three_languages():
    assert number_words(97, "en") == "ninety-seven"
    assert number_words(97, "fr") == "quatre-vingt-dix-sept"
    assert number_words(324, "de") == "dreihundertvierundzwanzig"
    with pytest.raises(ValueError, match="lang"):
        number_words(3, "it")
    with pytest.raises(ValueError, match="n"):
        number_words(-1, "en")


@pytest.mark.parametrize("blocks", [True, False])
def test_splits_are_disjoint_seeded_and_in_range(blocks):
    a = split_numbers(1500, 100, 200, limit=5000, seed=3, blocks=blocks)
    assert {k: len(v) for k, v in a.items()} == {"train": 1500, "valid": 100, "test": 200}
    train, valid, test = (set(a[k]) for k in ("train", "valid", "test"))
    assert len(train) == 1500 and not train & valid and not train & test and not valid & test
    assert all(0 <= n < 5000 for v in a.values() for n in v)
    assert split_numbers(1500, 100, 200, limit=5000, seed=3, blocks=blocks) == a
    assert split_numbers(1500, 100, 200, limit=5000, seed=4, blocks=blocks) != a
    # valid and test are uniform samples: the same with or without building blocks in train
    b = split_numbers(1500, 100, 200, limit=5000, seed=3, blocks=not blocks)
    assert (a["valid"], a["test"]) == (b["valid"], b["test"])
    with pytest.raises(ValueError, match="exceeds"):
        split_numbers(4500, 400, 200, limit=5000)
    with pytest.raises(ValueError, match="n_test"):
        split_numbers(10, 10, 0)


def test_training_set_holds_the_building_blocks_not_held_out():
    a = split_numbers(3000, 300, 300, limit=20_000, seed=0)
    held_out = set(a["valid"]) | set(a["test"])
    blocks = set(building_blocks(20_000))
    assert blocks == set(range(1000))
    assert blocks - held_out <= set(a["train"])
    assert a["train"][:100] != sorted(a["train"][:100])  # shuffled, not all blocks first
    with pytest.raises(ValueError, match="building blocks"):
        split_numbers(500, 10, 10, limit=20_000)
    assert len(split_numbers(500, 10, 10, limit=20_000, blocks=False)["train"]) == 500


def test_corpus_files_are_parallel_lines(tmp_path):
    paths = write_number_corpus(tmp_path, "fr", n_train=50, n_valid=5, n_test=7, limit=1000, seed=1, blocks=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{s}.{lang}" for s in ("train", "valid", "test") for lang in ("en", "fr")
    )
    en = paths["test"][0].read_text(encoding="utf-8")
    fr = paths["test"][1].read_text(encoding="utf-8")
    assert en.endswith("\n") and len(en.splitlines()) == len(fr.splitlines()) == 7
    numbers = split_numbers(50, 5, 7, limit=1000, seed=1, blocks=False)["test"]
    assert en.splitlines() == [number_words(n, "en") for n in numbers]
    assert fr.splitlines() == [number_words(n, "fr") for n in numbers]
    # the same seed writes the same bytes
    again = write_number_corpus(tmp_path / "again", "fr", n_train=50, n_valid=5, n_test=7, limit=1000, seed=1,
                                blocks=False)
    assert again["train"][1].read_bytes() == paths["train"][1].read_bytes()
    with pytest.raises(ValueError, match="tgt_lang"):
        write_number_corpus(tmp_path, "en")


@pytest.mark.parametrize("sentence", [
    "quatre-vingt-dix-sept", "nine hundred and ninety-nine thousand, nine hundred and ninety-nine",
    "vingt et un mille", "zéro", "deux cents",
])
def test_split_join_round_trip(sentence):
    assert join_words(split_words(sentence)) == sentence


def test_split_words_keeps_compounds_and_separates_commas():
    assert split_words("quatre-vingts mille, un") == ["quatre-vingts", "mille", ",", "un"]


def test_word_tokenizer_round_trip_on_every_french_and_english_number_below_2000():
    for lang in ("en", "fr"):
        sentences = [number_words(n, lang) for n in range(2000)]
        tok = WordTokenizer.build(sentences)
        assert tok.itos[:4] == list(SPECIALS) and (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)
        assert len(tok) < 120  # a closed vocabulary of about a hundred words
        for s in sentences:
            ids = tok.encode(s)
            assert UNK not in ids
            assert tok.decode([BOS, *ids, EOS, PAD, PAD]) == s


def test_word_tokenizer_unknown_words_and_decoding_stops_at_end():
    tok = WordTokenizer.build(["un deux", "deux trois"])
    assert tok.encode("deux quatre") == [tok.stoi["deux"], UNK]
    assert tok.decode([tok.stoi["un"], EOS, tok.stoi["deux"]]) == "un"
    assert tokenizer_from_dict(tok.to_dict()).itos == tok.itos
    with pytest.raises(ValueError, match="special"):
        WordTokenizer(["a", "b"])


def test_bpe_splits_german_compounds_into_known_pieces_and_round_trips():
    train = split_numbers(3000, 1, 300, seed=0)
    sentences = [number_words(n, "de") for n in train["train"]]
    tok = BPETokenizer.train(sentences, vocab_size=200)
    assert tok.tokens([0, 1, 2, 3]) == list(SPECIALS)
    assert len(tok) <= 200
    # unseen test numbers: spelled from subwords, no <unk>, and decoded back exactly
    for n in train["test"]:
        s = number_words(n, "de")
        ids = tok.encode(s)
        assert UNK not in ids
        assert 1 < len(ids) < len(s)  # split into pieces, but fewer pieces than characters
        assert tok.decode([BOS, *ids, EOS, PAD]) == s
    pieces = tok.tokens(tok.encode("dreihundertvierundzwanzig"))
    assert "".join(pieces).lstrip("▁") == "dreihundertvierundzwanzig" and len(pieces) >= 2
    # saved and loaded through a plain dict, as in checkpoints
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode("siebenhunderttausendeinundsiebzig") == tok.encode("siebenhunderttausendeinundsiebzig")


def test_bpe_training_is_deterministic():
    sentences = [number_words(n, "de") for n in range(0, 5000, 7)]
    assert BPETokenizer.train(sentences, 150).to_dict() == BPETokenizer.train(sentences, 150).to_dict()


def test_tokenizer_from_dict_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="kind"):
        tokenizer_from_dict({"kind": "sentencepiece"})
    with pytest.raises(ValueError, match="saved tokenizer"):
        tokenizer_from_dict(["<pad>"])


@pytest.mark.slow
def test_training_is_deterministic_and_checkpoints_round_trip(tmp_path):
    """Same seed, same numbers: two trainings of a tiny number model agree exactly; the checkpoint translates alike."""
    from src.data.numbers import NumbersTask
    from src.recipes.numbers import train_numbers
    from src.recipes.translation import TranslationSettings, Translator
    from src.shared.checkpoint import load_checkpoint, save_checkpoint
    from src.shared.training import TrainingConfig
    from src.transformer.model import ModelConfig

    task = NumbersTask(lang="de", n_train=600, n_valid=20, n_test=30, limit=5000, blocks=False)
    settings = TranslationSettings(ModelConfig(N=1, d_model=32, d_ff=64, h=2), TrainingConfig(epochs=2, warmup=20),
                                   tgt_tokenizer="bpe", bpe_vocab=60, batch_size=64)
    a = train_numbers(task, settings, progress=False)
    b = train_numbers(task, settings, progress=False)
    assert [s["loss"] for s in a.history.steps] == [s["loss"] for s in b.history.steps]
    assert a.history.steps[-1]["loss"] < a.history.steps[0]["loss"]
    sources = [en for en, _ in task.pairs("test")]
    assert a.translate(sources) == b.translate(sources)
    ckpt = a.to_checkpoint()
    path = save_checkpoint(tmp_path / "de.pt", ckpt.model, ckpt.vocabs, ckpt.extra)
    again = Translator.from_checkpoint(load_checkpoint(path))
    assert again.translate(sources, beam_size=3) == a.translate(sources, beam_size=3)
    assert again.history.steps == a.history.steps and again.extra["task"]["lang"] == "de"


def test_number_training_stops_by_its_validation_exact_match(monkeypatch):
    """With `patience`, training ends after that many epochs in a row at `valid_target`."""
    from src.data.numbers import NumbersTask
    from src.recipes.numbers import train_numbers
    from src.recipes.translation import TranslationSettings, Translator
    from src.shared.training import TrainingConfig
    from src.transformer.model import ModelConfig

    scores = iter([0.5, 1.0, 0.9, 1.0, 1.0, 1.0])  # the rule must skip the lone 1.0
    scored = []

    def fake_evaluate(self, pairs, *args, **kwargs):
        scored.append(len(pairs))
        return {"exact_match": next(scores)}

    monkeypatch.setattr(Translator, "evaluate", fake_evaluate)
    task = NumbersTask("fr", n_train=300, n_valid=40, n_test=40, blocks=False)
    model = ModelConfig(N=1, d_model=16, d_ff=32, h=2)
    rule = TrainingConfig(epochs=6, warmup=20, patience=2, valid_target=0.95)
    stopped = train_numbers(task, TranslationSettings(model, rule, batch_size=30), progress=False)
    assert [r["valid_exact_match"] for r in stopped.history.epochs] == [0.5, 1.0, 0.9, 1.0, 1.0]
    assert scored == [40] * 5  # every validation sentence, once an epoch
    fixed = TranslationSettings(model, TrainingConfig(epochs=2, warmup=20), batch_size=30)
    fixed = train_numbers(task, fixed, progress=False)
    assert len(fixed.history.epochs) == 2 and "valid_exact_match" not in fixed.history.epochs[-1]


@pytest.mark.parametrize("bad", [{"patience": -1}, {"valid_target": 0.0}, {"valid_target": 1.5}])
def test_settings_refuse_a_stopping_rule_that_cannot_work(bad):
    from src.shared.training import TrainingConfig

    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainingConfig(**bad)
