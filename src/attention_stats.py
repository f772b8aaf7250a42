"""Where attention heads look, tallied over a data set: the share of rows whose largest
weight falls on a chosen key, and which source words a number word aligns with.

A head is described by tallies, not by one heatmap: for every query row of every
sentence, does the row's largest weight (its argmax) fall on a key that a rule picks,
such as the previous token, the end token, or the source words aligned with the token
the decoder produces? `argmax_share` counts that per head.

The alignment of number words follows the structure that English, French and German
share below a million: [thousands block] thousand [units block], where a block is
[hundreds digit] hundred [tens and units]. Each word (or German piece) gets the roles of
the parts it spells (`english_roles`, `french_roles`, `german_roles`); a target token
aligns with the English words of the same roles (`aligned_positions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from src import checks
from src.data.parallel import pad_sequences
from src.data.tokenizer import BOS, EOS, PAD
from src.shared.batch import Batch

KINDS = ("encoder self-attention", "decoder self-attention", "decoder source attention")

# the parts of a number below a million; "k." is the thousands block, "u." the units
PARTS = ("digit", "hundred", "tens")  # hundreds digit, the word "hundred", tens/units
THOUSAND, END = "thousand", "end"
# a marker word stands for the parts it implies when a language leaves them out:
# "cent" is "one hundred", "mille" is "one thousand"
IMPLIES = {
    "k.hundred": {"k.digit"},
    "u.hundred": {"u.digit"},
    THOUSAND: {"k.digit", "k.hundred", "k.tens"},
}


def stacked_attention(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights of the model's last forward pass, per kind of attention:
    (layers, batch, heads, queries, keys). Needs fused attention off.
    """
    found = {
        KINDS[0]: [layer.self_attn.attn for layer in model.encoder.layers],
        KINDS[1]: [layer.self_attn.attn for layer in model.decoder.layers],
        KINDS[2]: [layer.src_attn.attn for layer in model.decoder.layers],
    }
    for kind, weights in found.items():
        if any(w is None for w in weights):
            raise ValueError(
                f"{kind}: a layer has no attention weights (.attn is None); run a "
                "forward pass with model.set_fused_attention(False) first"
            )
    return {kind: torch.stack(weights) for kind, weights in found.items()}


def teacher_forced(
    translator, pairs: Sequence[tuple[str, str]]
) -> tuple[Batch, torch.Tensor, dict[str, torch.Tensor]]:
    """All `pairs` in one batch through the translator's model, teacher-forced: the
    batch, the predicted ids (batch, tgt_len) and `stacked_attention`.
    """
    model = translator.model.eval()
    model.set_fused_attention(False)  # the explicit softmax keeps .attn
    src_tok, tgt_tok = translator.src_tok, translator.tgt_tok
    src = pad_sequences([src_tok.encode(s) + [EOS] for s, _ in pairs])
    tgt = pad_sequences([[BOS] + tgt_tok.encode(t) + [EOS] for _, t in pairs])
    batch = Batch(src, tgt, pad=PAD)  # decoder input: tgt[:, :-1]
    with torch.no_grad():
        out = model(batch.src, batch.tgt, batch.src_mask, batch.tgt_mask)
    predicted = model.generator(out).argmax(dim=-1)  # (batch, tgt_len)
    return batch, predicted, stacked_attention(model)


def _check(attn: torch.Tensor, target: torch.Tensor, rows: torch.Tensor) -> None:
    if attn.dim() != 4:
        raise ValueError(
            f"attn must be (batch, heads, queries, keys), got shape {tuple(attn.shape)}"
        )
    b, _, q, k = attn.shape
    if tuple(target.shape) != (b, q, k):
        raise ValueError(
            f"target must be (batch, queries, keys) = {(b, q, k)}, got "
            f"{tuple(target.shape)}"
        )
    if tuple(rows.shape) != (b, q):
        raise ValueError(
            f"rows must be (batch, queries) = {(b, q)}, got {tuple(rows.shape)}"
        )
    if not rows.any():
        raise ValueError("rows selects no query row: there is nothing to count")


def argmax_share(
    attn: torch.Tensor, target: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """Per head, the share of the query rows selected by `rows` whose largest weight
    falls on a key that `target` marks: (heads,).

    attn: (batch, heads, queries, keys); target: (batch, queries, keys) bool;
    rows: (batch, queries) bool.
    """
    _check(attn, target, rows)
    top = attn.argmax(dim=-1)  # (batch, heads, queries)
    marks = target.unsqueeze(1).expand(-1, attn.size(1), -1, -1)  # (b, h, q, k)
    hit = marks.gather(-1, top.unsqueeze(-1)).squeeze(-1)  # (batch, heads, queries)
    counted = rows.unsqueeze(1).expand_as(hit)  # (batch, heads, queries)
    return (hit & counted).sum(dim=(0, 2)) / counted.sum(dim=(0, 2))


def weight_share(
    attn: torch.Tensor, target: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """Per head, the mean weight that the rows selected by `rows` put on the keys that
    `target` marks: (heads,).
    """
    _check(attn, target, rows)
    on_target = (attn * target.unsqueeze(1)).sum(dim=-1)  # (batch, heads, queries)
    counted = rows.unsqueeze(1).float()  # (batch, 1, queries)
    return (on_target * counted).sum(dim=(0, 2)) / counted.sum()


def largest_weight(attn: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Per head, the mean of the largest weight of the rows selected by `rows`: near 1
    for a head that looks at one key, 1 / (keys) for one that spreads evenly.
    """
    everywhere = torch.ones(attn.shape[:1] + attn.shape[2:], dtype=torch.bool)
    _check(attn, everywhere, rows)
    top = attn.max(dim=-1).values  # (batch, heads, queries)
    counted = rows.unsqueeze(1).float()  # (batch, 1, queries)
    return (top * counted).sum(dim=(0, 2)) / counted.sum()


def relative_mask(lengths: Sequence[int], size: int, offset: int) -> torch.Tensor:
    """(batch, size, size) bool: True where key = query + offset and both lie within
    the sequence's length (offset -1: the previous token, 0: the token itself).
    """
    q = torch.arange(size).unsqueeze(-1)  # (size, 1)
    k = torch.arange(size).unsqueeze(0)  # (1, size)
    n = torch.tensor(list(lengths)).view(-1, 1, 1)  # (batch, 1, 1)
    return (k == q + offset) & (q < n) & (k < n) & (k >= 0)  # (batch, size, size)


def _block_parts(words: Sequence[str], hundred: set[str], block: str) -> list[str]:
    """The roles of one block's words: before the hundred marker the digit, the marker,
    after it the tens and units."""
    at = next((i for i, w in enumerate(words) if w in hundred), None)
    if at is None:
        return [f"{block}.tens"] * len(words)
    parts = ["digit"] * at + ["hundred"] + ["tens"] * (len(words) - at - 1)
    return [f"{block}.{p}" for p in parts]


def _word_roles(
    words: Sequence[str], thousand: set[str], hundred: set[str], glue: set[str]
) -> list[frozenset[str]]:
    at = next((i for i, w in enumerate(words) if w in thousand), None)
    kept = [(i, w) for i, w in enumerate(words) if w not in glue]
    roles: list[frozenset[str]] = [frozenset({w}) for w in words]  # glue: itself
    before = [(i, w) for i, w in kept if at is not None and i < at]
    after = [(i, w) for i, w in kept if at is None or i > at]
    for block, part in (("k", before), ("u", after)):
        for (i, _), role in zip(
            part, _block_parts([w for _, w in part], hundred, block), strict=True
        ):
            roles[i] = frozenset({role})
    if at is not None:
        roles[at] = frozenset({THOUSAND})
    return roles


def english_roles(words: Sequence[str]) -> list[frozenset[str]]:
    """The role of each English word: ['five', 'hundred', 'and', 'five', 'thousand']
    -> k.digit, k.hundred, and, k.tens, thousand. 'and' and ',' keep their own role.
    """
    return _word_roles(words, {"thousand"}, {"hundred"}, {"and", ","})


def french_roles(words: Sequence[str]) -> list[frozenset[str]]:
    """The role of each French word: ['cinq', 'cent', 'cinq', 'mille'] -> k.digit,
    k.hundred, k.tens, thousand; 'soixante et un' is three words of u.tens.
    """
    return _word_roles(words, {"mille"}, {"cent", "cents"}, set())


def german_roles(pieces: Sequence[str]) -> list[frozenset[str]]:
    """The roles of each BPE piece of a German number, from the roles of its
    characters: 'tausenddreihundert' -> {thousand, u.digit, u.hundred}. The word-start
    mark '▁' has no role; a piece of it alone gets none.
    """
    text = "".join(p.replace("▁", "") for p in pieces)
    chars: list[str] = []
    at = text.find("tausend")
    blocks = [("u", text)] if at < 0 else [("k", text[:at]), ("u", text[at + 7 :])]
    for block, part in blocks:
        h = part.find("hundert")
        if h < 0:
            chars += [f"{block}.tens"] * len(part)
        else:
            rest = len(part) - h - 7
            chars += [f"{block}.digit"] * h + [f"{block}.hundred"] * 7
            chars += [f"{block}.tens"] * rest
        if block == "k":
            chars += [THOUSAND] * 7
    roles, start = [], 0
    for piece in pieces:
        n = len(piece.replace("▁", ""))
        roles.append(frozenset(chars[start : start + n]))
        start += n
    return roles


def aligned_positions(
    src_roles: Sequence[frozenset[str]], tgt_roles: Sequence[frozenset[str]]
) -> list[list[int]]:
    """For each target token, the source positions it aligns with: the English words
    that share a role with it, and, for a marker that stands for parts the target
    leaves out ('cent' = 'one hundred'), the English words of those parts.
    """
    in_target = set().union(*tgt_roles) if tgt_roles else set()
    out = []
    for roles in tgt_roles:
        wanted = set(roles)
        for role in roles:
            wanted |= IMPLIES.get(role, set()) - in_target
        out.append([i for i, r in enumerate(src_roles) if r & wanted])
    return out


def source_targets(
    batch: Batch,
    predicted: torch.Tensor,
    src_roles: Sequence[Sequence[frozenset[str]]],
    tgt_roles: Sequence[Sequence[frozenset[str]]],
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """What each row of decoder source attention is tallied against, as (keys, rows)
    for `tally`: the source words aligned with the token the row produces, those
    aligned with the token it reads, and the source's </s>. Counted rows: those that
    predict the reference token (and have an aligned word). Roles include </s>.
    """
    queries, keys = batch.tgt.size(1), batch.src.size(1)
    aligned = [aligned_positions(s, t) for s, t in zip(src_roles, tgt_roles)]
    produced = positions_mask(aligned, queries, keys)  # row t produces tgt_y[t]
    read = positions_mask([[[], *a[:-1]] for a in aligned], queries, keys)
    ends = [[[len(s) - 1]] * len(t) for s, t in zip(src_roles, tgt_roles)]
    right = (batch.tgt_y != PAD) & (predicted == batch.tgt_y)  # (batch, queries)
    return {
        "the word it produces": (produced, right & produced.any(dim=-1)),
        "the word it reads": (read, right & read.any(dim=-1)),
        "</s>": (positions_mask(ends, queries, keys), right),
    }


def positions_mask(
    positions: Sequence[Sequence[Sequence[int]]], queries: int, keys: int
) -> torch.Tensor:
    """(batch, queries, keys) bool from, per sentence and query, a list of key
    positions: mask[b, q, k] is True when k is in positions[b][q].
    """
    checks.positive_int("queries", queries)
    checks.positive_int("keys", keys)
    mask = torch.zeros(len(positions), queries, keys, dtype=torch.bool)
    for b, sentence in enumerate(positions):
        if len(sentence) > queries:
            raise ValueError(
                f"sentence {b} has {len(sentence)} query positions, more than "
                f"queries = {queries}"
            )
        for q, ks in enumerate(sentence):
            if any(not 0 <= k < keys for k in ks):
                raise ValueError(
                    f"sentence {b}, query {q}: a key position outside 0..{keys - 1}"
                )
            mask[b, q, list(ks)] = True
    return mask


def chance_share(
    target: torch.Tensor, allowed: torch.Tensor, rows: torch.Tensor
) -> float:
    """The share `argmax_share` would give a head that picked one of the keys it may
    see (`allowed`, (batch, queries, keys)) at random: the mean over `rows` of the
    fraction of allowed keys that `target` marks.
    """
    hits = (target & allowed).sum(dim=-1) / allowed.sum(dim=-1)  # (batch, queries)
    return hits[rows].mean().item()


def tally(
    attn: torch.Tensor,
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    rows: torch.Tensor,
) -> pd.DataFrame:
    """One row per (layer, head) of `attn` (layers, batch, heads, queries, keys), one
    column per named (target, rows): the `argmax_share` of the head; and the column
    "largest weight", the head's `largest_weight` over `rows`.
    """
    layers, _, heads = attn.shape[:3]
    table = pd.DataFrame(
        {"layer": [i // heads for i in range(layers * heads)],
         "head": [i % heads for i in range(layers * heads)]}
    )  # fmt: skip
    for name, (target, counted) in targets.items():
        shares = [argmax_share(a, target, counted) for a in attn]  # each (heads,)
        table[name] = torch.cat(shares).tolist()
    largest = [largest_weight(a, rows) for a in attn]  # each (heads,)
    table["largest weight"] = torch.cat(largest).tolist()
    return table
