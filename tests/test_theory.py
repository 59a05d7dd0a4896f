"""The theorems' hypotheses, measured: Hessian power iteration, the PL-bound identity, the
step-size advisor, and the theory columns of a record."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

import engine
from engine.data import Dataset, load_data
from engine.events import RunFinished
from engine.models import MLP, he_normal_
from engine.ntk import empirical_ntk
from engine.record import find_records, read_record
from engine.theory import PowerIteration
from lplr_tui.cli import app


def test_power_iteration_matches_the_explicit_hessian_on_a_tiny_mlp():
    torch.manual_seed(0)
    model = MLP(3, 5, 2, 1).double()
    he_normal_(model, torch.Generator().manual_seed(3))
    data = Dataset(torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 1, dtype=torch.float64), "synthetic", "")
    params = [p for p in model.parameters()]
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().flatten() for p in params])

    def loss_of(theta):
        pieces, i = {}, 0
        for (name, _), shape in zip(model.named_parameters(), shapes):
            pieces[name] = theta[i : i + math.prod(shape)].reshape(shape)
            i += math.prod(shape)
        out = torch.func.functional_call(model, pieces, (data.x,))
        return 0.5 * (out - data.y).pow(2).sum() / data.n

    eig = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat))
    top = eig[eig.abs().argmax()].item()
    estimate = PowerIteration(iterations=5000, tolerance=1e-12)(model, data)
    assert estimate == pytest.approx(top, rel=1e-6)


def test_gradient_norm_is_the_ntk_quadratic_form(make_spec):
    """‖∇L‖² = rᵀ K_N r / N² on the real model and real digits, in float64."""
    spec = make_spec(model__width=64, data__n_train=200)
    data = load_data(spec.data)
    model = engine.build_model(spec).double()
    x, y = data.x.double(), data.y.double()
    residual = (model(x) - y).detach()
    loss = 0.5 * (model(x) - y).pow(2).sum() / data.n
    grads = torch.autograd.grad(loss, list(model.parameters()))
    grad_sq = sum((g**2).sum() for g in grads).item()
    quadratic = (residual.T @ empirical_ntk(model, x) @ residual).item() / data.n**2
    assert grad_sq == pytest.approx(quadratic, rel=1e-8)


@pytest.mark.slow
def test_advise_flags_exactly_the_boundary_run_of_the_ablation(data_root):
    result = CliRunner().invoke(app, ["advise", "--preset", "ablation", "--data-dir", data_root, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["run", "η", "β", "1/β", "2/β", "at", "initialisation"] and len(lines) == 7
    classes = {line.split("  ")[0]: line.rsplit("  ", 1)[1].strip() for line in lines[1:6]}
    assert classes == {
        "m=128 η=1e-3": "inside the theorem", "m=256 η=1e-3": "inside the theorem",
        "m=512 η=1e-3": "stable, outside the theorem", "m=1024 η=1e-3": "unstable", "m=1024 η=2.5e-4": "inside the theorem",
    }
    assert max(len(line) for line in lines[:6]) <= 78


@pytest.mark.slow
def test_a_run_with_theory_probes_records_them_and_the_bound_holds(make_spec, tmp_path):
    spec = make_spec(train__epochs=40, probes__every=10, probes__theory_every=20, probes__ntk_full_every=20,
                     probes__ntk_subset=20, data__n_train=300)
    events = list(engine.run(spec, tmp_path))
    record = read_record(find_records([tmp_path])[0])
    t = record.trajectory
    assert t.theory_epoch == [0, 20, 40] and len(t.sharpness) == 3
    assert all(low > 0 and high > low for low, high in zip(t.ntk_full_lambda_min, t.ntk_full_lambda_max))
    assert len(t.ntk_full_lambda_min) == 3
    # near the start the sharpness is the Gauss-Newton value λ_max(K_N)/N
    assert t.sharpness[0] == pytest.approx(t.ntk_full_lambda_max[0] / 300, rel=0.05)
    s = record.summary
    assert s["pl_bound_holds_frac"] == 1.0
    assert s["eta_beta_max"] == pytest.approx(1e-3 * s["sharpness_max"]) and s["eta_beta_0"] == pytest.approx(1e-3 * t.sharpness[0])
    assert s["lipschitz_K"] > 0 and s["compat_margin"] == pytest.approx(s["lambda_0"] - s["lipschitz_K"] * s["drift_max"])
    assert t.ntk_change[0] == 0.0 and all(c > 0 for c in t.ntk_change[1:])
    finished = next(e for e in events if isinstance(e, RunFinished))
    summary, verdicts = record.reanalyse()
    assert summary.keys() == finished.summary.keys() and [v["name"] for v in verdicts] == [v["name"] for v in finished.verdicts]


@pytest.mark.parametrize("theory_every, ntk_full_every", [(20, 0), (0, 20), (20, 40)])
def test_sharpness_and_the_full_set_spectrum_keep_their_own_cadences(make_spec, tmp_path, theory_every, ntk_full_every):
    spec = make_spec(train__epochs=40, probes__every=10, probes__theory_every=theory_every,
                     probes__ntk_full_every=ntk_full_every, probes__ntk_subset=10, data__n_train=60)
    list(engine.run(spec, tmp_path))
    t = read_record(find_records([tmp_path])[0]).trajectory
    due = lambda every, e: every > 0 and (e % every == 0 or e == 40)
    assert t.theory_epoch == [e for e in range(41) if due(theory_every, e) or due(ntk_full_every, e)]
    for epoch, beta, low in zip(t.theory_epoch, t.sharpness, t.ntk_full_lambda_min):
        assert math.isfinite(beta) == due(theory_every, epoch), epoch  # NaN where only the other was due
        assert math.isfinite(low) == due(ntk_full_every, epoch), epoch


class Curved(torch.nn.Module):
    """f(x) = ½ Σ c_i θ_i² for every input: at θ = 0 with targets 1 the loss ½(f − 1)² has
    Hessian −diag(c), whatever the data."""

    def __init__(self, c):
        super().__init__()
        self.c = torch.tensor(c, dtype=torch.float32)
        self.theta = torch.nn.Parameter(torch.zeros(len(c)))

    def forward(self, x):
        return (0.5 * (self.c * self.theta**2).sum()).expand(len(x), 1)


@pytest.mark.parametrize("c, top", [((5.0, -3.0, -1.0), 3.0), ((-2.0, -0.5), 2.0), ((1.0, 4.0), -1.0), ((-0.5, 0.4), 0.5)])
def test_power_iteration_finds_the_top_eigenvalue_even_under_larger_negative_curvature(c, top):
    from engine.data import Dataset
    from engine.theory import PowerIteration

    data = Dataset(torch.zeros(4, 1), torch.ones(4, 1), "synthetic", "")
    # Hessians diag(−5, 3, 1): the largest magnitude is −5, the top 3; diag(2, 0.5); diag(−1, −4): the top is −1;
    # diag(0.5, −0.4): a top below 1 is not shifted (shifting it by −0.5 would find −0.4)
    assert PowerIteration(iterations=200, tolerance=1e-9)(Curved(c), data) == pytest.approx(top, rel=1e-4)


def test_advise_builds_the_model_with_the_datas_class_count(monkeypatch):
    """A classifier's outputs come from its data (an ImageFolder tree with every class folder),
    not from the spec's guess: here 3 classes where the cifar preset names 5."""
    import engine.theory as theory
    from engine.config import Plan, load_spec
    from engine.data import Dataset

    monkeypatch.setattr(theory, "PowerIteration", lambda **settings: lambda model, data, micro_batch=0: float(model(data.x).shape[1]))
    spec = load_spec("cifar", {"data.source": "synthetic", "data.n_train": 10, "probes.ntk_subset": 2, "train.seeds": [0]})
    data = Dataset(torch.randn(6, 3, 8, 8), torch.nn.functional.one_hot(torch.arange(6) % 3, 3).float(), "synthetic", "")
    (advice,) = theory.advise([(Plan.of(spec).runs[0], data)], torch.device("cpu"))
    assert advice.sharpness == 3.0  # the model had one output per class of the data
