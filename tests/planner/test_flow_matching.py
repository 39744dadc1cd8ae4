"""Flow-matching pieces: analytic solver oracles, the path and its target, the loss, the time laws."""

from __future__ import annotations

import math

import pytest
import torch

from planner.flow_matching import RectifiedFlowPath, flow_matching_loss, solve_ode
from tests.settings import time_sampler

torch.set_num_threads(1)


@pytest.mark.parametrize("method", ["euler", "midpoint"])
@pytest.mark.parametrize("n_steps", [1, 3, 10])
def test_constant_velocity_field_integrates_exactly(method, n_steps):
    x0 = torch.tensor([[0.5, -2.0], [1.0, 3.0]], dtype=torch.float64)
    velocity = torch.tensor([1.5, -0.25], dtype=torch.float64)
    calls = []

    def field(x, t):
        calls.append(t)
        return velocity.expand_as(x)

    x1 = solve_ode(field, x0, n_steps, method)
    torch.testing.assert_close(x1, x0 + velocity, rtol=0, atol=1e-12)
    expected_calls = n_steps * (2 if method == "midpoint" else 1)
    assert len(calls) == expected_calls and calls[0] == 0.0 and max(calls) < 1.0


def test_solver_orders_on_a_linear_field():
    # dx/dt = a x from x0: x(1) = x0 e^a. Euler is first order, midpoint second order.
    a, x0 = -1.3, torch.tensor([2.0], dtype=torch.float64)
    exact = x0 * math.exp(a)
    errors = {
        method: [float((solve_ode(lambda x, t: a * x, x0, n, method) - exact).abs()) for n in (8, 16)]
        for method in ("euler", "midpoint")
    }
    assert 1.8 < errors["euler"][0] / errors["euler"][1] < 2.2
    assert 3.6 < errors["midpoint"][0] / errors["midpoint"][1] < 4.4
    assert errors["midpoint"][1] < errors["euler"][1] / 10


def test_solver_rejects_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        solve_ode(lambda x, t: x, torch.zeros(1), 2, "rk4")
    with pytest.raises(ValueError, match="n_steps"):
        solve_ode(lambda x, t: x, torch.zeros(1), 0)


def test_path_endpoints_and_target_is_the_time_derivative():
    path = RectifiedFlowPath(sigma_min=1e-3)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(4, 6, 2, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 6, 2, generator=g, dtype=torch.float64)
    at0 = path.sample(x1, noise, torch.zeros(4, dtype=torch.float64))
    at1 = path.sample(x1, noise, torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(at0.x_t, noise, rtol=0, atol=0)
    torch.testing.assert_close(at1.x_t, x1 + 1e-3 * noise, rtol=0, atol=1e-15)
    t = torch.rand(4, generator=g, dtype=torch.float64)
    h = 1e-6
    finite_difference = (path.sample(x1, noise, t + h).x_t - path.sample(x1, noise, t - h).x_t) / (2 * h)
    sample = path.sample(x1, noise, t)
    torch.testing.assert_close(sample.velocity, finite_difference, rtol=0, atol=1e-8)
    torch.testing.assert_close(sample.velocity, x1 - (1 - 1e-3) * noise, rtol=0, atol=0)
    # Integrating the conditional (constant) velocity from the noise lands on the path's endpoint.
    landed = solve_ode(lambda x, _t: sample.velocity, noise, 10, "euler")
    torch.testing.assert_close(landed, at1.x_t, rtol=0, atol=1e-12)
    # Times for (B, S) leading dims broadcast over the trailing ones.
    t2 = torch.rand(4, 3, generator=g, dtype=torch.float64)
    x1s = x1[:, None].expand(4, 3, 6, 2)
    noise_s = noise[:, None].expand(4, 3, 6, 2)
    torch.testing.assert_close(path.sample(x1s, noise_s, t2).x_t[:, 1], path.sample(x1, noise, t2[:, 1]).x_t)
    with pytest.raises(ValueError, match="t shape"):
        path.sample(x1, noise, torch.zeros(5))
    with pytest.raises(ValueError, match="sigma_min"):
        RectifiedFlowPath(sigma_min=1.0)


def test_loss_is_zero_for_the_exact_velocity_and_respects_the_mask():
    path = RectifiedFlowPath()
    g = torch.Generator().manual_seed(1)
    x1, noise, t = torch.randn(3, 6, 2, generator=g), torch.randn(3, 6, 2, generator=g), torch.rand(3, generator=g)
    sample = path.sample(x1, noise, t)
    assert flow_matching_loss(sample.velocity.clone(), sample.velocity).item() == 0.0
    wrong = sample.velocity + 2.0
    assert flow_matching_loss(wrong, sample.velocity).item() == pytest.approx(4.0)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[0, :2] = True
    off_mask = sample.velocity.clone()
    off_mask[~mask] += 100.0  # errors where the mask is false do not count
    assert flow_matching_loss(off_mask, sample.velocity, mask).item() == 0.0
    off_mask[0, 0, 1] += 3.0  # one of 2 * 2 masked-in values off by 3
    assert flow_matching_loss(off_mask, sample.velocity, mask).item() == pytest.approx(9.0 / 4)
    assert flow_matching_loss(off_mask, sample.velocity, torch.zeros(3, 6, dtype=torch.bool)).item() == 0.0


def _empirical_cdf(samples: torch.Tensor, x: float) -> float:
    return float((samples <= x).double().mean())


def test_beta_time_law_is_pi0s_noise_biased_law():
    sampler = time_sampler("beta")
    t = sampler.sample(200_000, torch.Generator().manual_seed(0))
    assert t.shape == (200_000,) and t.min() >= 0.0 and t.max() <= 0.999
    assert float(t.mean()) == pytest.approx(0.999 / 2.5, abs=3e-3)  # t_max * (1 - alpha / (alpha + 1))
    for x in (0.1, 0.3, 0.5, 0.8):
        assert _empirical_cdf(t, x) == pytest.approx(1 - (1 - x / 0.999) ** 1.5, abs=5e-3)
    assert _empirical_cdf(t, 0.5) > 0.6  # more mass near the noise end (t = 0)


def test_uniform_and_logit_normal_time_laws():
    g = torch.Generator().manual_seed(2)
    u = time_sampler("uniform").sample(200_000, g)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert float(u.mean()) == pytest.approx(0.5, abs=3e-3) and float(u.var()) == pytest.approx(1 / 12, abs=2e-3)
    ln = time_sampler("logit_normal").sample((400, 500), g)
    assert ln.shape == (400, 500) and ln.min() > 0.0 and ln.max() < 1.0
    assert float(ln.mean()) == pytest.approx(0.5, abs=3e-3)
    assert _empirical_cdf(ln, 1 / (1 + math.exp(-1.0))) == pytest.approx(0.8413, abs=5e-3)  # P(N <= 1)


def test_time_laws_are_reproducible_from_the_generator():
    for law in ("beta", "uniform", "logit_normal"):
        a = time_sampler(law).sample(8, torch.Generator().manual_seed(5))
        b = time_sampler(law).sample(8, torch.Generator().manual_seed(5))
        c = time_sampler(law).sample(8, torch.Generator().manual_seed(6))
        assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(TypeError, match="Generator"):
        time_sampler().sample(3, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="law"):
        time_sampler("cosine")
