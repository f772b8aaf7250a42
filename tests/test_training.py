"""Batches and masks, the learning-rate schedule (equation 3), label smoothing and the training loop."""

from __future__ import annotations

import pytest
import torch

from src.shared.loss import LabelSmoothing, LossCompute
from src.shared.lr_scheduler import make_optimizer, make_scheduler, rate
from src.shared.callbacks import Run
from src.shared.training import Batch, TrainingConfig, run_epoch, train
from src.transformer import make_model


@pytest.mark.parametrize("step", [1, 100, 3999, 4000, 4001, 10_000, 100_000])
def test_rate_is_equation_3(step):
    d_model, warmup = 512, 4000
    expected = d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
    assert rate(step, d_model, 1.0, warmup) == pytest.approx(expected, rel=1e-12)


def test_rate_peaks_at_warmup_and_step_zero_is_valid():
    values = [rate(s, 512, 1.0, 4000) for s in range(0, 8000)]
    assert values[0] == values[1] > 0
    assert max(values) == values[4000] == pytest.approx(512**-0.5 * 4000**-0.5)


def test_scheduler_multiplies_base_lr_by_rate():
    model = torch.nn.Linear(2, 2)
    opt = make_optimizer(model)
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-9
    sched = make_scheduler(opt, model_size=64, factor=2.0, warmup=10)
    for update in range(1, 26):  # the paper counts updates from 1
        assert opt.param_groups[0]["lr"] == pytest.approx(rate(update, 64, 2.0, 10))
        opt.step()
        sched.step()


def test_optimizer_update_is_adams_formula_with_the_papers_constants():
    """Two updates of the fused Adam against m_t, v_t and the bias-corrected step written out by hand."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(model, base_lr=0.01)
    beta1, beta2, eps, lr = 0.9, 0.98, 1e-9, 0.01
    theta = [p.detach().double().clone() for p in model.parameters()]
    m = [torch.zeros_like(t) for t in theta]
    v = [torch.zeros_like(t) for t in theta]
    for t in (1, 2):
        grads = [torch.randn_like(p) for p in model.parameters()]
        for p, g in zip(model.parameters(), grads):
            p.grad = g.clone()
        opt.step()
        for i, g in enumerate(grads):
            g = g.double()
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g**2
            m_hat, v_hat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
            theta[i] = theta[i] - lr * m_hat / (v_hat.sqrt() + eps)
    for p, expected in zip(model.parameters(), theta):
        torch.testing.assert_close(p.detach().double(), expected, rtol=1e-5, atol=1e-6)


def test_optimizer_fused_or_foreach_compute_the_same_update():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    fused, loop = make_optimizer(a, base_lr=0.01), make_optimizer(b, base_lr=0.01, fused=False)
    assert fused.defaults["fused"] and not loop.defaults["fused"] and loop.defaults["foreach"]
    for _ in range(3):
        grads = [torch.randn_like(p) for p in a.parameters()]
        for p, q, g in zip(a.parameters(), b.parameters(), grads):
            p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        loop.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_label_smoothing_distribution():
    crit = LabelSmoothing(5, padding_idx=0, smoothing=0.4)
    x = torch.log_softmax(torch.randn(4, 5), dim=-1)
    target = torch.tensor([2, 1, 0, 3])
    loss = crit(x, target)
    d = crit.true_dist
    # true token: 1 - smoothing; padding column: 0; the rest: smoothing / (size - 2)
    expected = torch.tensor([
        [0, 0.4 / 3, 0.6, 0.4 / 3, 0.4 / 3],
        [0, 0.6, 0.4 / 3, 0.4 / 3, 0.4 / 3],
        [0, 0, 0, 0, 0],  # padding target: the row counts for nothing
        [0, 0.4 / 3, 0.4 / 3, 0.6, 0.4 / 3],
    ])
    torch.testing.assert_close(d, expected)
    kl = (expected * (expected.clamp_min(1e-30).log() - x)).sum()
    torch.testing.assert_close(loss, kl)


def test_label_smoothing_with_zero_probabilities_is_finite():
    """Predictions of exactly 0 on tokens the target gives no mass: no nan (the seed's example)."""
    crit = LabelSmoothing(5, padding_idx=0, smoothing=0.0)
    p = torch.tensor([[0, 0.2, 0.7, 0.1, 0]])
    loss = crit(p.log(), torch.tensor([2]))
    assert loss.item() == pytest.approx(-torch.log(torch.tensor(0.7)).item())
    x = p.log().requires_grad_()
    crit(x, torch.tensor([2])).backward()
    assert torch.isfinite(x.grad).all()


def test_label_smoothing_equals_kl_div_loss():
    crit = LabelSmoothing(7, padding_idx=0, smoothing=0.2)
    x = torch.randn(6, 7).log_softmax(-1)
    loss = crit(x, torch.tensor([1, 2, 0, 6, 3, 3]))
    torch.testing.assert_close(loss, torch.nn.KLDivLoss(reduction="sum")(x, crit.true_dist))


def test_label_smoothing_zero_is_cross_entropy():
    crit = LabelSmoothing(6, padding_idx=None, smoothing=0.0)
    logits = torch.randn(5, 6)
    target = torch.tensor([0, 1, 2, 3, 5])
    loss = crit(logits.log_softmax(-1), target)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, target, reduction="sum"))


def test_batch_shifts_target_and_builds_masks():
    src = torch.tensor([[1, 5, 6, 0], [1, 7, 0, 0]])
    tgt = torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]])
    b = Batch(src, tgt, pad=0)
    assert torch.equal(b.tgt, tgt[:, :-1]) and torch.equal(b.tgt_y, tgt[:, 1:])
    assert torch.equal(b.src_mask, torch.tensor([[[True, True, True, False]], [[True, True, False, False]]]))
    assert b.tgt_mask.shape == (2, 3, 3)
    assert torch.equal(b.tgt_mask[1], torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]]).bool())
    assert b.ntokens == 5  # [5, 6, 2] and [7, 2]


def test_run_epoch_eval_does_not_change_weights_and_train_does():
    model = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2, dropout=0.0)
    data = torch.randint(2, 11, (8, 6))
    data[:, 0] = 1
    batches = [Batch(data, data, pad=0)]
    lc = LossCompute(model.generator, LabelSmoothing(11, 0, 0.0))
    before = [p.clone() for p in model.parameters()]
    loss = run_epoch(batches, model, lc)
    assert loss > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    opt = make_optimizer(model)
    run = Run(model, opt, make_scheduler(opt, 16, 1.0, 10), batches, 1)
    run_epoch(batches, model, lc, run)
    assert run.state.step == 1 and run.state.tokens == 8 * 5
    assert [r["step"] for r in run.history.steps] == [1]
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_gradient_accumulation_steps_every_accum_iter_batches():
    model = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2)
    data = torch.randint(2, 11, (4, 5))
    batches = [Batch(data, data)] * 6
    lc = LossCompute(model.generator, LabelSmoothing(11, 0, 0.1))
    opt = make_optimizer(model)
    run = Run(model, opt, make_scheduler(opt, 16), batches, 1)
    run_epoch(batches, model, lc, run, accum_iter=3)
    assert run.state.step == 2 and run.state.samples == 24


def test_train_returns_a_history_and_loss_falls():
    torch.manual_seed(0)
    model = make_model(11, 11, N=1, d_model=32, d_ff=64, h=4, dropout=0.0)
    data = torch.randint(2, 11, (32, 6))
    data[:, 0] = 1
    batches = [Batch(data, data)]
    history = train(model, batches, TrainingConfig(epochs=30, warmup=10, factor=1.0), eval_batches=batches)
    assert len(history.steps) == 30 and len(history.epochs) == 30
    assert history.epochs[-1]["eval_loss"] < 0.5 * history.epochs[0]["eval_loss"]
    assert [r["step"] for r in history.steps] == list(range(1, 31))
    assert history.steps[0]["lr"] == pytest.approx(rate(1, 32, 1.0, 10))
    # afterwards the explicit attention path is back: weights are kept for charts
    b = Batch(data, data)
    model(b.src, b.tgt, b.src_mask, b.tgt_mask)
    assert model.encoder.layers[0].self_attn.attn is not None


def test_training_is_deterministic():
    def run():
        torch.manual_seed(3)
        model = make_model(11, 11, N=1, d_model=16, d_ff=32, h=2, dropout=0.1)
        data = torch.randint(2, 11, (16, 6))
        return [r["loss"] for r in train(model, [Batch(data, data)], TrainingConfig(epochs=5, warmup=5)).steps]

    assert run() == run()
