"""Why He-normal on every layer diverged for the CNN, and where the cifar preset's step sits.

For each initialisation of the ResNet-GN, on N real images (an ImageFolder tree):
- β = λ_max(∇²L) at θ_0 by power iteration (the same as `lplr-tui advise`), so 1/β and 2/β,
  and heavy ball's stability edge 2(1 + μ)/β;
- the first epochs of the preset's SGD (batch 128, momentum μ, the base step η held constant),
  the loss after each epoch and the largest mini-batch loss seen.

The loss is the project's, (1/2N) Σ_i ‖f(x_i) − y_i‖², summed over the k outputs: its gradient
is k/2 = 2.5 times that of a mean over all N·k entries (PyTorch's MSELoss), so a step η here is
a step 2.5·η there. Momentum μ makes the step along a steady gradient η/(1 − μ).

    python bench/cifar_init.py --root <tree> --n 1000 --epochs 2
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

import engine
from engine.data import load_data
from engine.models import ResNetGN, squared_loss
from engine.theory import PowerIteration


def he_normal_everywhere(model: nn.Module) -> None:
    """He-normal (fan-in, ReLU gain) on every convolution and linear layer, zero biases,
    GroupNorm scales 1: the MLP's initialisation applied to the CNN."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.GroupNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()


def build(init: str, k: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = ResNetGN(3, k, 16, 8)
    if init == "zero-init residual (preset)":
        for block in model.stages:
            block.norm2.weight.data.zero_()
    elif init == "He-normal everywhere":
        he_normal_everywhere(model)
    return model  # "PyTorch default": as constructed


def sgd_epochs(model: nn.Module, data, lr: float, momentum: float, batch: int, epochs: int) -> tuple[list[float], float]:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    g = torch.Generator().manual_seed(0)
    losses, worst = [], 0.0
    for _ in range(epochs):
        order = torch.randperm(data.n, generator=g)
        for idx in order.split(batch):
            opt.zero_grad()
            loss = squared_loss(model, data.x[idx], data.y[idx], len(idx))
            loss.backward()
            opt.step()
            worst = max(worst, loss.item()) if math.isfinite(loss.item()) else math.inf
            if not math.isfinite(worst):
                break
        with torch.no_grad():
            losses.append(squared_loss(model, data.x, data.y, data.n).item())
        if not math.isfinite(losses[-1]):
            break
    return losses, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="an ImageFolder tree (e.g. CIFAR-10's classes 0-4 as JPEGs)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=15, help="power iterations for β, at most")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="power iteration stops at this relative change")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    spec = engine.load_spec("cifar", {"data.source": "imagefolder", "data.root": args.root, "data.n_train": args.n})
    data = load_data(spec.data, "resnet-gn")
    lr, mu, batch = spec.optim.lr, spec.optim.momentum, spec.optim.batch_size
    print(f"N = {data.n} real images ({data.detail}); η = {lr:g}, μ = {mu:g}, batch {batch}, seed {args.seed}")
    print(f"loss (1/2N)Σ‖f−y‖² over k = {data.k} outputs: η here is η·k/2 = {lr * data.k / 2:g} for a mean-over-entries MSE;"
          f" effective step with momentum η/(1−μ) = {lr / (1 - mu):g}")
    header = f"{'initialisation':30} {'L_0':>8} {'β':>9} {'1/β':>9} {'2/β':>9} {'2(1+μ)/β':>9} {'η·β':>7}  loss after each epoch (max mini-batch loss)"
    print(header)
    for init in ("zero-init residual (preset)", "PyTorch default", "He-normal everywhere"):
        model = build(init, data.k, args.seed)
        with torch.no_grad():
            l0 = squared_loss(model, data.x, data.y, data.n).item()
        started = time.perf_counter()
        beta = PowerIteration(iterations=args.iterations, tolerance=args.tolerance)(model, data, 0)
        took = time.perf_counter() - started
        losses, worst = sgd_epochs(model, data, lr, mu, batch, args.epochs)
        shown = ", ".join(f"{v:.3g}" for v in losses)
        print(f"{init:30} {l0:8.3g} {beta:9.4g} {1 / beta:9.3g} {2 / beta:9.3g} {2 * (1 + mu) / beta:9.3g} {lr * beta:7.3g}  "
              f"{shown} ({worst:.3g}) [β in {took:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
