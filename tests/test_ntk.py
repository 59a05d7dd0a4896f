"""The closed-form MLP NTK against an explicit torch.func J Jᵀ (float64)."""

import pytest
import torch
from torch import nn

import engine
from engine.data import load_data
from engine.models import MLP, he_normal_
from engine.ntk import jacobian, jacobian_ntk, lambda_min, mlp_ntk


def explicit_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """J Jᵀ with J from torch.func.jacrev on all parameters at once (no chunking, no vmap tricks)."""
    params = {k: v.detach().double() for k, v in model.named_parameters()}

    def f(p):
        return torch.func.functional_call(model, p, (x.double(),)).reshape(-1)

    jac = torch.func.jacrev(f)(params)
    j = torch.cat([v.reshape(v.shape[0], -1) for v in jac.values()], dim=1)
    return j @ j.T


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("width", [128, 256])
def test_closed_form_equals_explicit_jjt_on_real_digits(make_spec, width):
    spec = make_spec(model__width=width)
    model = engine.build_model(spec).double()
    data = load_data(spec.data)
    x = data.x[torch.randperm(data.n, generator=torch.Generator().manual_seed(0))[:40]]
    closed, explicit = engine.empirical_ntk(model, x), explicit_ntk(model, x)
    assert closed.dtype == torch.float64 and closed.shape == (40, 40)
    assert relative(closed, explicit) <= 1e-8
    assert lambda_min(closed) == pytest.approx(lambda_min(explicit), rel=1e-8)


def test_closed_form_handles_several_outputs_and_large_preactivations():
    torch.manual_seed(0)
    model = MLP(6, 16, 3, d_out=4, beta=1.5).double()
    he_normal_(model, torch.Generator().manual_seed(1))
    x = 8.0 * torch.randn(7, 6, dtype=torch.float64)  # some z·β beyond softplus' threshold
    closed = mlp_ntk(model, x)
    assert closed.shape == (28, 28)
    assert relative(closed, explicit_ntk(model, x)) <= 1e-10


def test_generic_path_serves_models_without_a_closed_form():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).double()
    x = torch.randn(5, 1, 6, 6, dtype=torch.float64)
    kernel = engine.empirical_ntk(model, x)
    assert kernel.shape == (10, 10)
    assert relative(kernel, explicit_ntk(model, x)) <= 1e-10
    assert relative(jacobian_ntk(model, x, chunk=2), kernel) <= 1e-12  # chunking changes nothing


def test_float32_model_still_gives_a_float64_kernel(make_spec):
    model = engine.build_model(make_spec())
    x = torch.rand(8, 784)
    assert engine.empirical_ntk(model, x).dtype == torch.float64
    assert jacobian(model, x).shape == (8, 150_145)


def test_kernel_is_symmetric_positive_semidefinite(make_spec):
    model = engine.build_model(make_spec(model__width=64))
    kernel = engine.empirical_ntk(model, torch.rand(30, 784))
    assert torch.allclose(kernel, kernel.T)
    assert lambda_min(kernel) > 0


def test_a_precomputed_input_gram_gives_the_same_kernel():
    from engine.ntk import empirical_ntk, input_gram

    torch.manual_seed(0)
    model = MLP(6, 5, 3, 2)
    x = torch.randn(9, 6)
    plain, cached = empirical_ntk(model, x), empirical_ntk(model, x, input_gram=input_gram(x))
    assert torch.allclose(plain, cached, rtol=1e-12, atol=0)
    assert torch.equal(empirical_ntk(model, x, chunk=4, input_gram=input_gram(x)), empirical_ntk(model, x, chunk=4))
