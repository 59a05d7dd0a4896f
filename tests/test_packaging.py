"""A non-editable install carries the presets."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_engine_ui_and_presets(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(tmp_path)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("lplr_tui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("engine/presets/mnist.toml", "engine/presets/ablation.toml", "engine/presets/cifar.toml", "engine/probes/ntk.py", "lplr_tui/cli.py", "lplr_tui/app.tcss"):
        assert name in names
    assert any(n.endswith("entry_points.txt") for n in names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True)
    probe = "from engine.config import available_presets as a; import engine; print(engine.__file__, sorted(a()))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert str(target) in done.stdout and "['ablation', 'cifar', 'mnist']" in done.stdout
