"""What a run will hold in memory, estimated before it starts, against what the device has free.

The estimate is a lower bound built from the tensors a run cannot do without:

- data: the training set, x and y in float32;
- parameters: θ, its gradient, θ_0, the momentum buffer and a checkpoint's copy, in float32;
- activations: what one forward pass keeps for the backward pass, for the largest number of
  inputs taken at once (the step's batch, or the full-set diagnostics' micro-batch);
- NTK subset: the n·k × n·k kernel K_t in float64, with K_0 and one work copy, plus the MLP's
  per-layer features (or the CNN's Jacobian, n·k × P in float64);
- full-set kernel: the same for all N inputs, when `probes.ntk_full_every` asks for it.

Training, the subset NTK and the full-set kernel do not overlap in time, so the run needs
data + parameters + the largest of the other three. A plan is refused when one of its runs
needs more than is free.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.config import Spec
from engine.errors import ConfigError
from engine.kinds import ModelKind, kind_of, outputs_of

FLOAT32, FLOAT64 = 4, 8


def shape_of(spec: Spec, data: tuple | None = None) -> tuple[ModelKind, tuple[int, ...], int]:
    """The spec's model kind, the shape of one input and k: as the loaded data has them
    (`data`: (input shape, k)), else as the kind and the spec say (an ImageFolder tree's image
    size and class count are known only once it is read)."""
    kind = kind_of(spec.model.kind)
    if data is not None:
        return kind, tuple(data[0]), data[1]
    return kind, kind.input_shape, outputs_of(kind, spec.data.source, spec.data.classes)


def parameter_count(spec: Spec, data: tuple | None = None) -> int:
    """P, counted on the meta device: nothing is allocated or initialised."""
    kind, shape, k = shape_of(spec, data)
    with torch.device("meta"):
        model = kind.build(spec.model, shape, k, 0)
    return sum(p.numel() for p in model.parameters())


def kernel_bytes(inputs: int, spec: Spec, params: int, data: tuple | None = None) -> int:
    """The NTK on `inputs` inputs: three n·k × n·k float64 matrices, and what builds them."""
    kind, shape, k = shape_of(spec, data)
    rows = inputs * k
    kernels = 3 * rows * rows * FLOAT64
    if not kind.closed_form_ntk:
        return kernels + rows * params * FLOAT64  # J, n·k × P
    features = inputs * (math.prod(shape) + spec.model.width * spec.model.depth * (1 + k))
    return kernels + features * FLOAT64


@dataclass(frozen=True)
class Footprint:
    parts: dict  # what -> bytes
    keys: dict  # what -> the spec key that sets its size

    @property
    def total(self) -> int:
        fixed = self.parts["data"] + self.parts["parameters"]
        return fixed + max(v for name, v in self.parts.items() if name not in ("data", "parameters"))

    @property
    def largest(self) -> str:
        return max(self.parts, key=self.parts.get)


def estimate(spec: Spec, data: tuple | None = None) -> Footprint:
    """`data`: (the shape of one input, k) of the loaded training set, when it is loaded."""
    kind, shape, k = shape_of(spec, data)
    n, params = spec.data.n_train, parameter_count(spec, data)
    step_rows = spec.optim.batch_size if spec.optim.kind == "sgd" else n
    rows = max(min(step_rows, n), spec.probes.micro_batch or n)
    parts = {
        "data": n * (math.prod(shape) + k) * FLOAT32,
        "parameters": 5 * params * FLOAT32,
        "activations": rows * kind.activations(spec.model, shape) * FLOAT32,
        "NTK subset": kernel_bytes(spec.probes.ntk_subset, spec, params, data) if spec.probes.every else 0,
        "full-set kernel": kernel_bytes(n, spec, params, data) if spec.probes.ntk_full_every and kind.closed_form_ntk else 0,
    }
    keys = {
        "data": "data.n_train", "parameters": kind.width_key, "activations": "probes.micro_batch" if spec.probes.micro_batch else "data.n_train",
        "NTK subset": "probes.ntk_subset", "full-set kernel": "probes.ntk_full_every",
    }
    return Footprint(parts, keys)


def free_bytes(device: torch.device) -> int:
    """What the device can still give: CUDA's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return ""


def check_memory(spec: Spec, device: torch.device, free: int, label: str = "", data: tuple | None = None) -> Footprint:
    """The run's footprint, or a ConfigError naming the largest part's key when it exceeds `free`."""
    footprint = estimate(spec, data)
    if footprint.total <= free:
        return footprint
    largest = footprint.largest
    key = footprint.keys[largest]
    value = spec
    for part in key.split("."):
        value = getattr(value, part)
    listed = ", ".join(f"{name} {size(b)}" for name, b in footprint.parts.items() if b)
    who = f"run {label}: " if label else ""
    raise ConfigError(
        key, value,
        f"{who}the run needs at least {size(footprint.total)} on {device} ({listed}) but {size(free)} is free; "
        f"the {largest} is the largest part",
    )
