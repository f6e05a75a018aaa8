"""Training throughput per method: ebmctl's training step against the loop the released code writes.

Every preset is built exactly as ``ebmctl train`` builds it (``resolve_spec`` for the spec, ``seed_everything``,
then ``ebmctl.services.train.Trainer`` for the dataset and the method, and the Trainer's batch stream and
``to_float`` for the batches), and ``N`` calls of ``method.train_step(x, y)`` are timed after a warm-up. By
default every preset on embedded data (no download) is run, except the Hat EBM refine/retrofit presets, which
stand on a generator trained by another run.

For the methods trained with Langevin chains (igebm, icd, clel, cebm, ebclr and Hat synthesis) a reference
iteration is timed on the same net object and the same batch, interleaved with ebmctl's (the two alternate
which goes first), so that their ratio holds under machine load. It re-derives the released training loop:
parameters keep ``requires_grad`` while the chain runs, every update is out of place, a new graph is built at
every step, and the inputs are plain NCHW tensors. It runs the same number of Langevin steps with the run's
step size, noise, gradient clamp and pixel clamp, the same loss, and an optimiser step with its own optimiser
(the spec's kind, learning rate and betas) and, where the spec keeps one, its own EMA copy. Both sides draw
their chains, augmentations and data views through the method's own buffer and augmentation, so that the
comparison is of the training step itself. Per method:

- igebm: the chain as ICD's ``gen_image`` writes it (noise, gradient step with IGEBM's gradient clamp, pixel
  clamp) without the KL tail (the IGEBM release is TensorFlow; ICD's is its PyTorch successor), and the CD
  loss with its l2 regulariser.
- icd: yilundu/improved_contrastive_divergence ``gen_image``: noise added first (``im_noise.normal_()`` on one
  tensor, as released), gradient step, clamp; at the last step the gradient of the whole batch is taken and
  then, on the first ``kl_chains`` chains, again with ``create_graph=True`` for the KL term; loss with the
  KL term under ``model.requires_grad_(False)`` and the repel term as a broadcast ``torch.norm`` against 100
  buffer samples; gradient-norm clipping, Adam, EMA.
- clel: hankook/CLEL ``sgld`` (gradient step, then fresh noise, clamp, ``clone().detach()``) on
  ``E = |f|^2 / 2`` computed from the net's (f, latent) pair; the EBM and latent-encoder losses summed,
  one backward, Adam for the EBM and SGD for the encoder.
- cebm: hao-w/cebm ``SGLD_Sampler.sample`` (gradient step and noise in one out-of-place expression) and
  ``Train_EBM.loss``.
- ebclr: 1202kbs/EBCLR ``MSGLD`` (``log_pdf(...).sum().backward()``, which also fills the parameters'
  ``.grad`` at every step, then ``out.data = ...`` and ``out.grad.zero_()``), the distance NT-Xent and the
  generative term.
- hat (synthesis): a PyTorch transcription of point0bar1/hat-ebm's TensorFlow ``langevin_update`` (G(z) is
  evaluated inside every step, per-sample gradient clip by norm), ``update_ebm`` and ``update_gen`` against
  its own bank of (z, sample) pairs.

The reference is not built for ae, simclr and sngan (no Langevin chains).

The peak memory of one ICD iteration with the KL step (``--memory-preset``, default icd-shapes) is measured for
ebmctl's step and for the reference: on CUDA with ``torch.cuda.max_memory_allocated`` above the allocation at
the start of the iteration; on CPU with ``torch.profiler`` (``profile_memory=True``) as the running sum of the
allocator's allocation and free events, whose maximum is the peak of live tensor memory above the start.

Run: OMP_NUM_THREADS=1 python bench/train_speed.py [--presets icd-shapes,clel-shapes] [--iters 5] [--warmup 1]
     [--set sampler.steps=20 --set train.batch_size=32] [--device cpu|cuda] [--memory-preset icd-shapes]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

from ebmctl.data import BatchStream, to_float
from ebmctl.data.registry import dataset_entry
from ebmctl.errors import EbmctlError
from ebmctl.recipes import RunSpec, recipe_of, resolve_spec
from ebmctl.samplers.buffers import SlotBuffer
from ebmctl.services.runtime.datasets import conditioned_dataset
from ebmctl.services.runtime.devices import resolve_device
from ebmctl.services.runtime.reporting import NullReporter
from ebmctl.services.runtime.trainer import Trainer, seed_everything
from ebmctl.specs import TrainSpec, preset_names

Step = Callable[[Tensor, Tensor | None], Any]


# --------------------------------------------------------------------------- released-style building blocks


def released_optimizer(params: list[nn.Parameter], tr: TrainSpec) -> torch.optim.Optimizer:
    """The optimiser the spec names, built as the released scripts build theirs."""
    if tr.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tr.lr, momentum=tr.momentum, weight_decay=tr.weight_decay)
    return torch.optim.Adam(params, lr=tr.lr, betas=tuple(tr.betas), weight_decay=tr.weight_decay)


def released_ema(model: nn.Module, model_ema: nn.Module, mu: float) -> None:
    """ICD's ``ema_model``: ``param_ema.data[:] = mu * param_ema.data + (1 - mu) * param.data``."""
    for param, param_ema in zip(model.parameters(), model_ema.parameters(), strict=True):
        param_ema.data[:] = mu * param_ema.data + (1 - mu) * param.data


def released_sgld(energy: Callable[[Tensor], Tensor], x: Tensor, params: Any,
                  noise: float | Tensor | None = None) -> Tensor:
    """A training chain as the released PyTorch codes write it: out-of-place updates, a fresh noise tensor
    and a fresh graph at every step, parameters left requiring grad. ``noise_first`` picks ICD/IGEBM's order
    (noise, then gradient step) or CLEL/CEBM's (gradient step, then noise)."""
    sigma = params.noise if noise is None else noise
    if isinstance(sigma, Tensor):
        sigma = sigma.view(-1, *([1] * (x.dim() - 1)))
    x = x.detach().clone().contiguous()
    for _ in range(params.steps):
        if params.noise_first:
            x = x + sigma * torch.randn_like(x)
        x.requires_grad_(True)
        grad = torch.autograd.grad([energy(x).sum()], [x])[0]
        if params.grad_clamp is not None:
            grad = torch.clamp(grad, -params.grad_clamp, params.grad_clamp)
        x = x - params.step_size * grad
        if not params.noise_first:
            x = x + sigma * torch.randn_like(x)
        x = x.detach()
        if params.pixel_clamp is not None:
            x = torch.clamp(x, params.pixel_clamp[0], params.pixel_clamp[1])
    return x


def released_icd_chain(energy: Callable[[Tensor], Tensor], head_energy: Callable[[Tensor], Tensor],
                       im_neg: Tensor, params: Any, n: int) -> tuple[Tensor, Tensor]:
    """ICD's ``gen_image``: returns (all chains, detached; the first ``n`` chains after a last step that stays
    differentiable with respect to the parameters)."""
    lo_hi = params.pixel_clamp
    im_neg = im_neg.detach().clone().contiguous()
    im_noise = torch.randn_like(im_neg).detach()
    im_neg_kl = im_neg[:n]
    for i in range(params.steps):
        im_noise.normal_()
        if params.noise_first:
            im_neg = im_neg + params.noise * im_noise
        im_neg.requires_grad_(requires_grad=True)
        energy_value = energy(im_neg)
        im_grad = torch.autograd.grad([energy_value.sum()], [im_neg])[0]
        if params.grad_clamp is not None:
            im_grad = torch.clamp(im_grad, -params.grad_clamp, params.grad_clamp)
        if i == params.steps - 1:
            im_neg_orig = im_neg
            im_neg = im_neg - params.step_size * im_grad
            im_neg_kl = im_neg_orig[:n]
            energy_value = head_energy(im_neg_kl)
            im_grad = torch.autograd.grad([energy_value.sum()], [im_neg_kl], create_graph=True)[0]
            if params.grad_clamp is not None:
                im_grad = torch.clamp(im_grad, -params.grad_clamp, params.grad_clamp)
            im_neg_kl = im_neg_kl - params.step_size * im_grad[:n]
            if not params.noise_first:
                im_neg_kl = im_neg_kl + params.noise * torch.randn_like(im_neg_kl)
            if lo_hi is not None:
                im_neg_kl = torch.clamp(im_neg_kl, lo_hi[0], lo_hi[1])
        else:
            im_neg = im_neg - params.step_size * im_grad
        if not params.noise_first:
            im_neg = im_neg + params.noise * torch.randn_like(im_neg)
        im_neg = im_neg.detach()
        if lo_hi is not None:
            im_neg = torch.clamp(im_neg, lo_hi[0], lo_hi[1])
    return im_neg, im_neg_kl


def released_cd_loss(energy_pos: Tensor, energy_neg: Tensor, l2: float) -> Tensor:
    loss = energy_pos.mean() - energy_neg.mean()
    return loss + l2 * (torch.pow(energy_pos, 2).mean() + torch.pow(energy_neg, 2).mean())


def released_update(loss: Tensor, optimizers: list[torch.optim.Optimizer], params: list[nn.Parameter],
                    grad_clip: float | None) -> None:
    for optimizer in optimizers:
        optimizer.zero_grad()
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    for optimizer in optimizers:
        optimizer.step()


# --------------------------------------------------------------------------- reference steps per method


def igebm_reference(method: Any, spec: RunSpec) -> Step:
    net, tr, params = method.net, spec.train, method.sampler
    optimizer = released_optimizer(list(net.parameters()), tr)
    net_ema = copy.deepcopy(net) if tr.ema is not None else None

    def step(x: Tensor, y: Tensor | None) -> None:
        net.train()
        x0 = method.chains.draw(x.shape[0], method.device)
        im_neg = released_sgld(lambda v: net(v, y), x0, params)
        energy_pos = net(x, y)
        energy_neg = net(im_neg.clone(), y)
        if method.chains.buffer is not None:
            method.chains.buffer.add(im_neg.detach())
        loss = released_cd_loss(energy_pos, energy_neg, method.l2)
        released_update(loss, [optimizer], list(net.parameters()), tr.grad_clip)
        if net_ema is not None:
            released_ema(net, net_ema, tr.ema)

    return step


def icd_reference(method: Any, spec: RunSpec) -> Step:
    net, tr, params = method.net, spec.train, method.sampler
    optimizer = released_optimizer(list(net.parameters()), tr)
    net_ema = copy.deepcopy(net) if tr.ema is not None else None
    buffer, transition = method.chains.buffer, method.chains.transition

    def step(x: Tensor, y: Tensor | None) -> None:
        net.train()
        n = min(method.kl_chains, x.shape[0])
        y_kl = None if y is None else y[:n]
        x0 = method.chains.draw(x.shape[0], method.device)
        if method.kl or method.entropy:
            im_neg, im_neg_kl = released_icd_chain(lambda v: net(v, y), lambda v: net(v, y_kl), x0, params, n)
        else:
            im_neg, im_neg_kl = released_sgld(lambda v: net(v, y), x0, params), None
        energy_pos = net(x, y)
        energy_neg = net(im_neg.clone(), y)
        if buffer is not None:
            buffer.add(im_neg.detach())
        loss = released_cd_loss(energy_pos, energy_neg, method.l2)
        if method.kl and im_neg_kl is not None:
            net.requires_grad_(False)
            loss_kl = net(im_neg_kl, y_kl)
            net.requires_grad_(True)
            loss = loss + method.kl_coeff * loss_kl.mean()
        if method.entropy and im_neg_kl is not None and buffer is not None and len(buffer) > method.entropy_min_buffer:
            bs = im_neg_kl.size(0)
            im_flat = im_neg_kl.reshape(bs, -1)
            if params.pixel_clamp is not None:
                im_flat = torch.clamp(im_flat, params.pixel_clamp[0], params.pixel_clamp[1])
            compare_batch = buffer.sample(method.entropy_refs).to(method.device)
            if transition is not None:
                compare_batch = transition(compare_batch)
            compare_flat = compare_batch.reshape(compare_batch.shape[0], -1)
            dist_matrix = torch.norm(im_flat[:, None, :] - compare_flat[None, :, :], p=2, dim=-1)
            loss_repel = torch.log(dist_matrix.min(dim=1)[0]).mean()
            loss = loss - method.entropy_coeff * loss_repel
        released_update(loss, [optimizer], list(net.parameters()), tr.grad_clip)
        if net_ema is not None:
            released_ema(net, net_ema, tr.ema)

    return step


def released_simclr(z: Tensor, temperature: float, k: Tensor | None = None) -> Tensor:
    """CLEL's ``simclr``: cosine NT-Xent, optionally with extra negatives ``k``."""
    n = z.shape[0] // 2
    z = F.normalize(z)
    if k is None:
        logits = torch.mm(z, z.T).div(temperature)
    else:
        k = F.normalize(k)
        logits = torch.mm(z, torch.cat([z, k]).T).div(temperature)
    logits.fill_diagonal_(float("-inf"))
    labels = torch.tensor(list(range(n, 2 * n)) + list(range(n)), device=logits.device)
    return F.cross_entropy(logits, labels)


def clel_reference(method: Any, spec: RunSpec) -> Step:
    net, encoder, params = method.net, method.encoder.net, method.sampler
    m, tr = spec.method, spec.train
    ebm_optimizer = torch.optim.Adam(net.parameters(), lr=tr.lr, betas=tuple(tr.betas))
    encoder_optimizer = torch.optim.SGD(encoder.parameters(), lr=m.encoder_lr, momentum=m.encoder_momentum,
                                        weight_decay=m.encoder_weight_decay)
    decay = 0.5 ** (tr.batch_size / m.ema_halflife)
    net_ema, encoder_ema = copy.deepcopy(net), copy.deepcopy(encoder)

    def energy_fn(v: Tensor) -> Tensor:
        f, _ = net.f_and_latent(v)
        return f.pow(2).sum(dim=1).div(2)

    def step(x: Tensor, y: Tensor | None) -> None:
        net.train()
        encoder.train()
        x_pos = x[: method.ebm_batch_size]
        idx, x0 = method.chains.draw_slots(x_pos.shape[0], method.device)
        x_neg = released_sgld(energy_fn, x0, params)
        method.chains.buffer.write(idx, x_neg.detach())
        f_pos, z_pos = net.f_and_latent(x_pos)
        f_neg, z_neg = net.f_and_latent(x_neg)
        e_pos = f_pos.pow(2).sum(dim=1).div(2)
        e_neg = f_neg.pow(2).sum(dim=1).div(2)
        loss = (e_pos - e_neg).mean() + method.alpha * (e_pos**2 + e_neg**2).mean()
        with torch.no_grad():
            y_pos = encoder(method.augment(x_pos)).detach()
        s_pos = F.cosine_similarity(z_pos, y_pos)
        loss = loss - method.beta * s_pos.mean()
        x_enc = x[: method.encoder_batch_size]
        views = encoder(method.augment(torch.cat([x_enc, x_enc])))
        k = z_neg.detach() if method.extra_negatives else None
        loss = loss + released_simclr(views, method.temperature, k=k)
        released_update(loss, [ebm_optimizer, encoder_optimizer], [], None)
        released_ema(net, net_ema, decay)
        released_ema(encoder, encoder_ema, decay)

    return step


def cebm_reference(method: Any, spec: RunSpec) -> Step:
    net, tr, params = method.net, spec.train, method.sampler
    optimizer = released_optimizer(list(net.parameters()), tr)

    def step(x: Tensor, y: Tensor | None) -> None:
        net.train()
        images = method.to_model(x)
        images = images + method.data_noise * torch.randn_like(images)
        optimizer.zero_grad()
        e_data = net(images)
        idx, x0 = method.chains.draw_slots(x.shape[0], method.device)
        samples = x0.detach().clone().contiguous()
        for _ in range(params.steps):
            samples.requires_grad = True
            grads = torch.autograd.grad(outputs=net(samples).sum(), inputs=samples)[0]
            samples = (samples - params.step_size * grads + params.noise * torch.randn_like(grads)).detach()
            if params.pixel_clamp is not None:
                samples = torch.clamp(samples, params.pixel_clamp[0], params.pixel_clamp[1])
        method.chains.buffer.write(idx, samples.detach())
        e_model = net(samples)
        loss = released_cd_loss(e_data, e_model, method.l2)
        loss.backward()
        if tr.grad_clip is not None:
            nn.utils.clip_grad_norm_(net.parameters(), tr.grad_clip)
        optimizer.step()

    return step


def similarity_f(x: Tensor, y: Tensor) -> Tensor:
    """EBCLR's negative squared distance of the normalised rows."""
    x = x / (x.norm(dim=1, keepdim=True) + 1e-10)
    y = y / (y.norm(dim=1, keepdim=True) + 1e-10)
    return -(x[:, None] - y[None]).square().sum(dim=2)


def released_logsumexp(log_p: Tensor) -> Tensor:
    m, _ = torch.max(log_p, dim=1, keepdim=True)
    return torch.log(torch.exp(log_p - m).sum(dim=1, keepdim=True)) + m


def ebclr_reference(method: Any, spec: RunSpec) -> Step:
    net, tr, params = method.net, spec.train, method.sampler
    optimizer = released_optimizer(list(net.parameters()), tr)
    tau = method.temperature

    def log_pdf(z: Tensor, keys: Tensor) -> Tensor:
        return released_logsumexp(similarity_f(z, keys) / tau)

    def simclr_loss(z_i: Tensor, z_j: Tensor) -> Tensor:
        n = z_i.shape[0]
        z = torch.cat((z_i, z_j), dim=0)
        sim = similarity_f(z, z) / tau
        positives = torch.cat((torch.diag(sim, n), torch.diag(sim, -n))).reshape(2 * n, 1)
        mask = torch.ones((2 * n, 2 * n), dtype=torch.bool, device=z.device).fill_diagonal_(False)
        mask[torch.arange(n), torch.arange(n) + n] = False
        mask[torch.arange(n) + n, torch.arange(n)] = False
        negatives = sim[mask].reshape(2 * n, -1)
        logits = torch.cat((positives, negatives), dim=1)
        labels = torch.zeros(2 * n, dtype=torch.long, device=z.device)
        return F.cross_entropy(logits, labels, reduction="sum") / (2 * n)

    def step(x: Tensor, y: Tensor | None) -> None:
        net.train()
        x_v1, x_v2 = method.views(x)
        z_v1, z_v2 = net(x_v1.contiguous()), net(x_v2.contiguous())
        idx, x_init, count = method.draw_chains(x)
        count = count.float().view(-1, *([1] * (x_init.dim() - 1)))
        std = method.sigma_min + (method.sigma_max - method.sigma_min) * torch.maximum(
            1.0 - count / method.noise_decay, torch.zeros_like(count))
        keys = z_v2.detach().clone()
        out = x_init.detach().clone().contiguous().requires_grad_(True)
        for _ in range(params.steps):
            lp = log_pdf(net(out), keys).sum()
            lp.backward()
            grad = out.grad if params.grad_clamp is None else torch.clamp(out.grad, -params.grad_clamp, params.grad_clamp)
            out.data = out + params.step_size * grad + std * torch.randn_like(out)
            if params.pixel_clamp is not None:
                out.data = torch.clamp(out.data, params.pixel_clamp[0], params.pixel_clamp[1])
            out.grad.zero_()
        x_n = out.detach().clone()
        method.buffer.write(idx, x_n)
        z_n = net(x_n)
        log_pdf_d = log_pdf(z_v1, z_v2)
        log_pdf_n = log_pdf(z_n, z_v2)
        gen_loss = -log_pdf_d.mean() + log_pdf_n.mean() + method.lmda1 * (z_v1.square().sum() + z_n.square().sum())
        loss = method.lmda2 * gen_loss + simclr_loss(z_v1, z_v2)
        released_update(loss, [optimizer], list(net.parameters()), tr.grad_clip)

    return step


def hat_reference(method: Any, spec: RunSpec) -> Step | None:
    if method.generator is None:  # refine/retrofit: z moves too; only synthesis has a reference here
        return None
    hat, gen, tr, params = method.model.net, method.gen, spec.train, method.sampler
    ebm_optimizer = released_optimizer(list(hat.parameters()), tr)
    m = spec.method
    gen_optimizer = torch.optim.Adam(gen.parameters(), lr=m.generator_lr, betas=tuple(m.generator_betas))
    step_y = params.epsilon**2 / 2
    with torch.no_grad():  # its own bank of (z, G(z)) pairs, as the released initialize_persistent
        z_bank = torch.cat([method.latents(min(256, method.bank_size - s)) for s in range(0, method.bank_size, 256)])
        images_bank = torch.cat([gen(z) for z in z_bank.split(256)])

    def step(x: Tensor, y: Tensor | None) -> None:
        gen.train()
        hat.train()
        n = x.shape[0]
        lats = method.latents(n).contiguous()
        res = torch.zeros_like(images_bank[:n])
        for _ in range(params.steps):
            res.requires_grad_(True)
            images_samp = gen(lats)
            energy_sum = (hat(images_samp + res) / params.temperature).sum()
            if params.prior_tau > 0:
                energy_sum = energy_sum + params.prior_tau * (res**2).sum()
            grads = torch.autograd.grad(energy_sum, res)[0]
            if params.max_residual_step is not None:
                max_norm = params.max_residual_step / step_y
                norms = grads.reshape(n, -1).norm(dim=1).view(-1, *([1] * (grads.dim() - 1)))
                grads = grads * max_norm / torch.maximum(norms, torch.full_like(norms, max_norm))
            res = res - step_y * grads
            if params.noise:
                res = res + params.epsilon * torch.randn_like(res)
            res = res.detach()
        with torch.no_grad():
            images_samp = gen(lats) + res
        images_data = method.to_model(x)
        images_data = images_data + method.data_noise * torch.randn_like(images_data)
        en_pos, en_neg = hat(images_data), hat(images_samp)
        loss = (en_pos.mean() - en_neg.mean()) / params.temperature
        released_update(loss, [ebm_optimizer], list(hat.parameters()), tr.grad_clip)
        inds = torch.randperm(z_bank.shape[0], device=z_bank.device)[:n]
        loss_gen = method.generator_loss_factor * ((gen(z_bank[inds]) - images_bank[inds]) ** 2).mean()
        released_update(loss_gen, [gen_optimizer], [], None)
        images_bank[inds] = images_samp.detach()
        z_bank[inds] = lats.detach()

    return step


REFERENCES: dict[str, Callable[[Any, RunSpec], Step | None]] = {
    "igebm": igebm_reference,
    "icd": icd_reference,
    "clel": clel_reference,
    "cebm": cebm_reference,
    "ebclr": ebclr_reference,
    "hat": hat_reference,
}


# --------------------------------------------------------------------------- harness


@dataclass
class Bench:
    preset: str
    spec: RunSpec
    trainer: Trainer
    batches: Iterator[tuple[Tensor, Tensor | None]]
    reference: Step | None
    note: str = ""


@dataclass
class Row:
    preset: str
    method: str
    batch: int
    steps: str
    times: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    def its(self, side: str) -> float | None:
        t = self.times.get(side)
        return 1.0 / statistics.median(t) if t else None

    def ratio(self) -> float | None:
        ours, ref = self.times.get("ebmctl"), self.times.get("reference")
        if not ours or not ref:
            return None
        return statistics.median(r / o for o, r in zip(ours, ref, strict=True))


def needs_generator(spec: RunSpec) -> bool:
    return spec.method.name == "hat" and getattr(spec.method, "mode", "") != "synthesis"


def default_presets() -> tuple[list[str], list[str]]:
    """Presets on embedded data that `ebmctl train` runs on their own; and the skipped ones, with why."""
    chosen, skipped = [], []
    for name in preset_names():
        spec = resolve_spec(name)
        if not dataset_entry(spec.data.name).embedded:
            continue
        if needs_generator(spec):
            skipped.append(f"{name} (stands on a generator trained by another run: hat.generator)")
            continue
        chosen.append(name)
    return chosen, skipped


def prefill(method: Any, device: torch.device) -> None:
    """Fill a replay buffer (not the slot buffers, which start full) so that the timed iterations see the
    steady state: chains drawn from the buffer, ICD's entropy term switched on."""
    chains = getattr(method, "chains", None)
    buffer = getattr(chains, "buffer", None)
    if buffer is None or isinstance(buffer, SlotBuffer):
        return
    while len(buffer) < buffer.capacity:
        buffer.add(chains.noise(min(1000, buffer.capacity - len(buffer)), device))


def build(preset: str, args: argparse.Namespace, device: torch.device) -> Bench:
    spec = resolve_spec(preset, overrides=args.set)
    seed_everything(spec.seed)
    trainer = Trainer(spec, device=device, cli_data_root=args.data_root, reporter=NullReporter())
    method = trainer.method
    note = "random generator weights" if needs_generator(spec) else ""
    if not args.no_prefill:
        prefill(method, device)
    batch_size = getattr(method, "data_batch_size", spec.train.batch_size)
    labelled = conditioned_dataset(trainer.dataset, trainer.condition)
    stream = iter(BatchStream(labelled, batch_size, spec.seed, workers=0))

    def batches() -> Iterator[tuple[Tensor, Tensor | None]]:
        for x, labels in stream:
            xf = to_float(x, spec.data.dequantize).to(device)
            yield xf, (labels.to(device) if trainer.condition is not None else None)

    factory = REFERENCES.get(spec.method.name)
    reference = None if args.no_reference or factory is None else factory(method, spec)
    return Bench(preset, spec, trainer, batches(), reference, note)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Step, x: Tensor, y: Tensor | None, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn(x, y)
    synchronize(device)
    return time.perf_counter() - start


def run_bench(bench: Bench, args: argparse.Namespace, device: torch.device) -> Row:
    method, spec = bench.trainer.method, bench.spec
    sides: list[tuple[str, Step]] = [("ebmctl", method.train_step)]
    if bench.reference is not None:
        sides.append(("reference", bench.reference))
    steps = str(spec.sampler.steps) if recipe_of(spec).langevin else "-"
    row = Row(bench.preset, spec.method.name, 0, steps, {name: [] for name, _ in sides}, bench.note)
    for r in range(args.warmup + args.iters):
        x, y = next(bench.batches)
        row.batch = x.shape[0]
        for name, fn in sides if r % 2 == 0 else sides[::-1]:
            t = timed(fn, x, y, device)
            if r >= args.warmup:
                row.times[name].append(t)
    return row


def peak_memory(fn: Step, x: Tensor, y: Tensor | None, device: torch.device) -> int:
    """Peak bytes of tensor memory above the start of one call of ``fn``."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn(x, y)
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(x, y)
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(rows: list[Row]) -> None:
    header = ("preset", "method", "batch", "steps", "ebmctl it/s", "ebmctl img/s", "reference it/s",
              "reference img/s", "ratio")
    lines = []
    for row in rows:
        ours, ref = row.its("ebmctl"), row.its("reference")
        lines.append((row.preset + (f" ({row.note})" if row.note else ""), row.method, str(row.batch), row.steps,
                      fmt(ours, ".3f"), fmt(None if ours is None else ours * row.batch, ".1f"), fmt(ref, ".3f"),
                      fmt(None if ref is None else ref * row.batch, ".1f"), fmt(row.ratio(), ".2f")))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--presets", default=None,
                        help="comma-separated preset names (default: every preset on embedded data)")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per side and preset")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations per side first")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="spec override for every preset, as `ebmctl train --set` (repeatable)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--data-root", default=None, help="data root for presets on real data")
    parser.add_argument("--memory-preset", default="icd-shapes",
                        help="ICD preset whose KL-step iteration memory is measured ('' to skip)")
    parser.add_argument("--no-reference", action="store_true", help="time ebmctl's step only")
    parser.add_argument("--no-prefill", action="store_true", help="start from an empty replay buffer")
    args = parser.parse_args()
    if args.iters < 1 or args.warmup < 0:
        parser.error("--iters must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.presets:
        presets, skipped = [p.strip() for p in args.presets.split(",") if p.strip()], []
    else:
        presets, skipped = default_presets()
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"{args.iters} timed iterations per side after {args.warmup} warm-up; overrides: {args.set or 'none'}")
    print("it/s = 1 / median iteration time; img/s = data images per second (as the Trainer counts them); "
          "ratio = median over iterations of t_reference / t_ebmctl (the two interleaved, > 1: ebmctl faster)")

    rows: list[Row] = []
    memory_bench: Bench | None = None
    failed: list[str] = []
    for preset in presets:
        started = time.perf_counter()
        try:
            bench = build(preset, args, device)
            rows.append(run_bench(bench, args, device))
        except EbmctlError as exc:
            failed.append(f"{preset} ({type(exc).__name__}: {exc})")
            continue
        if preset == args.memory_preset:
            memory_bench = bench
        print(f"  {preset}: {time.perf_counter() - started:.1f} s", flush=True)

    print()
    print_table(rows)
    for line in skipped + failed:
        print(f"skipped: {line}")

    if args.memory_preset:
        if memory_bench is None:
            memory_bench = build(args.memory_preset, args, device)
            run_bench(memory_bench, argparse.Namespace(**{**vars(args), "iters": 1}), device)
        method = memory_bench.trainer.method
        if memory_bench.spec.method.name != "icd" or not method.kl:
            print(f"memory: {args.memory_preset} is not an ICD preset with the KL term; not measured")
            return
        x, y = next(memory_bench.batches)
        how = ("torch.cuda.max_memory_allocated minus memory_allocated at the start" if device.type == "cuda" else
               "torch.profiler profile_memory=True: peak of the running sum of the CPU allocator's events")
        print()
        print(f"peak memory of one training iteration of {args.memory_preset} (ICD, KL step on "
              f"{min(method.kl_chains, x.shape[0])} of {x.shape[0]} chains, {method.sampler.steps} steps), "
              f"tensor memory above the start of the iteration, MiB ({how}):")
        sides: list[tuple[str, Step]] = [("ebmctl", method.train_step)]
        if memory_bench.reference is not None:
            sides.append(("reference", memory_bench.reference))
        for name, fn in sides:
            method.model.zero_grad()  # both sides start without gradients (they share the net)
            print(f"  {name:<10} {peak_memory(fn, x, y, device) / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
