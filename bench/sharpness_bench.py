"""Sharpness λ_max(∇²L) by power iteration against Lanczos (bench/lanczos.py), counted in HVPs.

On the mnist preset's data (N = 1000 real digits), for each width m (default 128 and 1024), all
in one process, side by side:

(a) at initialisation, cold (both from the same seeded random vector): the HVPs and wall time
    power iteration needs to come within --accuracy (relative) of a reference (Lanczos at
    tol 1e-10), what it returns under its own stop rule (successive estimates within 1e-4),
    and what Lanczos at tol = --accuracy costs and returns (at the first width for several
    Lanczos basis sizes ncv, at the others for --basis only);
(b) along full-batch GD (torch.optim.SGD at the preset's η on squared_loss), a probe every
    --every epochs, warm-started as SharpnessProbe does (30 iterations at the first probe, then
    3): the HVPs and error of the default PowerIteration(iterations=3), the HVPs power iteration
    needs from that same warm vector to come within --accuracy, and the HVPs and error of
    Lanczos(tol = --accuracy, ncv = --basis) warm-started from its own last vector (the
    reference, too, is warm-started from its own last vector). At the --gap widths it also
    prints λ_2/λ_1 at the start and the end, which sets power iteration's rate.

    python bench/sharpness_bench.py            # m = 128 and 1024, 150 epochs, about 3 minutes
    python bench/sharpness_bench.py --gap 128,1024   # also λ_2 at m = 1024: some 100 more HVPs

Both methods run in float32 (the model's dtype), like the probe; the reference's own float32
HVP rounding is about 1e-7 relative, so errors below that are noise. One thread by default
(torch and BLAS): on a shared 2-core machine, oversubscribed threads made an HVP 20x slower.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

import engine
from engine.data import load_data
from lanczos import Lanczos  # bench/lanczos.py: measured here, not used by the probes
from engine.models import count_params, squared_loss
from engine.theory import PowerIteration, hvp


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def reference(model, data, vector=None, basis: int = 4) -> tuple[float, Lanczos]:
    ref = Lanczos(iterations=1000, tolerance=1e-10, basis=basis, vector=vector)
    value = ref(model, data)
    return value, ref


def power_run(model, data, start, ref: float, accuracy: float, cap: int, default_iterations: int,
              tolerance: float = 1e-4, wait_for_rule: bool = True):
    """Power iteration from `start` (None: PowerIteration's seeded vector), one HVP a step, until it
    is within `accuracy` of `ref` and its own stop rule has fired (at most `cap` steps).

    Returns what PowerIteration(default_iterations, tolerance) would have returned (estimate, HVPs,
    its vector), what its stop rule alone returns (estimate, HVPs; None if it never fired, or if
    not `wait_for_rule` and it had not fired by then), the first step within `accuracy` (HVPs,
    seconds; None if never), and the seconds per HVP."""
    p = PowerIteration(iterations=1, tolerance=tolerance, vector=start)
    default = rule = reached = None
    previous = float("nan")
    t0 = time.perf_counter()
    for step in range(1, cap + 1):
        estimate = p(model, data)  # one HVP: the Rayleigh quotient of the vector it started from
        elapsed = time.perf_counter() - t0
        stop = abs(estimate - previous) <= tolerance * abs(estimate)  # PowerIteration's rule
        previous = estimate
        if default is None and (stop or step == default_iterations):
            default = (estimate, step, p.vector)
        if rule is None and stop:
            rule = (estimate, step)
        if reached is None and rel(estimate, ref) <= accuracy:
            reached = (step, elapsed)
        if default and reached and (rule or not wait_for_rule):
            break
    if default is None:
        default = (estimate, step, p.vector)
    return default, rule, reached, elapsed / step


def top_two(model, data) -> tuple[float, float, int]:
    """λ_1 ≥ λ_2 of ∇²L (eigsh, k = 2, tol 1e-6) and the HVPs they took: the gap λ_2/λ_1 sets how
    fast power iteration converges (its Rayleigh quotient's error shrinks by (λ_2/λ_1)² a step)."""
    params = list(model.parameters())
    sizes = [p.numel() for p in params]
    count = 0

    def matvec(x):
        nonlocal count
        count += 1
        flat = torch.from_numpy(np.ascontiguousarray(x).reshape(-1)).to(params[0].dtype, copy=True)
        hv = hvp(model, data, [piece.view(p.shape) for piece, p in zip(flat.split(sizes), params)])
        return torch.cat([h.flatten() for h in hv]).double().numpy()

    n = sum(sizes)
    g = np.random.default_rng(0)
    values = eigsh(LinearOperator((n, n), matvec=matvec, dtype=np.float64), k=2, which="LA", tol=1e-6,
                   ncv=8, v0=g.standard_normal(n), return_eigenvectors=False)
    values = sorted(values, reverse=True)
    return values[0], values[1], count


def timed_lanczos(lanczos: Lanczos, model, data, iterations=None) -> tuple[float, float]:
    t0 = time.perf_counter()
    value = lanczos(model, data, iterations=iterations)
    return value, time.perf_counter() - t0


def fmt_hvps(x) -> str:
    return f"{x}" if x is not None else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="128,1024")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--accuracy", type=float, default=1e-4, help="relative accuracy to reach")
    parser.add_argument("--basis", type=int, default=2, help="Lanczos ncv along GD (2: the fewest HVPs a call)")
    parser.add_argument("--sweep", default="2,3,4,6,10,20", help="Lanczos ncv values tried cold at the first width")
    parser.add_argument("--sweep-others", default="2,4", help="Lanczos ncv values tried cold at the other widths")
    parser.add_argument("--gap", default="128", help="widths at which to also compute λ_2 (eigsh k = 2) at the start and end")
    parser.add_argument("--cap", type=int, default=60, help="most power-iteration steps per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: robust when another process shares the cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:  # ARPACK's and numpy's BLAS too: oversubscribed threads slow everything down many-fold
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    acc = args.accuracy
    widths = [int(w) for w in args.widths.split(",")]
    sweep = [int(b) for b in args.sweep.split(",")]
    sweep_others = [int(b) for b in args.sweep_others.split(",")]
    gap_widths = [int(w) for w in args.gap.split(",") if w]
    start_all = time.perf_counter()
    for index, m in enumerate(widths):
        spec = engine.load_spec("mnist", {"train.device": "cpu", "model.width": m})
        data = load_data(spec.data)
        model = engine.build_model(spec)
        lr = spec.optim.lr
        start_state = engine.build_model(spec) if m in gap_widths else None  # θ_0, for the gap

        # (a) cold, at initialisation
        ref0, ref_chain = reference(model, data)
        default, rule, reached, seconds = power_run(model, data, None, ref0, acc, args.cap, default_iterations=30)
        print(f"\n=== m = {m}: {count_params(model)} parameters, N = {data.n} ({data.source}), "
              f"one HVP {seconds:.3f} s, {args.threads} thread(s)")
        print(f"(a) at initialisation, cold: reference λ_max = {ref0:.6f} "
              f"(Lanczos tol 1e-10 ncv {ref_chain.basis}: {ref_chain.hvps} HVPs, converged {ref_chain.converged}), "
              f"η·λ_max = {lr * ref0:.3f}")
        print(f"  {'method':<42} {'HVPs':>5} {'wall s':>8} {'rel err':>9}")
        r_hvps, r_wall = reached if reached else (None, float("nan"))
        print(f"  {f'power, first estimate within {acc:g}':<42} {r_hvps if reached else f'>{args.cap}':>5} {r_wall:>8.3f} {'<=' + format(acc, 'g'):>9}")
        if rule:
            print(f"  {'power, own stop rule (tol 1e-4)':<42} {rule[1]:>5} {'':>8} {rel(rule[0], ref0):>9.2e}")
        cold, cold_power, lanczos = {}, (default, reached), None
        for basis in dict.fromkeys((sweep if index == 0 else sweep_others) + [args.basis]):
            lz = Lanczos(tolerance=acc, basis=basis)
            value, wall = timed_lanczos(lz, model, data, iterations=30)  # maxiter as at the probe's first call
            cold[basis] = (lz.last_hvps, wall, rel(value, ref0))
            name = f"lanczos ncv={basis} tol={acc:g}" + ("" if lz.converged else " (NOT converged)")
            print(f"  {name:<42} {lz.last_hvps:>5} {wall:>8.3f} {rel(value, ref0):>9.2e}")
            if basis == args.basis:
                lanczos, lanczos_value0 = lz, value  # (b) goes on from this one
        lz_h, lz_wall, _ = cold[args.basis]
        if reached:
            print(f"  cold at init, to {acc:g}: HVPs power (first within, an oracle)/lanczos(ncv {args.basis}) = "
                  f"{r_hvps / lz_h:.2f}x, wall {r_wall / lz_wall:.2f}x")
        if rule:
            print(f"  cold at init: HVPs power (own stop rule)/lanczos(ncv {args.basis}) = {rule[1] / lz_h:.2f}x")

        # (b) along GD, warm-started as the probe would
        print(f"(b) GD at η = {lr:g}, full batch, {args.epochs} epochs, a probe every {args.every} "
              f"(warm starts; first probe cold: power 30 iterations, Lanczos maxiter 30)")
        print(f"  {'epoch':>5} {'loss':>9} {'λ_ref':>10} {'ηλ':>6} {'refHVP':>6} | {'pow(3) HVP':>10} {'err':>8} "
              f"| {'pow→acc HVP':>11} | {'lanczos HVP':>11} {'err':>8} {'conv':>5}")
        power_vector = None
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        rows = []
        for epoch in range(args.epochs + 1):
            if epoch % args.every == 0:
                with torch.no_grad():
                    loss = float(squared_loss(model, data.x, data.y, data.n))
                first = epoch == 0
                if first:  # the cold runs of (a) are the first probe's
                    ref, ref_hvps = ref0, ref_chain.hvps
                    (default, reached), value = cold_power, lanczos_value0
                else:
                    before = ref_chain.hvps
                    ref = ref_chain(model, data)
                    ref_hvps = ref_chain.hvps - before
                    default, rule, reached, _ = power_run(
                        model, data, power_vector, ref, acc, args.cap, default_iterations=3, wait_for_rule=False
                    )
                    value = lanczos(model, data)
                power_vector = default[2]
                row = dict(epoch=epoch, ref=ref, pow_hvps=default[1], pow_err=rel(default[0], ref),
                           reach=reached[0] if reached else None, lz_hvps=lanczos.last_hvps,
                           lz_err=rel(value, ref), lz_conv=lanczos.converged)
                rows.append(row)
                reach = f"{row['reach']}" if reached else f">{args.cap}"
                print(f"  {epoch:>5} {loss:>9.5f} {ref:>10.4f} {lr * ref:>6.3f} {ref_hvps:>6} | {row['pow_hvps']:>10} "
                      f"{row['pow_err']:>8.1e} | {reach:>11} | {row['lz_hvps']:>11} {row['lz_err']:>8.1e} "
                      f"{str(row['lz_conv']):>5}", flush=True)
            if epoch == args.epochs:
                break
            optimizer.zero_grad()
            squared_loss(model, data.x, data.y, data.n).backward()
            optimizer.step()
        if m in gap_widths:
            for when, state in (("start", start_state), ("end", model)):
                l1, l2, hvps = top_two(state, data)
                print(f"  gap at the {when}: λ_1 = {l1:.4f}, λ_2 = {l2:.4f}, λ_2/λ_1 = {l2 / l1:.4f} ({hvps} HVPs)")
        warm = rows[1:]
        if warm:
            pow_hvps = sum(r["pow_hvps"] for r in warm) / len(warm)
            lz_hvps = sum(r["lz_hvps"] for r in warm) / len(warm)
            reach_ok = [r["reach"] for r in warm if r["reach"] is not None]
            print(f"  warm probes (epochs {warm[0]['epoch']}..{warm[-1]['epoch']}), mean HVPs per probe: "
                  f"power(3) {pow_hvps:.1f}, power to {acc:g} "
                  f"{(sum(reach_ok) / len(reach_ok)) if reach_ok else float('nan'):.1f}"
                  f"{'' if len(reach_ok) == len(warm) else f' ({len(warm) - len(reach_ok)} never within cap)'}, "
                  f"lanczos {lz_hvps:.1f}")
            print(f"  warm probes, worst rel err: power(3) {max(r['pow_err'] for r in warm):.1e}, "
                  f"lanczos {max(r['lz_err'] for r in warm):.1e}")
            print(f"  HVPs per warm probe power(3)/lanczos: {pow_hvps / lz_hvps:.2f}x; "
                  f"power to {acc:g}/lanczos: {(sum(reach_ok) / len(reach_ok)) / lz_hvps if reach_ok else float('nan'):.2f}x")
    print(f"\ntotal wall time {time.perf_counter() - start_all:.0f} s")


if __name__ == "__main__":
    main()
