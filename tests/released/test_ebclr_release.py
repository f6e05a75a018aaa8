"""`ebmctl import --from ebclr`: a checkpoint written the way 1202kbs/EBCLR's ``save_ckpt`` writes it (its
ResNet-18 and projection re-derived here from the released definitions' key names and shapes, random weights)
becomes a run whose features and projections equal the released computation's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ebmctl.runs import resolve_run
from ebmctl.services.runtime.loading import load_run


class Block(nn.Module):
    """libs/resnets.py BasicBlock without BN/SN/WN: biased 3x3 convs, a 1x1 ``shortcut`` when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2)
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride)) if stride != 1 or c_in != c_out
                         else nn.Sequential())

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))) + self.shortcut(x))


class ReleasedResNet18(nn.Module):
    """libs/resnets.py ResNet18(nc, use_bn=False, act=LeakyReLU(0.2)): conv1, four layers of two blocks, pooled."""

    def __init__(self, nc: int, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nc, width, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2)
        widths, c_in = [width, 2 * width, 4 * width, 8 * width], width
        for i, c in enumerate(widths, 1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(Block(c_in, c, stride), Block(c, c, 1)))
            c_in = c

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.conv1(x))
        for i in range(1, 5):
            out = getattr(self, f"layer{i}")(out)
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


class ReleasedMLP(nn.Module):
    """libs/models.py MLP: fc1 (in -> in), LeakyReLU(0.2), fc2 (in -> out)."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(dim, dim), nn.Linear(dim, out), nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))




@pytest.mark.parametrize(("nc", "side", "width"), [(3, 32, 8), (1, 28, 4)])
def test_an_imported_ebclr_encoder_computes_the_released_features(tmp_path, nc, side, width, cli_json):
    torch.manual_seed(0)
    enc, proj = ReleasedResNet18(nc, width).eval(), ReleasedMLP(8 * width, 16).eval()
    opt = torch.optim.Adam([*enc.parameters(), *proj.parameters()])
    path = tmp_path / "200.pt"
    torch.save({"iteration": 1234, "runtime": 5.0, "opt": opt.state_dict(), "buffer": torch.rand(8, nc, side, side),
                "counter": torch.ones(8, 1, 1, 1), "enc_state_dict": enc.state_dict(),
                "proj_state_dict": proj.state_dict()}, path)  # save_ckpt with save_buffer
    code, doc = cli_json("import", "--from", "ebclr", str(path))
    assert code == 0 and doc["step"] == 1234 and any(d.startswith("buffer") for d in doc["dropped"])
    run = load_run(resolve_run(doc["run"], cli_json.runs), torch.device("cpu"))
    assert run.spec.method.name == "ebclr" and run.info.shape == (nc, side, side)
    assert run.spec.net.width == width and run.spec.net.hidden == 8 * width and run.spec.net.out_dim == 16

    images = torch.rand(5, nc, side, side)
    with torch.no_grad():
        features = enc(images * 2 - 1)  # the released code works on images in [-1, 1]
        projected = proj(features)
        mine = run.method.model.eval_net(True)(images * 2 - 1)
    assert torch.allclose(run.method.representation(images), features, rtol=1e-5, atol=1e-5)
    assert torch.allclose(mine, projected, rtol=1e-5, atol=1e-5)


def test_a_changed_architecture_is_a_one_line_error_naming_the_key(tmp_path, cli_json):
    enc, proj = ReleasedResNet18(3, 8), ReleasedMLP(64, 16)
    sd = enc.state_dict()
    sd["layer1.0.extra.weight"] = torch.zeros(3)
    path = tmp_path / "curr.pt"
    torch.save({"iteration": 1, "runtime": 0.0, "opt": {}, "enc_state_dict": sd, "proj_state_dict": proj.state_dict()},
               path)
    code, _ = cli_json("import", "--from", "ebclr", str(path))
    err = cli_json.err.strip()
    assert code == 1 and "layer1.0.extra.weight" in err and "\n" not in err
