"""The CIFAR CNN experiment: the real torchvision loading path on a tiny CIFAR-format folder,
the ResNet-GN's NTK, SGD with cosine annealing, exact full-set diagnostics, Table 2."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import engine
from engine.config import DataSpec
from engine.data import load_data
from engine.errors import DataError
from engine.events import RunFinished
from engine.models import ResNetGN, count_params
from engine.record import find_records, read_record
from engine.train import full_set_gradient, step_size
from lplr_tui.cli import app
from test_untrusted import cancelled_at

PER_CLASS = 4  # images of each of the ten classes in the tiny folder


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """cifar-10-batches-py with the official pickle layout, a few images per class. torchvision
    checks the official md5 sums: that one check is patched, nothing else."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    labels = [c for c in range(10) for _ in range(PER_CLASS)]
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        data[:, 0] = np.arange(len(labels)) + 10 * i  # first red pixel: a fingerprint
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}, fh)
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: __import__("os").path.isfile(path))
    return tmp_path


def test_cifar_loads_through_torchvision_balanced_normalised_one_hot(cifar_root):
    data = load_data(DataSpec(source="cifar10-5", root=str(cifar_root), n_train=10), "resnet-gn")
    assert data.source == "torchvision" and data.x.shape == (10, 3, 32, 32) and data.y.shape == (10, 5)
    assert data.y.sum(0).tolist() == [2.0] * 5 and torch.all(data.y.sum(1) == 1)  # balanced, one-hot
    # five batches of 40 are concatenated: class c's first two images sit at 4c and 4c+1
    red = data.x[:, 0, 0, 0] * data.std[0] + data.mean[0]
    assert (red * 255).round().tolist() == [0, 1, 4, 5, 8, 9, 12, 13, 16, 17]
    # normalised with the chosen images' own statistics: each channel has mean 0 and std 1
    assert data.x.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (data.x.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-5
    assert data.classes == ("airplane", "automobile", "bird", "cat", "deer") and data.per_class == (2,) * 5


def test_cifar_classes_by_name_or_index_and_given_statistics(cifar_root):
    spec = DataSpec(source="cifar10-5", root=str(cifar_root), n_train=4, classes=["truck", 8], mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    data = load_data(spec, "resnet-gn")
    assert data.classes == ("truck", "ship") and data.y.shape == (4, 2) and data.y[:2, 0].tolist() == [1.0, 1.0]
    red = data.x[:, 0, 0, 0] * 0.25 + 0.5  # the given statistics, not the images' own
    assert (red * 255).round().tolist() == [36, 37, 32, 33]
    assert data.mean == (0.5, 0.5, 0.5) and data.std == (0.25, 0.25, 0.25)


def test_missing_cifar_says_where_it_looked_and_what_to_place(tmp_path):
    with pytest.raises(DataError) as info:
        load_data(DataSpec(source="cifar10-5", root=str(tmp_path), n_train=10), "resnet-gn")
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "cifar-10-python.tar.gz" in message and "data.download = true" in message
    assert '--set data.source="imagefolder"' in message  # the other way to get images
    result = CliRunner().invoke(app, ["run", "--preset", "cifar", "--data-dir", str(tmp_path), "--results", str(tmp_path / "r")])
    assert result.exit_code == 2 and "cifar-10-python.tar.gz" in result.stderr and "Traceback" not in result.output


def test_two_epochs_of_the_preset_write_three_records_and_table_2(cifar_root, tmp_path):
    args = ["run", "--preset", "cifar", "--data-dir", str(cifar_root), "--results", str(tmp_path / "results"),
            "--set", "data.n_train=20", "--set", "train.epochs=2", "--set", "probes.ntk_subset=4", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Table 2" in result.stdout and "all 3: PL min the minimum, PL median pooled" in result.stdout
    records = [read_record(p) for p in find_records([tmp_path / "results"])]
    assert [r.label for r in records] == [f"resnet-gn w=16 η=0.05 seed={s}" for s in range(3)]
    for record in records:
        assert record.state == "finished" and record.environment["data_source"] == "torchvision"
        assert record.trajectory.epoch == [0, 1, 2] and record.trajectory.probe_epoch == [0, 1, 2]
        assert record.summary["params"] == 174_933 and record.summary["lambda_0"] > 0
    assert len({r.trajectory.loss[0] for r in records}) == 3  # three seeds, three initialisations
    (summary,) = (tmp_path / "results").glob("*-cifar-summary.toml")
    assert "[mean]" in summary.read_text()


def test_resnet_gn_shape_and_parameter_count(make_spec):
    spec = make_spec("cifar", data__source="synthetic", data__n_train=100)
    model = engine.build_model(spec)
    assert isinstance(model, ResNetGN) and count_params(model) == 174_933
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in model.modules()) == 1 + 6 * 2 + 2


def test_cnn_ntk_equals_explicit_jjt_in_float64(make_spec):
    model = engine.build_model(make_spec("cifar", data__source="synthetic", data__n_train=100))
    with torch.no_grad():  # away from the zero-initialised block scales, so every path counts
        for block in model.stages:
            block.norm2.weight.fill_(0.7)
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    params = {k: v.detach().double() for k, v in model.named_parameters()}
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(model, p, (x,)).reshape(-1))(params)
    j = torch.cat([v.reshape(15, -1) for v in jac.values()], dim=1)
    kernel = engine.empirical_ntk(model, x)
    assert kernel.shape == (15, 15) and kernel.dtype == torch.float64
    assert ((kernel - j @ j.T).norm() / (j @ j.T).norm()).item() <= 1e-8


def test_full_set_diagnostics_are_exact_under_micro_batching(make_spec):
    spec = make_spec("cifar", data__source="synthetic", data__n_train=60)
    data = load_data(spec.data, "resnet-gn")
    model = engine.build_model(spec)
    whole = full_set_gradient(model, data, 0).item()
    g_whole = torch.cat([p.grad.flatten() for p in model.parameters()])
    parts = full_set_gradient(model, data, 7).item()
    g_parts = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert parts == pytest.approx(whole, rel=1e-5)
    assert torch.allclose(g_parts, g_whole, rtol=1e-4, atol=1e-7)


def test_cosine_annealing(make_spec):
    spec = make_spec("cifar", data__source="synthetic", data__n_train=100, train__epochs=50)
    assert step_size(spec, 0) == 0.05
    assert step_size(spec, 25) == pytest.approx(0.025)
    assert step_size(spec, 49) == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 49 / 50)))


def test_sgd_run_resumes_bit_for_bit(make_spec, tmp_path):
    spec = make_spec("cifar", data__source="synthetic", data__n_train=100, train__epochs=4,
                     train__seeds=[0], probes__ntk_subset=3, optim__batch_size=16)
    list(engine.run(spec, tmp_path / "whole"))
    cut_dir = cancelled_at(spec, tmp_path / "cut", 1)
    assert read_record(cut_dir).state == "interrupted"
    resumed = engine.Runner.resume(cut_dir)
    resumed.preflight()
    resumed.start()
    events = list(resumed.iter_events())
    assert next(e for e in events if isinstance(e, RunFinished)).state == "finished"
    whole, cut = read_record(find_records([tmp_path / "whole"])[0]), read_record(cut_dir)
    assert whole.trajectory == cut.trajectory


def test_synthetic_images_are_labelled_synthetic(make_spec, tmp_path):
    spec = make_spec("cifar", data__source="synthetic", data__n_train=50, train__epochs=1, train__seeds=[0], probes__ntk_subset=2)
    list(engine.run(spec, tmp_path))
    record = read_record(find_records([tmp_path])[0])
    assert record.environment["data_source"] == "synthetic" and "SYNTHETIC" in record.environment["data_detail"]
