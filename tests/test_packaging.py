"""A non-editable install carries the presets."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_engine_ui_and_presets(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(tmp_path)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("lplr_tui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("engine/presets/mnist.toml", "engine/presets/ablation.toml", "engine/presets/cifar.toml", "engine/presets/edge.toml", "engine/probes/ntk.py", "lplr_tui/cli.py", "lplr_tui/app.tcss"):
        assert name in names
    assert any(n.endswith("entry_points.txt") for n in names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True)
    probe = "from engine.config import available_presets as a; import engine; print(engine.__file__, sorted(a()))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert str(target) in done.stdout and "['ablation', 'cifar', 'edge', 'mnist']" in done.stdout


@pytest.mark.parametrize("args", [
    ["--help"], ["presets"], ["summary", "RESULTS"], ["plot", "RESULTS", "--out", "RESULTS/f.pdf"], ["compare", "RESULTS"],
    ["export", "RESULTS", "--csv"],
])
def test_commands_that_only_read_do_not_load_the_training_stack(args, make_spec, tmp_path):
    """`--help`, `presets`, `summary`, `plot`, `compare` and `export --csv` must not import
    torch (seconds and ~600 MiB), nor Textual."""
    if "RESULTS" in args:
        import engine

        list(engine.run(make_spec(train__epochs=2, probes__ntk_subset=10, data__n_train=100), tmp_path))
        args = [a.replace("RESULTS", str(tmp_path)) for a in args]
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom lplr_tui.cli import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('torch', 'textual') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
