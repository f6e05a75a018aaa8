"""SN-GAN generators/discriminators and Hat EBM's image-latent decoder: shapes, sizes, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ebmctl.nets import count_parameters
from ebmctl.nets.sngan import (
    DBlock,
    DBlockOptimized,
    GenBlock,
    ImageLatentGenerator,
    SnganDiscriminator,
    SnganGenerator,
    SphereEncoder,
)

SIZES = (32, 64, 128)
SMALL = 16  # ngf/ndf for fast tests; >> 4 still leaves one channel at 64 and 128 px


def small_generator(size: int) -> SnganGenerator:
    torch.manual_seed(0)
    return SnganGenerator(size, nz=8, ngf=SMALL)


def small_discriminator(size: int, **kwargs: object) -> SnganDiscriminator:
    torch.manual_seed(0)
    return SnganDiscriminator(size, ndf=SMALL, **kwargs)


def block_outputs(net: nn.Module, x: torch.Tensor) -> list[tuple[int, int, int]]:
    """(channels, height, width) after each of ``net.blocks``."""
    shapes: list[tuple[int, int, int]] = []
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for block in net.blocks
    ]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def conv_and_linear(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


@pytest.mark.parametrize("size", SIZES)
def test_generator_output_shape_and_range(size):
    gen = small_generator(size)
    z = gen.sample_latent(3, generator=torch.Generator().manual_seed(1))
    x = gen(z)
    assert x.shape == (3, 3, size, size)
    assert x.abs().max() <= 1.0 and x.std() > 0
    assert gen.nz == 8 and gen.image_size == size
    assert SnganGenerator(size, nz=8, ngf=SMALL, out_channels=1)(z[:2]).shape == (2, 1, size, size)


@pytest.mark.parametrize("size", SIZES)
def test_discriminator_output_shape(size):
    disc = small_discriminator(size)
    assert disc(torch.randn(2, 3, size, size)).shape == (2, 1)
    assert disc.features(torch.randn(2, 3, size, size)).shape == (2, SMALL)
    gray = small_discriminator(size, in_channels=1)
    assert gray(torch.randn(2, 1, size, size)).shape == (2, 1)


def test_discriminator_is_unconditional():
    with pytest.raises(ValueError, match="unconditional"):
        small_discriminator(32)(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))


def test_image_latent_generator_shape_and_range():
    torch.manual_seed(0)
    gen = ImageLatentGenerator(ngf=SMALL)
    z = gen.sample_latent(4)
    assert z.shape == (4, 1, 16, 16)
    x = gen(z)
    assert x.shape == (4, 3, 32, 32) and x.abs().max() <= 1.0
    assert gen.image_size == 32
    with pytest.raises(ValueError, match="z must have shape"):
        gen(torch.randn(4, 128))


def test_sample_latent_is_standard_normal_and_seeded():
    gen = small_generator(32)
    a = gen.sample_latent(4000, generator=torch.Generator().manual_seed(3))
    b = gen.sample_latent(4000, generator=torch.Generator().manual_seed(3))
    assert a.shape == (4000, 8) and torch.equal(a, b)
    assert abs(a.mean().item()) < 0.05 and abs(a.std().item() - 1) < 0.05


def test_default_32px_parameter_counts():
    # Generator, ngf 256, nz 128, bottom width 4.
    linear = 128 * (4 * 4 * 256) + 4 * 4 * 256  # 528,384
    bn = 2 * 256  # weight and bias
    conv3 = 256 * 256 * 9 + 256  # 590,080
    shortcut = 256 * 256 + 256  # 1x1 conv, learnable since every block upsamples: 65,792
    gen_block = bn + conv3 + bn + conv3 + shortcut  # 1,246,976
    head = bn + (256 * 3 * 9 + 3)  # final BN and conv3x3 to RGB: 7,427
    generator = linear + 3 * gen_block + head
    assert generator == 4_276_739  # Mimicry's SNGANGenerator32
    assert count_parameters(SnganGenerator(32)) == generator

    # Discriminator, ndf 128, spectral norm adds buffers only.
    conv3 = 128 * 128 * 9 + 128  # 147,584
    optimized = (3 * 128 * 9 + 128) + conv3 + (3 * 128 + 128)  # conv 3->128, conv, 1x1 shortcut: 151,680
    down = conv3 + conv3 + (128 * 128 + 128)  # with its 1x1 shortcut: 311,680
    plain = conv3 + conv3  # identity shortcut: 295,168
    discriminator = optimized + down + 2 * plain + (128 + 1)
    assert discriminator == 1_053_825
    disc = SnganDiscriminator(32)
    assert count_parameters(disc) == discriminator
    assert count_parameters(SnganDiscriminator(32, bias=False)) == discriminator - 1
    assert any(name.endswith("_u") for name, _ in disc.named_buffers())


@pytest.mark.parametrize("size", SIZES)
def test_spectral_norm_switch(size):
    with_sn = small_discriminator(size)
    without_sn = small_discriminator(size, spectral_norm=False)
    layers = conv_and_linear(with_sn)
    assert len(layers) == len(conv_and_linear(without_sn))
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in without_sn.modules())
    assert count_parameters(with_sn) == count_parameters(without_sn)
    # Optimized block: 3 convs; downsampling or widening blocks: 3; identity-shortcut blocks: 2; linear: 1.
    expected = {32: 3 + 3 + 2 + 2 + 1, 64: 3 + 4 * 3 + 1, 128: 3 + 4 * 3 + 2 + 1}[size]
    assert len(layers) == expected


def test_spectral_norm_bounds_the_layer_norm():
    disc = small_discriminator(32)
    disc.train()
    for _ in range(30):  # power iterations run in train-mode forwards
        disc(torch.randn(2, 3, 32, 32))
    w = disc.linear.weight
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, rel=1e-3)


def test_blocks_spectral_norm_flag():
    assert parametrize.is_parametrized(DBlock(4, 8).conv1, "weight")
    assert not parametrize.is_parametrized(DBlock(4, 8, spectral_norm=False).conv1)
    assert parametrize.is_parametrized(DBlockOptimized(3, 8).shortcut, "weight")
    assert isinstance(DBlock(8, 8).shortcut, nn.Identity)
    assert isinstance(GenBlock(8, 8).shortcut, nn.Identity)
    assert isinstance(GenBlock(8, 8, upsample=True).shortcut, nn.Conv2d)
    assert GenBlock(8, 4, hidden_ch=6).conv1.out_channels == 6
    assert DBlock(8, 4).conv1.out_channels == 8  # hidden width defaults to the input width


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (32, [(16, 8, 8), (16, 16, 16), (16, 32, 32)]),
        (64, [(8, 8, 8), (4, 16, 16), (2, 32, 32), (1, 64, 64)]),
        (128, [(16, 8, 8), (8, 16, 16), (4, 32, 32), (2, 64, 64), (1, 128, 128)]),
    ],
)
def test_generator_block_resolutions(size, expected):
    gen = small_generator(size).eval()
    assert block_outputs(gen, gen.sample_latent(2)) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (32, [(16, 16, 16), (16, 8, 8), (16, 8, 8), (16, 8, 8)]),
        (64, [(1, 32, 32), (2, 16, 16), (4, 8, 8), (8, 4, 4), (16, 2, 2)]),
        (128, [(1, 64, 64), (2, 32, 32), (4, 16, 16), (8, 8, 8), (16, 4, 4), (16, 4, 4)]),
    ],
)
def test_discriminator_block_resolutions(size, expected):
    disc = small_discriminator(size, spectral_norm=False)
    assert block_outputs(disc, torch.randn(2, 3, size, size)) == expected


def test_image_latent_generator_block_resolutions():
    gen = ImageLatentGenerator(ngf=SMALL).eval()
    assert block_outputs(gen, gen.sample_latent(2)) == [(16, 16, 16), (16, 16, 16), (16, 32, 32)]


def test_discriminator_sums_features_spatially():
    disc = small_discriminator(32, spectral_norm=False).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = torch.relu(disc.blocks(x))
        expected = disc.linear(h.sum(dim=(2, 3)))
        assert torch.allclose(disc(x), expected)
        assert not torch.allclose(disc(x), disc.linear(h.mean(dim=(2, 3))))


def bn_state(net: nn.Module) -> list[torch.Tensor]:
    return [
        t.clone() for m in net.modules() if isinstance(m, nn.BatchNorm2d) for t in m.state_dict().values()
    ]


@pytest.mark.parametrize("make", [lambda: small_generator(32), lambda: ImageLatentGenerator(ngf=SMALL)])
def test_freeze_batchnorm_survives_train(make):
    gen = make().train()
    z = gen.sample_latent(4, generator=torch.Generator().manual_seed(0))
    before = bn_state(gen)
    gen(z)  # an unfrozen train-mode pass updates the running statistics
    moved = bn_state(gen)
    assert any(not torch.equal(a, b) for a, b in zip(before, moved, strict=True))

    gen.freeze_batchnorm()
    gen.train()
    assert gen.training and gen.batchnorm_frozen
    assert all(not m.training for m in gen.modules() if isinstance(m, nn.BatchNorm2d))
    first = gen(z)
    assert all(torch.equal(a, b) for a, b in zip(moved, bn_state(gen), strict=True))
    assert torch.equal(first, gen(z))
    assert torch.allclose(first[:1], gen(z[:1]), atol=1e-6)  # no batch statistics: samples are independent
    assert torch.equal(first, gen.eval()(z))

    gen.freeze_batchnorm(False)
    gen.train()
    assert all(m.training for m in gen.modules() if isinstance(m, nn.BatchNorm2d))
    assert not torch.allclose(gen(z)[:1], gen(z[:1]), atol=1e-6)


def test_input_gradient_through_hat_network():
    disc = small_discriminator(32, spectral_norm=False)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(disc(x).sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0


@pytest.mark.parametrize("make", [lambda: small_generator(64), lambda: ImageLatentGenerator(ngf=SMALL)])
def test_latent_gradient_through_generator(make):
    gen = make()
    gen.freeze_batchnorm()
    z = gen.sample_latent(2).requires_grad_(True)
    (grad,) = torch.autograd.grad(gen(z).square().sum(), z)
    assert grad.shape == z.shape and torch.isfinite(grad).all()
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0


@pytest.mark.parametrize("size", [16, 48, 256, 0])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match="image_size"):
        SnganGenerator(size)
    with pytest.raises(ValueError, match="image_size"):
        SnganDiscriminator(size)


@pytest.mark.parametrize(
    "make",
    [
        lambda scale: SnganGenerator(32, nz=8, ngf=SMALL, out_scale=scale),
        lambda scale: ImageLatentGenerator(ngf=SMALL, out_scale=scale),
    ],
)
def test_out_scale_scales_the_output(make):
    torch.manual_seed(0)
    plain = make(1.0).eval()
    scaled = make(2.0).eval()
    scaled.load_state_dict(plain.state_dict())
    z = plain.sample_latent(3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = plain(z), scaled(z)
    assert plain.out_scale == 1.0 and scaled.out_scale == 2.0
    assert torch.equal(b, 2.0 * a)


@pytest.mark.parametrize("size", [16, 32])
def test_sphere_encoder_shape_and_norm(size):
    torch.manual_seed(0)
    enc = SphereEncoder(size, nef=8)
    side = size // 2
    assert enc.latent_shape == (1, side, side)
    z = enc(torch.rand(4, 3, size, size) * 2 - 1)
    assert z.shape == (4, 1, side, side)
    norms = z.flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.full((4,), float(side)), atol=1e-4)  # sqrt(side^2) = side
    wide = SphereEncoder(size, nef=8, in_channels=1, latent_channels=2)
    z2 = wide(torch.randn(2, 1, size, size))
    assert z2.shape == (2, 2, side, side)
    assert torch.allclose(z2.flatten(1).norm(dim=1), torch.full((2,), (2 * side * side) ** 0.5), atol=1e-4)


def test_sphere_projection_by_hand():
    x = torch.tensor([[[[3.0, 4.0]]], [[[0.0, -2.0]]]])  # norms 5 and 2, m = 2
    expected = torch.tensor([[[[3.0, 4.0]]], [[[0.0, -2.0]]]]) * torch.tensor([2**0.5 / 5, 2**0.5 / 2]).view(2, 1, 1, 1)
    assert torch.allclose(SphereEncoder.project(x), expected, atol=1e-6)


@pytest.mark.parametrize("size", [0, 6, 15, 33])
def test_sphere_encoder_bad_image_size(size):
    with pytest.raises(ValueError, match="image_size"):
        SphereEncoder(size, nef=8)


def test_sphere_encoder_parameter_count_and_resolutions():
    # nef 8, 3 input channels, 1 latent channel; every conv has a bias.
    conv3 = 8 * 8 * 9 + 8  # 584
    stem = (3 * 8 * 9 + 8) + conv3 + (3 * 8 + 8)  # conv3x3 3->8, conv3x3 8->8, 1x1 shortcut 3->8: 840
    down = conv3 + conv3 + (8 * 8 + 8)  # with its 1x1 shortcut: 1,240
    plain = conv3 + conv3  # identity shortcut: 1,168
    head = 8 * 1 * 9 + 1  # conv3x3 8->1: 73
    total = stem + down + 2 * plain + head
    assert total == 4_489
    enc = SphereEncoder(32, nef=8, in_channels=3, latent_channels=1)
    assert count_parameters(enc) == total
    assert not any(parametrize.is_parametrized(m) for m in enc.modules())
    assert block_outputs(enc, torch.randn(2, 3, 32, 32)) == [(8, 32, 32), (8, 16, 16), (8, 16, 16), (8, 16, 16)]


def test_stem_block_without_downsampling_by_hand():
    torch.manual_seed(0)
    block = DBlockOptimized(3, 4, spectral_norm=False, downsample=False)
    x = torch.randn(2, 3, 8, 8)
    expected = block.conv2(torch.relu(block.conv1(x))) + block.shortcut(x)
    assert torch.allclose(block(x), expected)
    assert DBlockOptimized(3, 4, spectral_norm=False)(x).shape == (2, 4, 4, 4)


# ---------------------------------------------------------------- Hat EBM's released hat network


def _head_only(**kwargs: object) -> SnganDiscriminator:
    """A 32 px discriminator whose blocks are the identity, so that the head can be checked by hand."""
    disc = SnganDiscriminator(32, ndf=SMALL, spectral_norm=False, **kwargs)
    disc.blocks = nn.Sequential()
    with torch.no_grad():
        disc.linear.weight.zero_()
        disc.linear.weight[0, 0] = 0.5
        if disc.linear.bias is not None:
            disc.linear.bias.fill_(3.0)
    return disc


def test_mean_pooling_by_hand_and_no_output_bias():
    x = torch.zeros(1, SMALL, 2, 2)
    x[0, 0] = torch.tensor([[1.0, -2.0], [3.0, 4.0]])  # ReLU: 1, 0, 3, 4; sum 8, mean 2
    released = _head_only(pooling="mean", bias=False)
    assert released.linear.bias is None
    assert released(x).item() == pytest.approx(0.5 * 2.0)
    assert released(torch.zeros_like(x)).item() == 0.0  # no bias: zero features give exactly zero
    old = _head_only()  # sum pooling with a bias
    assert old(x).item() == pytest.approx(0.5 * 8.0 + 3.0)
    assert old(torch.zeros_like(x)).item() == pytest.approx(3.0)
    assert torch.allclose(released.features(x), old.features(x) / 4)


@pytest.mark.parametrize(("size", "area"), [(32, 8 * 8), (64, 2 * 2), (128, 4 * 4)])
def test_mean_pooled_energy_is_the_summed_one_over_the_last_map_area(size, area):
    mean = small_discriminator(size, spectral_norm=False, bias=False, pooling="mean").eval()
    summed = SnganDiscriminator(size, ndf=SMALL, spectral_norm=False, bias=False)
    summed.load_state_dict(mean.state_dict())
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(summed(x), area * mean(x), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(summed(x), mean(x))


def test_released_hat_network_parameter_counts():
    # EBMSNGAN32 at width 256: stem (conv 3->256, conv 256->256, 1x1 3->256), a downsampling block with a 1x1
    # shortcut, two plain blocks, a bias-free dense layer.
    conv3 = 256 * 256 * 9 + 256  # 590,080
    stem = (3 * 256 * 9 + 256) + conv3 + (3 * 256 + 256)  # 598,272
    down = 2 * conv3 + (256 * 256 + 256)  # 1,245,952
    assert stem + down + 2 * (2 * conv3) + 256 == 4_204_800
    net32 = SnganDiscriminator(32, ndf=256, spectral_norm=False, bias=False, pooling="mean", block_hidden="out")
    assert count_parameters(net32) == 4_204_800

    # EBMSNGAN64 at width 1024: every block's first conv widens to the block's output width at once.
    def block(c_in: int, c_out: int) -> int:
        return (c_in * c_out * 9 + c_out) + (c_out * c_out * 9 + c_out) + (c_in * c_out + c_out)

    stem64 = (3 * 64 * 9 + 64) + (64 * 64 * 9 + 64) + (3 * 64 + 64)  # 38,976
    released64 = stem64 + block(64, 128) + block(128, 256) + block(256, 512) + block(512, 1024) + 1024
    assert released64 == 19_542_720
    net64 = SnganDiscriminator(64, spectral_norm=False, bias=False, pooling="mean", block_hidden="out")
    assert count_parameters(net64) == released64
    mimicry64 = SnganDiscriminator(64, spectral_norm=False, bias=False)  # first conv keeps the input width
    assert count_parameters(mimicry64) != released64
    assert [b.conv1.out_channels for b in net64.blocks[1:]] == [128, 256, 512, 1024]
    assert [b.conv1.out_channels for b in mimicry64.blocks[1:]] == [64, 128, 256, 512]


def test_bad_pooling_and_block_hidden_are_rejected():
    with pytest.raises(ValueError, match="pooling"):
        SnganDiscriminator(32, ndf=SMALL, pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block_hidden"):
        SnganDiscriminator(32, ndf=SMALL, block_hidden="mid")  # type: ignore[arg-type]
