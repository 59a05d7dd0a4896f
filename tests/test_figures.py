"""`lplr-tui plot`: publication figures of records. What is drawn is the record's data; the files
open as what their suffix says; bad input is one line and exit 2."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.testing.compare import compare_images
from typer.testing import CliRunner

from engine.record import read_record
from lplr_tui import figures
from lplr_tui.cli import app, load_records
from made_records import trajectory, write_record

runner = CliRunner()
BASELINE = Path(__file__).parent / "baseline"


def panel(fig, name: str):
    return next(ax for ax in fig.axes if ax.get_gid() == name)


def line(ax, label: str):
    """The plotted line of a run (the envelope, band and bound have labels starting with _)."""
    return next(l for l in ax.get_lines() if l.get_label() == label)


def runs_of(*dirs: Path) -> list[figures.FigureRun]:
    return [figures.FigureRun.of_record(r) for r in load_records(list(dirs))]


def masked(values, log: bool) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v) & ((v > 0) if log else True), v, np.nan)


@pytest.fixture
def one_run(tmp_path) -> Path:
    traj = trajectory(60)
    traj.loss[30] = float("nan")  # a NaN and an inf are data: recorded, drawn as gaps
    traj.drift[4] = float("inf")
    traj.ntk_lambda_min[3] = -0.5  # a negative λ_min is drawn (a linear axis)
    notes = [{"epoch": 12, "kind": "loss_rose", "text": "the loss rose"}]
    return write_record(tmp_path / "results", "run-a", traj=traj, annotations=notes)


def test_every_plotted_line_is_the_records_data(one_run):
    record = read_record(one_run)
    a = record.trajectory.arrays()
    fig = figures.draw(runs_of(one_run), figures.DEFAULT_PANELS + figures.THEORY_PANELS, (3.5, 6.0))
    label = record.label
    lam = line(panel(fig, "lambda"), label)
    assert np.array_equal(lam.get_xdata(), a["probe_epoch"])
    assert np.array_equal(lam.get_ydata(), masked(a["ntk_lambda_min"], False), equal_nan=True)
    assert lam.get_ydata()[3] == -0.5
    drift = line(panel(fig, "drift"), label)
    assert np.array_equal(drift.get_ydata(), masked(a["drift"], False), equal_nan=True) and math.isnan(drift.get_ydata()[4])
    pl = line(panel(fig, "pl"), label)
    assert np.array_equal(pl.get_xdata(), a["epoch"])
    assert np.allclose(pl.get_ydata(), masked(a["grad_sq"] / (2 * a["loss"]), True), rtol=1e-15, equal_nan=True)
    subopt = line(panel(fig, "subopt"), label)
    l_star = a["loss"][-1]  # the terminal-loss proxy of a finished run
    assert np.allclose(subopt.get_ydata(), masked(a["loss"] - l_star, True), rtol=1e-15, equal_nan=True)
    assert math.isnan(subopt.get_ydata()[30]) and math.isnan(subopt.get_ydata()[-1])  # NaN, and L_T − L* = 0 on a log axis
    step = line(panel(fig, "step"), label)  # η·β at the theory epochs
    assert np.array_equal(step.get_xdata(), a["theory_epoch"])
    assert np.allclose(step.get_ydata(), record.spec["optim"]["lr"] * a["sharpness"], rtol=1e-15)
    weyl = line(panel(fig, "weyl"), label)
    assert np.allclose(weyl.get_ydata(), a["ntk_lambda_min"][0] - a["ntk_change"], rtol=1e-15)
    kernel = line(panel(fig, "kernel"), label)
    assert np.allclose(kernel.get_ydata(), a["ntk_change"] / a["ntk_lambda_max"][0], rtol=1e-15)


def test_the_stable_regime_is_shaded_the_envelope_drawn_the_annotations_marked(one_run):
    record = load_records([one_run])[0]
    fig = figures.draw(runs_of(one_run), figures.DEFAULT_PANELS, (3.5, 3.5))
    ax = panel(fig, "pl")
    spans = [p for p in ax.patches if p.get_x() == record.summary["stable_from"]]
    assert spans and spans[0].get_width() == record.summary["stable_to"] - record.summary["stable_from"]
    envelope = [c for c in ax.collections if c.get_label().startswith("_envelope")]
    (segment,) = envelope[0].get_segments()
    assert segment[0][1] == segment[1][1] == record.summary["pl_min"]
    assert [segment[0][0], segment[1][0]] == [record.summary["stable_from"], record.summary["stable_to"]]
    marks = [l for l in ax.get_lines() if list(l.get_xdata()) == [12, 12]]
    assert marks, "the annotation at epoch 12 is a vertical mark"
    assert ax.get_yscale() == "log" and panel(fig, "subopt").get_yscale() == "log" and panel(fig, "lambda").get_yscale() == "linear"


def test_the_step_size_panel_has_the_theorems_line_at_1_and_the_edge_at_2(one_run):
    fig = figures.draw(runs_of(one_run), ("step",), (3.5, 2.0))
    levels = sorted(l.get_ydata()[0] for l in panel(fig, "step").get_lines() if len(set(l.get_ydata())) == 1 and l.get_label().startswith("_"))
    assert levels == [1.0, 2.0]


@pytest.mark.parametrize("view, words", [("proxy", "final loss"), ("zero", "0"), ("fitted", "fitted")])
def test_the_l_star_in_use_is_stated_and_used(one_run, view, words):
    record = load_records([one_run])[0]
    fig = figures.draw(runs_of(one_run), ("subopt",), (3.5, 2.0), l_star=view)
    ax = panel(fig, "subopt")
    assert f"$L^*$ = {words}" in ax.get_title("left")
    loss = np.asarray(record.trajectory.loss)
    l_star = {"proxy": loss[-1], "zero": 0.0, "fitted": record.summary["decay_l_star"]}[view]
    assert np.allclose(line(ax, record.label).get_ydata(), masked(loss - l_star, True), equal_nan=True)


def test_a_running_record_says_its_l_star_is_provisional(tmp_path):
    run = write_record(tmp_path, "live", state="interrupted")
    fig = figures.draw(runs_of(run), ("subopt",), (3.5, 2.0))
    assert "provisional" in panel(fig, "subopt").get_title("left")
    assert "interrupted at epoch 60" in fig.legends[0].get_texts()[0].get_text()


def test_a_plan_is_one_line_per_run_named_by_width_and_step(tmp_path):
    results = tmp_path / "results"
    write_record(results, "a", label="m=128 η=1e-3")
    write_record(results, "b", label="m=256 η=1e-3", overrides={"model.width": 256}, traj=trajectory(lam=20.0))
    write_record(results, "c", label="m=256 η=2.5e-4", overrides={"model.width": 256, "optim.lr": 2.5e-4}, traj=trajectory(lam=21.0))
    fig = figures.draw(runs_of(results), figures.DEFAULT_PANELS, (3.5, 3.5))
    labels = [l.get_label() for l in panel(fig, "lambda").get_lines() if not l.get_label().startswith("_")]
    assert labels == ["m=128 η=1e-3", "m=256 η=1e-3", "m=256 η=2.5e-4"]
    assert [t.get_text() for t in fig.legends[0].get_texts()][:3] == labels
    colours = {l.get_color() for l in panel(fig, "lambda").get_lines() if not l.get_label().startswith("_")}
    assert len(colours) == 3 and colours <= set(figures.PALETTE)


def test_seeds_of_one_configuration_are_their_mean_with_a_min_max_band(tmp_path):
    results = tmp_path / "results"
    dirs = [write_record(results, f"s{seed}", label=f"cnn seed={seed}", overrides={"train.seeds": [seed]}, traj=trajectory(seed=seed))
            for seed in (0, 1, 2)]
    other = write_record(results, "other", label="m=128 η=5e-4", overrides={"optim.lr": 5e-4})  # another step: its own line
    fig = figures.draw(runs_of(results), ("lambda",), (3.5, 2.0))
    ax = panel(fig, "lambda")
    lam = np.array([read_record(d).trajectory.ntk_lambda_min for d in dirs])
    mean = line(ax, "cnn (3 seeds: mean, min–max)")
    assert np.allclose(mean.get_ydata(), lam.mean(axis=0), rtol=1e-15)
    (band,) = [c for c in ax.collections if c.get_label() == "_band cnn (3 seeds: mean, min–max)"]
    ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    assert np.isclose(ys.min(), lam.min()) and np.isclose(ys.max(), lam.max())
    assert line(ax, read_record(other).label) is not None  # not averaged in with the seeds


def test_compare_draws_each_run_alone_even_when_their_specs_agree(tmp_path):
    a = write_record(tmp_path / "monday", "r", label="m=128 η=1e-3", started="2026-12-01T10:00:00+00:00")
    b = write_record(tmp_path / "friday", "r", label="m=128 η=1e-3", started="2026-12-05T10:00:00+00:00", pid=2)
    out = tmp_path / "both.svg"
    result = runner.invoke(app, ["compare", str(a), str(b), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "2026-12-01" in result.output and "2026-12-05" in result.output
    assert text.count("<path") > 0 and ET.fromstring(text) is not None


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_the_file_is_what_its_suffix_says(one_run, tmp_path, suffix):
    out = tmp_path / f"figure{suffix}"
    result = runner.invoke(app, ["plot", str(one_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"figure: {out}" in result.output
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    elif suffix == ".svg":
        root = ET.fromstring(data)
        assert root.tag.endswith("svg") and root.get("width", "").endswith("pt")
        assert float(root.get("width")[:-2]) == pytest.approx(3.5 * 72)
    else:
        assert data.startswith(b"%PDF-")
        assert b"/FontFile2" in data, "TrueType fonts embedded"
        assert b"/Type3" not in data.replace(b" ", b""), "no Type 3 fonts (journals refuse them)"


def test_the_default_figure_lands_beside_the_run_directories(one_run):
    result = runner.invoke(app, ["plot", str(one_run.parent)])
    assert result.exit_code == 0, result.output
    (made,) = one_run.parent.glob("*-ablation-figure.pdf")
    assert str(made) in result.output.replace("\n", "")


def small_png(runs, out: Path) -> None:
    """The figure as `write` draws it, at 100 dpi (the baseline stays small)."""
    import matplotlib

    with matplotlib.rc_context(figures.STYLE):
        figures.draw(runs, figures.DEFAULT_PANELS, (3.5, 3.45)).savefig(out, dpi=100)


def test_the_figure_matches_its_baseline_image(tmp_path):
    """matplotlib's own comparison, with a tolerance: the layout, the colours, the panels."""
    results = tmp_path / "results"
    write_record(results, "a", label="m=128 η=1e-3", annotations=[{"epoch": 12, "kind": "loss_rose", "text": "x"}])
    out = tmp_path / "one.png"
    small_png(runs_of(results), out)
    expected = BASELINE / "one_run.png"
    if not expected.exists():  # pragma: no cover - regenerate by deleting the baseline
        expected.parent.mkdir(exist_ok=True)
        expected.write_bytes(out.read_bytes())
        pytest.fail("baseline written; rerun")
    assert compare_images(str(expected), str(out), tol=5) is None


def test_seeds_with_the_theory_panels_match_their_baseline_image(tmp_path):
    """The band of three seeds and a second configuration, with the four theory panels."""
    import matplotlib

    results = tmp_path / "results"
    for seed in (0, 1, 2):
        write_record(results, f"s{seed}", label=f"m=128 η=1e-3 seed={seed}", overrides={"train.seeds": [seed]}, traj=trajectory(seed=seed))
    write_record(results, "wide", label="m=256 η=1e-3", overrides={"model.width": 256}, traj=trajectory(lam=20.0, rate=0.9))
    out = tmp_path / "seeds.png"
    panels = figures.DEFAULT_PANELS + figures.THEORY_PANELS
    with matplotlib.rc_context(figures.STYLE):
        figures.draw(runs_of(results), panels, figures.parse_size(None, len(panels))).savefig(out, dpi=80)
    expected = BASELINE / "seeds_theory.png"
    if not expected.exists():  # pragma: no cover - regenerate by deleting the baseline
        expected.write_bytes(out.read_bytes())
        pytest.fail("baseline written; rerun")
    assert compare_images(str(expected), str(out), tol=5) is None


def test_the_comparison_catches_a_changed_figure(tmp_path):
    """The baseline test can fail: a figure whose data moved does not match."""
    results = tmp_path / "results"
    write_record(results, "a", label="m=128 η=1e-3", traj=trajectory(rate=0.8), annotations=[{"epoch": 12, "kind": "loss_rose", "text": "x"}])
    out = tmp_path / "moved.png"
    small_png(runs_of(results), out)
    assert compare_images(str(BASELINE / "one_run.png"), str(out), tol=5) is not None


def test_options_choose_runs_panels_and_size(tmp_path):
    results = tmp_path / "results"
    write_record(results, "a", label="m=128 η=1e-3")
    write_record(results, "b", label="m=1024 η=1e-3", overrides={"model.width": 1024})
    write_record(results, "c", label="m=1024 η=2.5e-4", overrides={"model.width": 1024, "optim.lr": 2.5e-4})
    out = tmp_path / "f.svg"
    result = runner.invoke(app, ["plot", str(results), "--out", str(out), "--runs", "m=1024*", "--panels", "lambda,subopt", "--size", "7x2"])
    assert result.exit_code == 0, result.output
    assert "2 runs, panels lambda, subopt" in result.output
    root = ET.fromstring(out.read_bytes())
    assert float(root.get("width")[:-2]) == pytest.approx(7 * 72) and float(root.get("height")[:-2]) == pytest.approx(2 * 72)
    chosen = figures.choose_runs(runs_of(results), ["m=1024*"])
    assert [r.label for r in chosen] == ["m=1024 η=1e-3", "m=1024 η=2.5e-4"]
    assert [r.label for r in figures.choose_runs(runs_of(results), ["m=128 η=1e-3"])] == ["m=128 η=1e-3"]


@pytest.mark.parametrize("args, says", [
    (["--out", "f.jpg"], "--out \"f.jpg\": the suffix must be .png, .svg or .pdf"),
    (["--runs", "m=2048"], "--runs \"m=2048\": matches no run; the runs are: m=128 η=1e-3"),
    (["--panels", "lamda"], 'unknown panel "lamda" (did you mean "lambda"?)'),
    (["--size", "wide"], "--size \"wide\": must be WIDTHxHEIGHT in inches"),
    (["--size", "0x3"], "--size \"0x3\": must be WIDTHxHEIGHT in inches"),
    (["--l-star", "final"], "--l-star \"final\": must be one of proxy, zero, fitted"),
])
def test_bad_options_are_one_line_and_exit_2(one_run, tmp_path, args, says):
    result = runner.invoke(app, ["plot", str(one_run), *args])
    assert result.exit_code == 2
    assert says in result.output.replace("\n", " ")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2


def test_an_empty_directory_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "f.pdf")])
    assert result.exit_code == 2 and "no records under" in result.output
    assert not (tmp_path / "f.pdf").exists()


def test_a_record_from_a_newer_format_is_refused(one_run, tmp_path):
    path = one_run / "record.toml"
    path.write_text(path.read_text().replace("format_version = 1", "format_version = 7", 1))
    result = runner.invoke(app, ["plot", str(one_run), "--out", str(tmp_path / "f.pdf")])
    assert result.exit_code == 2
    assert "written by a newer lplr-tui (record format 7; this version reads format 1 and older)" in result.output.replace("\n", " ")


def test_a_panel_with_nothing_measured_says_so(tmp_path):
    traj = trajectory(60, theory_every=1000)
    traj.theory_epoch, traj.sharpness, traj.ntk_full_lambda_min, traj.ntk_full_lambda_max = [], [], [], []
    run = write_record(tmp_path, "no-theory", traj=traj)
    fig = figures.draw(runs_of(run), ("step", "lambda"), (3.5, 2.0))
    assert "not measured (probes.theory_every = 0)" in [t.get_text() for t in panel(fig, "step").texts]
    assert len(panel(fig, "lambda").texts) == 0


def test_text_from_records_is_drawn_as_text_and_odd_values_do_not_crash(tmp_path):
    """A label with `$` is not mathtext; seeds of an odd type, annotations far outside the run
    and a spec without probes are drawn, not a traceback."""
    results = tmp_path / "results"
    write_record(results, "a", label=r"cost $\foo{x}$ [red]y[/red]", annotations=[{"epoch": 100000, "kind": "x", "text": "far"}])
    out = tmp_path / "f.png"
    result = runner.invoke(app, ["plot", str(results), "--out", str(out)])
    assert result.exit_code == 0, result.output
    fig = figures.draw(runs_of(results), ("lambda",), (3.5, 2.0))
    assert fig.legends[0].get_texts()[0].get_text() == r"cost \$\foo{x}\$ [red]y[/red]"
    assert panel(fig, "lambda").get_xlim()[1] < 100, "the annotation at epoch 100000 is not drawn"
    assert not [l for l in panel(fig, "lambda").get_lines() if list(l.get_xdata()) == [100000.0, 100000.0]]
    for name in ("s0", "s1"):  # seeds written as a list of lists (another tool's record)
        path = write_record(tmp_path / "odd", name, label=f"odd {name}") / "record.toml"
        path.write_text(path.read_text().replace("seeds = [\n    0,\n]", f"seeds = [[{name[1]}]]"))
    result = runner.invoke(app, ["plot", str(tmp_path / "odd"), "--out", str(tmp_path / "odd.png")])
    assert result.exit_code == 0, result.output
    fig = figures.draw(runs_of(tmp_path / "odd"), ("lambda",), (3.5, 2.0))
    assert fig.legends[0].get_texts()[0].get_text() == "odd s0 (2 seeds: mean, min–max)"


def test_runs_are_chosen_by_their_own_label_when_compare_tells_them_apart(tmp_path):
    a = write_record(tmp_path / "monday", "a", label="m=128 η=1e-3", started="2026-12-01T09:00:00+00:00")
    b = write_record(tmp_path / "friday", "a", label="m=128 η=1e-3", started="2026-12-05T09:00:00+00:00", pid=2)
    c = write_record(tmp_path / "friday", "b", label="m=256 η=1e-3", overrides={"model.width": 256}, pid=2)
    out = tmp_path / "f.svg"
    result = runner.invoke(app, ["plot", str(a), str(b), str(c), "--runs", "m=128 η=1e-3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 runs" in result.output
