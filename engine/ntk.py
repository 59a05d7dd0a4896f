"""The empirical NTK K = J Jᵀ on a set of inputs, in float64.

For our MLP, K has a closed form that needs one forward and one backward sweep and never
materialises J (DESIGN.md §3). With h_l the input of layer l and Δ_l = ∂f/∂z_l,

    ∂f_a/∂W_l = Δ_l^a h_lᵀ,  ∂f_a/∂b_l = Δ_l^a
    =>  K[(i,a),(j,b)] = Σ_l (h_l(x_i)·h_l(x_j) + 1) · (Δ_l^a(x_i)·Δ_l^b(x_j)),

which costs O(n²·Σ widths) instead of the O(n²·P) of J Jᵀ. Any other model goes through
torch.func: J in chunks of inputs, then J Jᵀ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap

from engine.models import MLP

SOFTPLUS_THRESHOLD = 20.0  # torch's default: above it softplus is the identity, slope 1


def empirical_ntk(model: nn.Module, x: torch.Tensor, chunk: int | None = None, input_gram: torch.Tensor | None = None) -> torch.Tensor:
    """The n·k × n·k kernel, index (i, a) -> i·k + a, as float64 on x's device.

    `chunk` bounds how many inputs are processed at once (memory), not the result. For the
    MLP, `input_gram` = input_gram(x) may be passed to save its first layer's n × n × d Gram
    matrix, which depends on the inputs alone (the costliest term when d = 784 > width).
    """
    if isinstance(model, MLP):
        return mlp_ntk(model, x, chunk, input_gram)
    return jacobian_ntk(model, x, inputs_at_once(model, x, chunk))


def input_gram(x: torch.Tensor) -> torch.Tensor:
    """x xᵀ + 1 in float64: the first layer's factor of the closed-form MLP kernel."""
    h = x.double().reshape(len(x), -1)
    return h @ h.T + 1.0


def inputs_at_once(model: nn.Module, x: torch.Tensor, chunk: int | None) -> int:
    """How many inputs empirical_ntk takes at once: `chunk`, else all for the closed form and
    JACOBIAN_CHUNK for torch.func (whose per-input Jacobians are each as large as θ)."""
    return chunk or (len(x) if isinstance(model, MLP) else JACOBIAN_CHUNK)


@torch.no_grad()
def mlp_features(model: MLP, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer l: (h_l, Δ_l) for the inputs x, in float64."""
    layers = [(l.weight.double(), l.bias.double()) for l in model.layers]
    beta = model.beta
    h = x.double().reshape(len(x), -1)
    inputs, slopes = [h], []
    for w, b in layers[:-1]:
        z = h @ w.T + b
        # the same slope as softplus' backward, so K matches autograd's J Jᵀ exactly
        slopes.append(torch.where(z * beta > SOFTPLUS_THRESHOLD, torch.ones_like(z), torch.sigmoid(z * beta)))
        h = F.softplus(z, beta=beta, threshold=SOFTPLUS_THRESHOLD)
        inputs.append(h)
    n, k = len(x), layers[-1][0].shape[0]
    delta = torch.eye(k, dtype=torch.float64, device=h.device).expand(n, k, k)  # ∂f/∂z_out
    features = []
    for layer in reversed(range(len(layers))):
        features.append((inputs[layer], delta))
        if layer > 0:
            weight = layers[layer][0]  # one (n·k × out) @ (out × in) product, not n small ones
            delta = (delta.reshape(n * k, -1) @ weight).reshape(n, k, -1) * slopes[layer - 1].unsqueeze(1)
    return features


def cross_term(a: list, b: list, first_gram: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_l (h_a h_bᵀ + 1) ⊗ (Δ_a Δ_bᵀ), laid out as (i, a) × (j, b); `first_gram`, when given,
    is the first layer's h_a h_bᵀ + 1 (the last pair of the features)."""
    total = None
    for i, ((ha, da), (hb, db)) in enumerate(zip(a, b)):
        k = da.shape[1]
        first = first_gram is not None and i == len(a) - 1
        gram = first_gram if first else torch.addmm(ha.new_ones(()), ha, hb.T)  # h_a h_bᵀ + 1
        if k > 1:
            gram = gram.repeat_interleave(k, 0).repeat_interleave(k, 1)
        outputs = da.reshape(-1, da.shape[2]) @ db.reshape(-1, db.shape[2]).T
        term = outputs.mul_(gram)  # in place: n·k × n·k floats are the cost at N = 1000
        total = term if total is None else total.add_(term)
    return total


def mlp_ntk(model: MLP, x: torch.Tensor, chunk: int | None = None, input_gram: torch.Tensor | None = None) -> torch.Tensor:
    parts = [mlp_features(model, part) for part in x.split(chunk or len(x))]
    if input_gram is not None and len(parts) == 1:
        return cross_term(parts[0], parts[0], input_gram)
    return torch.cat([torch.cat([cross_term(a, b) for b in parts], dim=1) for a in parts], dim=0)


def jacobian(model: nn.Module, x: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """J (n·k × P) in float64 by torch.func, `chunk` inputs at a time."""
    params = {name: p.detach().double() for name, p in model.named_parameters()}
    buffers = {name: b.double() if b.is_floating_point() else b for name, b in model.named_buffers()}

    def f(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (xi.unsqueeze(0),)).reshape(-1)

    per_input = vmap(jacrev(f), in_dims=(None, 0))
    rows = []
    for part in x.double().split(chunk):
        jac = per_input(params, part)  # name -> (c, k, *shape)
        c, k = part.shape[0], next(iter(jac.values())).shape[1]
        rows.append(torch.cat([j.reshape(c * k, -1) for j in jac.values()], dim=1))
    return torch.cat(rows)


JACOBIAN_CHUNK = 16


def jacobian_ntk(model: nn.Module, x: torch.Tensor, chunk: int = JACOBIAN_CHUNK) -> torch.Tensor:
    j = jacobian(model, x, chunk)
    return j @ j.T


def lambda_min(kernel: torch.Tensor) -> float:
    return float(torch.linalg.eigvalsh(kernel.double())[0])
