"""Lesson 08 exercise: the self-critical (REINFORCE with a baseline) loss of Rennie et al., 2017.

The learner writes `scst_loss(log_probs, mask, rewards, baseline)`: for each sampled caption, its log-probability
(the sum of its words' log-probabilities, <pad> positions left out) weighted by how much better than the baseline
it scored; the loss is minus the mean over captions. Gradient must flow into the log-probabilities only: the
reward and the baseline are numbers the model is judged by, not functions it may change.

Shapes: B sampled captions, T their tokens.
"""
from __future__ import annotations

import torch

from ..checks import MISSING, Mistake, Part, checked
from ..scst import reinforce_loss

__all__ = ["PARTS", "scst_loss", "check_scst_loss"]

PARTS = {   # the points of each exercise's parts (captionlib.grading); a diagnosis naming a part loses its points
    "scst_loss": [Part("the gradient reaches log p", 1, r"no gradient reaches"),
                  Part("the sign and the baseline", 2, r"sign|baseline|advantage"),
                  Part("the mask and the means", 2, r"<pad>|mask|averaged over the words|summed over captions|mean over captions")],
}


scst_loss = reinforce_loss      # the exercise is captionlib.scst's own loss


def _cases():
    g = torch.Generator().manual_seed(0)
    out = []
    for B, T in ((4, 5), (3, 7), (1, 4)):
        log_probs = -torch.rand(B, T, generator=g) * 3                         # log-probabilities are negative
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T - 1 if T > 2 else T                                     # at least one padded caption
        mask = (torch.arange(T)[None] < lengths[:, None]).float()
        rewards, baseline = torch.rand(B, generator=g) * 2, torch.rand(B, generator=g)
        out.append((log_probs, mask, rewards, baseline))
    return out


def _parts(fn) -> str | None:
    """Captions built so that one part of the loss alone decides it; names the first part that is off."""
    one = lambda *rows: torch.tensor(rows, dtype=torch.float32)              # noqa: E731
    close = lambda a, b: torch.is_tensor(a) and a.dim() == 0 and abs(float(a) - b) < 1e-5   # noqa: E731
    # One caption, two words of log-probability -1 and -2 (and a padded third at -5), reward 3, baseline 1.
    lp, mask = one([-1.0, -2.0, -5.0]), one([1.0, 1.0, 0.0])
    got = fn(lp, mask, one(3.0), one(1.0))
    if not torch.is_tensor(got) or got.dim() != 0:
        shape = tuple(got.shape) if torch.is_tensor(got) else type(got).__name__
        return f"return one number, the mean over captions (a 0-dim tensor), not {shape}"
    want = 2.0 * 3.0                                                        # -(3 - 1) * (-1 - 2)
    if close(got, -want):
        return ("the sign is flipped: the loss is MINUS advantage x log p, so that minimising it makes a caption that "
                "beat the baseline more likely (gradient descent lowers the loss)")
    if close(got, (3.0 - 1.0) * 8.0) or close(got, -(3.0 - 1.0) * -8.0):
        return ("the <pad> positions count: multiply the log-probabilities by the mask before summing over the words "
                "(a caption's probability is the product over its own words only)")
    if close(got, (3.0 - 1.0) * 5.0):                                         # only the padded position counted
        return "the mask is inverted: it keeps the <pad> positions and drops the words. Multiply by mask, not 1 - mask"
    def table(lp, m, r, b):                                                      # what a (B, 1) x (B,) product gives
        return float(-((r - b)[:, None] * (lp * m).sum(1)[None, :]).mean())
    pairs = [(one([-1.0, -2.0], [-3.0, -1.0]), one([1.0, 1.0], [1.0, 0.0]), one(2.0, 0.0), one(1.0, 1.0)),
             (one([-0.5, -4.0], [-2.0, -1.0]), one([1.0, 1.0], [1.0, 1.0]), one(3.0, 1.0), one(0.5, 2.0))]
    if all(close(fn(*args), table(*args)) for args in pairs):
        return ("the advantage and the log-probabilities broadcast into a (B, B) table before the mean: one of them is "
                "(B, 1) (keepdim=True, or [:, None]); keep both (B,) so each caption is weighed by its own advantage")
    if close(got, 3.0 * 3.0) or close(got, -3.0 * -3.0):
        return "the baseline is not subtracted: weigh each caption by its reward minus the baseline, (r - b)"
    if close(got, 2.0 * 1.5) or close(got, 2.0 * 3.0 / 3):
        return ("the log-probabilities are averaged over the words (a mean over each caption's positions, or over every "
                "token of the batch, which is the same): a caption's log-probability is their sum over its real words, "
                "(log_probs * mask).sum(dim=1); the mean is over captions only")
    if not close(got, want):
        return f"one caption of words at log p -1 and -2, reward 3, baseline 1 must give -(3 - 1)(-1 - 2) = 6; yours is {float(got):.4g}"
    # Two captions: the loss is the mean over captions of their weighted log-probabilities.
    lp, mask = one([-1.0, 0.0], [-3.0, -1.0]), one([1.0, 0.0], [1.0, 1.0])
    got = fn(lp, mask, one(2.0, 0.0), one(1.0, 1.0))                        # advantages +1, -1: -(1*-1 + -1*-4)/2 = -1.5
    if close(got, -3.0):
        return "the loss is summed over captions: take their mean, so its size does not grow with the batch"
    return None


def _gradients(fn) -> str | None:
    """The gradient flows into the log-probabilities only."""
    log_probs, mask, rewards, baseline = (t.clone() for t in _cases()[0])
    log_probs.requires_grad_(True)
    rewards.requires_grad_(True)                                               # as if computed by something differentiable
    baseline.requires_grad_(True)
    loss = fn(log_probs, mask, rewards, baseline)
    got = torch.autograd.grad(loss, [log_probs, rewards, baseline], allow_unused=True) if loss.requires_grad else (None,) * 3
    if got[0] is None or not bool(got[0].abs().sum() > 0):
        return ("no gradient reaches the log-probabilities: the loss must be a function of them (not of .item() or "
                "detached values): it is what trains the model")
    if got[2] is not None and bool(got[2].abs().sum() > 0):
        return ("gradient flows into the baseline: it is a yardstick, not something to train through this loss. Detach "
                "the advantage: (rewards - baseline).detach()")
    if got[1] is not None and bool(got[1].abs().sum() > 0):
        return ("gradient flows into the rewards: REINFORCE differentiates log p only (the reward is a score of a "
                "sampled, non-differentiable caption). Detach the advantage: (rewards - baseline).detach()")
    return None


_RECIPE = {None: ("the recipe: advantage = (rewards - baseline).detach(); each caption's log p = (log_probs * mask)"
                  ".sum(dim=1); loss = -(advantage * log p).mean()")}


def check_scst_loss(fn=MISSING):
    mistakes = [
        Mistake("the sign is flipped: minimise -(r - b) log p, so that captions better than the baseline become likelier",
                lambda lp, m, r, b: -scst_loss(lp, m, r, b)),
        Mistake("the baseline is not subtracted: weigh each caption by r - b, not by r",
                lambda lp, m, r, b: scst_loss(lp, m, r, torch.zeros_like(b))),
        Mistake("the <pad> positions count: multiply the log-probabilities by the mask before summing",
                lambda lp, m, r, b: scst_loss(lp, torch.ones_like(m), r, b)),
    ]
    return checked("scst_loss", fn, scst_loss, _cases(), mistakes=mistakes, probes=[_parts], properties=[_gradients],
                   axes="", arg_axes={"log_probs": "BT", "mask": "BT", "rewards": "B", "baseline": "B"},
                   notes=[None, None, "with a batch of one caption (B = 1)"], recipe=_RECIPE)
