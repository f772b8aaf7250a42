"""The ablation lab: the paper's choices switched off one at a time on the English ->
French number task, each run trained for the same fixed budget and scored on the test
split.

A cell of the lab is one setting (the baseline or one ablation) and one seed. Its run
records the loss of every step, the validation loss after every epoch, greedy and beam
exact match and BLEU on the test split, the same for the average of its last
checkpoints (section 6.1), and how peaked the encoder's attention is. `src.ablations`
runs the grid, each cell in a process of its own.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from src import checks
from src.data.numbers import NumbersTask
from src.data.parallel import encode_pairs, make_batches
from src.data.tokenizer import PAD
from src.recipes.numbers import number_settings, train_numbers
from src.recipes.translation import TranslationSettings, build_tokenizer
from src.shared.averaging import KeepLast
from src.shared.callbacks import Callback, Run
from src.shared.loss import LabelSmoothing, LossCompute
from src.shared.training import run_epoch


@dataclass(frozen=True)
class Ablation:
    """One of the paper's choices, switched: the fields of the settings' `part`
    ('model' or 'training') that `changes` names, set to its values.
    """

    part: str
    changes: dict[str, object]
    paper: str  # where the paper makes the choice


# The lab's data: the book's English -> French numbers, 160 batches of 128 pairs a epoch
LAB_TASK = NumbersTask(lang="fr", n_train=20_480)
# a fixed budget, the same for every cell: 3 epochs of 160 steps, no stopping rule
LAB_EPOCHS = 3
# checkpoint averaging (section 6.1): the last KEEP checkpoints, one every EVERY steps
KEEP, EVERY = 5, 20
BEAM = 4  # beam size of section 6.1, against greedy decoding (beam 1)
BASELINE = "baseline"
ABLATIONS = {
    "no-scaling": Ablation("model", {"scale_scores": False}, "section 3.2.1"),
    "no-positions": Ablation("model", {"positional": False}, "section 3.5"),
    # equation (3) with warmup 1: the rate starts at its peak, sqrt(400) = 20 times the
    # baseline's
    "no-warmup": Ablation("training", {"warmup": 1}, "section 5.3"),
    # ... or starts at the baseline's peak rate (factor 0.3 / sqrt(400)), then decays
    "no-warmup-same-peak": Ablation(
        "training", {"warmup": 1, "factor": 0.015}, "section 5.3"
    ),
    "no-smoothing": Ablation("training", {"smoothing": 0.0}, "section 5.4"),
    "post-norm": Ablation("model", {"norm_first": False}, "section 3.1"),
    "shared-embeddings": Ablation("model", {"share_embeddings": True}, "section 3.4"),
}
CONFIGS = (BASELINE, *ABLATIONS)


def baseline_settings(seed: int = 0) -> TranslationSettings:
    """The book's en->fr number recipe for a fixed budget of `LAB_EPOCHS` epochs, with
    the paper's label smoothing (0.1; the number recipe trains without).
    """
    s = number_settings("fr")
    training = dataclasses.replace(
        s.training, epochs=LAB_EPOCHS, patience=0, smoothing=0.1
    )
    return dataclasses.replace(s, training=training, seed=seed)


def lab_settings(config: str, seed: int = 0) -> TranslationSettings:
    """The baseline, or the baseline with the change of the ablation `config`."""
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {', '.join(CONFIGS)}; got {config!r}")
    settings = baseline_settings(seed)
    if config == BASELINE:
        return settings
    a = ABLATIONS[config]
    part = dataclasses.replace(getattr(settings, a.part), **a.changes)
    return dataclasses.replace(settings, **{a.part: part})


class HeldOutLoss(Callback):
    """Cross-entropy per target token of held-out batches (no smoothing, so every cell
    measures the same thing), after every `every` steps and at the start.
    """

    def __init__(self, batches: Sequence, every: int) -> None:
        self.batches = list(batches)
        self.every = checks.positive_int("every", every)
        self.rows: list[dict] = []

    def measure(self, run: Run) -> None:
        model = run.core
        was_training = model.training
        model.eval()
        vocab = model.generator.proj.out_features
        loss = LossCompute(model.generator, LabelSmoothing(vocab, PAD, 0.0))
        with torch.no_grad():
            nll = run_epoch(self.batches, model, loss)
        self.rows.append({"step": run.state.step, "valid_nll": nll})
        model.train(was_training)

    def on_train_start(self, run: Run) -> None:
        self.measure(run)

    def on_update(self, run: Run, done: int, totals: tuple[float, int]) -> None:
        if run.state.step % self.every == 0:
            self.measure(run)


def tokenizers(pairs: Sequence[tuple[str, str]], settings: TranslationSettings):
    """The tokenizers `train_translation` builds for `settings` on these pairs."""
    s = settings
    if s.model.share_embeddings:
        joint = build_tokenizer(
            s.src_tokenizer, [x for p in pairs for x in p], s.bpe_vocab
        )
        return joint, joint
    src = build_tokenizer(s.src_tokenizer, [a for a, _ in pairs], s.bpe_vocab)
    tgt = build_tokenizer(s.tgt_tokenizer, [b for _, b in pairs], s.bpe_vocab)
    return src, tgt


@torch.no_grad()
def attention_peakedness(model: nn.Module, src: torch.Tensor) -> dict[str, float]:
    """How peaked the encoder self-attention is on source ids (batch, len): the mean
    entropy of a query's weights (nats), the mean largest weight, and the share of
    queries whose largest weight exceeds 0.99 (a saturated softmax).
    """
    model.eval()
    model.set_fused_attention(False)  # keep the weights
    src_mask = (src != PAD).unsqueeze(-2)  # (batch, 1, len)
    model.encode(src, src_mask)
    real = (src != PAD)[:, None, :]  # (batch, 1, queries): queries that are tokens
    entropy, top, saturated, n = 0.0, 0.0, 0.0, 0
    for layer in model.encoder.layers:
        p = layer.self_attn.attn  # (batch, h, queries, keys)
        ent = -(p * p.clamp_min(1e-12).log()).sum(-1)  # (batch, h, queries)
        peak = p.max(-1).values  # (batch, h, queries)
        keep = real.expand_as(ent)
        entropy += float(ent[keep].sum())
        top += float(peak[keep].sum())
        saturated += float((peak[keep] > 0.99).sum())
        n += int(keep.sum())
    return {"entropy": entropy / n, "max_weight": top / n, "saturated": saturated / n}


def run_cell(config: str, seed: int, task: NumbersTask = LAB_TASK) -> dict:
    """Train one cell of the lab and score it: greedy and beam on the test split, the
    averaged checkpoint, the losses, and the encoder attention's peakedness.
    """
    settings = lab_settings(config, seed)
    train_pairs, valid_pairs = task.pairs("train"), task.pairs("valid")
    src_tok, tgt_tok = tokenizers(train_pairs, settings)
    valid = encode_pairs(valid_pairs, src_tok, tgt_tok)
    held_out = HeldOutLoss(make_batches(valid, 256, shuffle=False), every=EVERY * 2)
    keep = KeepLast(KEEP, every=EVERY)
    start = time.perf_counter()
    translator = train_numbers(task, settings, False, callbacks=[keep, held_out])
    seconds = time.perf_counter() - start
    if translator.src_tok.to_dict() != src_tok.to_dict():
        raise RuntimeError("the held-out loss was measured with other tokenizers")
    test = task.pairs("test")
    probe = translator.encode_sources([s for s, _ in test[:200]])
    init = lab_settings(config, seed).model.with_vocab(len(src_tok), len(tgt_tok))
    torch.manual_seed(seed)  # the model train_translation starts from
    result = {
        "config": config,
        "seed": seed,
        "train_seconds": seconds,
        "steps": [row["loss"] for row in translator.history.steps],
        "epochs": translator.history.epochs,
        "held_out": held_out.rows,
        "test": translator.evaluate(test),
        "beam": translator.evaluate(test, beam_size=BEAM),
        "attention": attention_peakedness(translator.model, probe),
        "attention_at_init": attention_peakedness(init.build(), probe),
        "averaged_steps": list(keep.steps),
    }
    translator.model.load_state_dict(keep.averaged())
    result["averaged"] = translator.evaluate(test)
    return result


def lab_recipe() -> dict:
    """What every cell shares, for the results file."""
    return {
        "task": dataclasses.asdict(LAB_TASK),
        "baseline": baseline_settings().to_dict(),
        "epochs": LAB_EPOCHS,
        "keep": KEEP,
        "every": EVERY,
        "beam": BEAM,
        "ablations": {k: dataclasses.asdict(a) for k, a in ABLATIONS.items()},
    }
