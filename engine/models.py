"""The paper's models. MLP: d -> depth x width -> k, Softplus, He-normal weights, zero biases."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import Spec
from engine.data import input_shape


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


def he_normal_(model: nn.Module, generator: torch.Generator) -> None:
    """W ~ N(0, 2 / fan_in), b = 0, for every Linear layer (output layer included)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, math.sqrt(2.0 / m.in_features), generator=generator)
                m.bias.zero_()


def build_model(spec: Spec) -> nn.Module:
    """The spec's model on the CPU in float32, initialised from its first seed.

    Initialising on the CPU makes θ_0 the same whatever device the run uses.
    """
    d_in, d_out = input_shape(spec.data.source)
    model = MLP(d_in, spec.model.width, spec.model.depth, d_out, spec.model.beta)
    he_normal_(model, torch.Generator().manual_seed(spec.train.seeds[0]))
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
