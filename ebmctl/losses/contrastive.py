"""SimCLR's NT-Xent objective, shared by CLEL's latent encoder, the SimCLR baseline and EBCLR.

For 2n embeddings laid out as two views ``[v_1 ... v_n, v'_1 ... v'_n]`` each anchor's positive is its other
view and its negatives are the other 2n - 2 views, plus any ``extra_negatives`` (CLEL adds the EBM's latents
of the negative samples there)::

    L = 1/(2n) sum_a -log( exp(s(a, a+)/tau) / (exp(s(a, a+)/tau) + sum_{k != a, a+} exp(s(a, k)/tau)) )

with s the cosine similarity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(views: Tensor, temperature: float, extra_negatives: Tensor | None = None) -> Tensor:
    """Mean NT-Xent loss of ``views`` (2n, d), rows i and i + n being two views of one image.

    ``extra_negatives`` (m, d) join every anchor's negatives (they are not anchors themselves). Inputs
    need not be normalised."""
    if views.dim() != 2 or views.shape[0] % 2 or views.shape[0] < 2:
        raise ValueError(f"views must be (2n, d) with n >= 1, got {tuple(views.shape)}")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    n = views.shape[0] // 2
    z = F.normalize(views, dim=1)
    keys = z if extra_negatives is None else torch.cat([z, F.normalize(extra_negatives, dim=1)])
    logits = z @ keys.T / temperature
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[:, : 2 * n].fill_diagonal_(True)
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(views.device)
    return F.cross_entropy(logits, targets)


def simclr_loss(encoder: Callable[[Tensor], Tensor], x: Tensor, augment, temperature: float,
                extra_negatives: Tensor | None = None, gather: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Two random views of every image of ``x`` through ``encoder``, scored with :func:`nt_xent`.

    ``gather`` stacks each view's embeddings over every data-parallel process first, so that the loss is the
    one of the global batch."""
    views = encoder(augment(torch.cat([x, x])))
    if gather is not None:
        first, second = views.chunk(2)
        views = torch.cat([gather(first), gather(second)])
    return nt_xent(views, temperature, extra_negatives)


def distance_logits(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """EBCLR's similarity of every row of ``a`` to every row of ``b``: -||a/|a| - b/|b|||^2 / tau, (n, m)."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    return -(a[:, None, :] - b[None, :, :]).pow(2).sum(dim=2) / temperature


def ebclr_log_density(z: Tensor, keys: Tensor, temperature: float) -> Tensor:
    """log q(v) up to a constant: logsumexp_m -||z - z'_m||^2 / tau over the second views ``keys`` (eq. 20).

    The energy of EBCLR's marginal EBM is its negative, E(v) = -log sum_m exp(-||z - z'_m||^2 / tau)."""
    return torch.logsumexp(distance_logits(z, keys, temperature), dim=1)


def ebclr_loss(
    z1: Tensor, z2: Tensor, z_neg: Tensor, *, temperature: float, lmda1: float, lmda2: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """The EBCLR objective (eq. 11 with the released code's regulariser) to minimise.

    ``z1``, ``z2`` are the unnormalised projections of two views of a batch, ``z_neg`` those of the SGLD
    samples. The discriminative term is NT-Xent with the distance similarity, which equals cosine NT-Xent at
    temperature tau/2 (the constant -2/tau cancels in the softmax). The generative term is

        -mean log q(v1) + mean log q(v-) + lmda1 (sum ||z1||^2 + sum ||z-||^2)

    with q from :func:`ebclr_log_density` against the second views (gradients flow into them too, as in the
    released code); the loss is SimCLR + lmda2 * generative.
    """
    log_pos = ebclr_log_density(z1, z2, temperature)
    log_neg = ebclr_log_density(z_neg, z2, temperature)
    generative = -log_pos.mean() + log_neg.mean() + lmda1 * (z1.pow(2).sum() + z_neg.pow(2).sum())
    discriminative = nt_xent(torch.cat([z1, z2]), temperature / 2)
    loss = discriminative + lmda2 * generative
    return loss, {"discriminative": discriminative.detach(), "generative": generative.detach(),
                  "log_q_pos": log_pos.detach().mean(), "log_q_neg": log_neg.detach().mean()}
