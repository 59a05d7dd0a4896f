"""What the CIFAR preset's exact diagnostics cost: a plain SGD epoch against an epoch with the
full-set diagnostics (loss and exact gradient by micro-batches, drift, NTK λ_min on the probe
subset), same process, same model, same data.

    python bench/cifar_epoch_bench.py                  # the preset's real size, synthetic images
    python bench/cifar_epoch_bench.py --n 2000         # a quick look on a CPU

Prints both times and their ratio. Synthetic images of CIFAR's shape stand in for CIFAR-10,
which a machine without the network cannot fetch; the cost does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import time

import torch

import engine
from engine.checkpoint import Start
from engine.data import load_data
from engine.probes import TrainState
from engine.runner import device_name, resolve_device
from engine.train import Loop, full_set_gradient, measure


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int) -> float:
    fn()  # warm-up: kernels, allocator
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=25000, help="training images (the preset: 25000)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    spec = engine.load_spec("cifar", {"data.source": "synthetic", "data.n_train": args.n, "train.seeds": [0]})
    device = resolve_device(args.device)
    data = load_data(spec.data, "resnet-gn").to(device)
    model = engine.build_model(spec).to(device)
    loop = Loop(model, spec, data, Start())  # the training loop's own state and probes

    def plain() -> None:
        loop.step(0)

    def with_diagnostics() -> None:  # epoch 0: every probe is due
        loss = full_set_gradient(model, data, spec.probes.micro_batch)
        measure(loop, TrainState(model, 0, loss, loop.theta0), lambda event: None, 0)
        loop.step(0)

    name = device_name(device)
    print(f"cifar preset, N = {args.n} synthetic images, batch {spec.optim.batch_size}, "
          f"micro-batch {spec.probes.micro_batch}, NTK subset n = {spec.probes.ntk_subset}, on {name}")
    t_plain = timed(plain, device, args.repeat)
    t_diag = timed(with_diagnostics, device, args.repeat)
    print(f"plain SGD epoch:            {t_plain:8.3f} s")
    print(f"epoch with full diagnostics: {t_diag:8.3f} s")
    print(f"ratio diagnostics/plain: {t_diag / t_plain:.2f}x")


if __name__ == "__main__":
    main()
