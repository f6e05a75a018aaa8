"""SimCLR's NT-Xent objective, shared by CLEL's latent encoder, the SimCLR baseline and EBCLR.

For 2n embeddings laid out as two views ``[v_1 ... v_n, v'_1 ... v'_n]`` each anchor's positive is its other
view and its negatives are the other 2n - 2 views, plus any ``extra_negatives`` (CLEL adds the EBM's latents
of the negative samples there)::

    L = 1/(2n) sum_a -log( exp(s(a, a+)/tau) / (exp(s(a, a+)/tau) + sum_{k != a, a+} exp(s(a, k)/tau)) )

with s the cosine similarity.
"""

from __future__ import annotations

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


def simclr_loss(encoder: torch.nn.Module, x: Tensor, augment, temperature: float,
                extra_negatives: Tensor | None = None) -> Tensor:
    """Two random views of every image of ``x`` through ``encoder``, scored with :func:`nt_xent`."""
    views = augment(torch.cat([x, x]))
    return nt_xent(encoder(views), temperature, extra_negatives)
