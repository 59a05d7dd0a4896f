"""The paper's models.

MLP: d -> depth x width -> k, Softplus, He-normal weights, zero biases.
ResNet-GN: a stem, three stages of two residual blocks (base width w -> w, 2w, 4w channels,
the later stages halving the resolution), GroupNorm, global average pooling, k outputs.
Initialised as torchvision's ResNets with zero_init_residual: PyTorch's default layer init,
and each block's last GroupNorm scale at 0 so every block starts as the identity. On 1000 real
CIFAR images this gives β = λ_max(∇²L) = 25.5 at θ_0, so the paper's lr 0.05 with momentum 0.9
sits at η·β = 1.27, under heavy ball's edge 2(1 + μ) = 3.8. He-normal everywhere, as for the
MLP, gives β = 639 (η·β = 32) and a 140-fold loss spike in the first epoch; on synthetic images
it blew up (8.5 to 2e20). docs/cnn.md and bench/cifar_init.py have the measurements.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ModelSpec, Spec
from engine.kinds import kind_of, outputs_of


class MLP(nn.Module):
    def __init__(self, d_in: int, width: int, depth: int, d_out: int = 1, beta: float = 1.0):
        super().__init__()
        dims = [d_in] + [width] * depth + [d_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.softplus(layer(x), beta=self.beta)
        return self.layers[-1](x)


class Block(nn.Module):
    """conv-GN-ReLU-conv-GN plus the input (projected when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.GroupNorm(groups, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.skip(x))


class ResNetGN(nn.Module):
    def __init__(self, c_in: int = 3, k: int = 5, width: int = 16, groups: int = 8, blocks: int = 2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(c_in, width, 3, 1, 1, bias=False), nn.GroupNorm(groups, width), nn.ReLU())
        stages, c = [], width
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            for j in range(blocks):
                stages.append(Block(c, c_out, 2 if (i > 0 and j == 0) else 1, groups))
                c = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))


def he_normal_(model: nn.Module, generator: torch.Generator) -> None:
    """W ~ N(0, 2 / fan_in), b = 0, for every Linear layer (output layer included)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, math.sqrt(2.0 / m.in_features), generator=generator)
                m.bias.zero_()


def build_model(spec: Spec, outputs: int | None = None) -> nn.Module:
    """The spec's model on the CPU in float32, initialised from its first seed. `outputs`: k,
    as the loaded data has it (a classifier has one output per class); by default, as the
    spec asks for it.

    Initialising on the CPU makes θ_0 the same whatever device the run uses.
    """
    kind = kind_of(spec.model.kind)
    k = outputs if outputs is not None else outputs_of(kind, spec.data.source, spec.data.classes)
    return kind.build(spec.model, kind.input_shape, k, spec.train.seeds[0])


def build_mlp(model: ModelSpec, shape: tuple[int, ...], outputs: int, seed: int) -> MLP:
    net = MLP(shape[0], model.width, model.depth, outputs, model.beta)
    he_normal_(net, torch.Generator().manual_seed(seed))
    return net


def build_resnet_gn(model: ModelSpec, shape: tuple[int, ...], outputs: int, seed: int) -> "ResNetGN":
    with torch.random.fork_rng(devices=[]):  # PyTorch's init draws from the global generator
        torch.manual_seed(seed)
        net = ResNetGN(shape[0], outputs, model.base_width, model.groups)
    zero_init_residual_(net)
    return net


def zero_init_residual_(model: "ResNetGN") -> None:
    with torch.no_grad():
        for block in model.stages:
            block.norm2.weight.zero_()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def squared_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    """(1/2n) Σ_i ‖f(x_i) − y_i‖² over the given inputs; n is what the sum is divided by."""
    return 0.5 * (model(x) - y).pow(2).sum() / n
