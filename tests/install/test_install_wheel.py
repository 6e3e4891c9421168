"""A user's world: build the wheel, install it with [onnx] into a fresh venv that already has torch, keep
that torch, and run the README quick start from a folder outside the repository.

The fresh venv sees this interpreter's torch/torchvision (and what they need, nothing else) through a
``.pth`` file, as a user's environment holds its own torch: nothing of several GB is downloaded, and a
pip that wanted to replace torch would install a new one into the venv, which the test sees.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from install_helpers import ROOT, canonical, linux_only, required_on, wheel_requirements
from packaging.requirements import Requirement

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

# Source files only: what `git clone` gives (build outputs, venvs and runs stay behind).
SKIP = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "runs",
                              "lightning_logs", ".pytest_cache", "test-artifacts", "*.onnx", "*.ckpt", ".device", ".gl", ".whl")
PROBE = ("import json, torch, torchvision; print(json.dumps({'torch': [torch.__version__, torch.__file__], "
         "'torchvision': [torchvision.__version__, torchvision.__file__]}))")


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run ``cmd``; on failure show its output in the assertion."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd[:4]} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def closure(names: list[str]) -> set[str]:
    """Installed distributions ``names`` need (Requires-Dist for this platform, extras followed), recursively."""
    seen: set[tuple[str, str]] = set()
    todo = [(canonical(n), "") for n in names]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for line in md.distribution(name).requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                try:
                    md.distribution(req.name)
                except md.PackageNotFoundError:
                    continue  # an optional runtime that this environment does without
                todo += [(canonical(req.name), e) for e in {"", *req.extras}]
    return {name for name, _ in seen}


def torch_only_site(dest: Path) -> Path:
    """A folder of links to this interpreter's torch, torchvision and their requirements, nothing else."""
    dest.mkdir()
    for name in closure(["torch", "torchvision"]):
        dist = md.distribution(name)
        for file in dist.files or []:
            top = file.parts[0]
            if top == ".." or (dest / top).exists():
                continue  # scripts in bin/, or a folder shared by several distributions (nvidia/)
            (dest / top).symlink_to(Path(dist.locate_file(top)), target_is_directory=Path(dist.locate_file(top)).is_dir())
    return dest


def quick_start_from_readme(image: str) -> str:
    """The README's quick start with tiny settings (fast on 2 CPU cores, no model hub)."""
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Quick start\s+```python\n(.*?)```", readme, re.S).group(1)
    tiny = {
        "image_size=256": "image_size=64",
        "max_epochs=24": "max_epochs=1",
        "pretrained=True": "pretrained=False",
        "lr=1e-3,": "lr=1e-3, compile_model=False,",
        '"image.jpg"': repr(image),
    }
    for old, new in tiny.items():
        assert code.count(old) == 1, f"README quick start no longer has {old!r} once; update this test's tiny settings"
        code = code.replace(old, new)
    return code


def test_wheel_installs_beside_the_users_torch_and_runs_the_quick_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "AUTOTIMM_DATA_DIR")}
    env.update(HF_HUB_OFFLINE="1", MPLBACKEND="Agg", PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")

    # 1. The wheel, built from a copy of the sources (the checkout stays clean).
    src, dist = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(ROOT, src, ignore=SKIP)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)], tmp_path, env, 600)
    (wheel,) = dist.glob("autotimm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    bundled = sorted(p.relative_to(src).as_posix() for p in (src / "autotimm/data/bundled").rglob("*") if p.is_file())
    assert bundled and [n for n in bundled if n not in names] == [], "example data missing from the wheel"
    assert "autotimm/data/bundled/raccoon/LICENSE" in names and not any(n.startswith("tests/") for n in names)
    size_mb = wheel.stat().st_size / 2**20
    assert size_mb < 20, f"wheel is {size_mb:.1f} MB"
    for platform in ("darwin", "win32"):
        assert linux_only(required_on(wheel_requirements(wheel), {"all"}, platform)) == []

    # 2. A fresh venv that already holds torch/torchvision, as a user's does.
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    py = str(target / "bin" / "python")
    (site,) = (target / "lib").glob("python3.*/site-packages")
    (site / "users_torch.pth").write_text(str(torch_only_site(tmp_path / "users_torch")) + "\n")
    user = tmp_path / "user"  # outside the repository
    user.mkdir()
    before = json.loads(run([py, "-c", PROBE], user, env, 300))
    assert run([py, "-c", "import importlib.util as u; print(u.find_spec('autotimm'))"], user, env, 60).strip() == "None"

    # 3. pip install the wheel with [onnx]: first a dry run, so a torch replacement fails fast without GBs.
    spec = f"{wheel}[onnx]"
    report = tmp_path / "report.json"
    run([py, "-m", "pip", "install", "-q", "--dry-run", "--report", str(report), spec], user, env, 900)
    planned = {canonical(i["metadata"]["name"]) for i in json.loads(report.read_text())["install"]}
    assert not planned & {"torch", "torchvision"} and not any(n.startswith("nvidia-") for n in planned), planned
    assert {"autotimm", "onnx", "onnxruntime", "onnxscript", "lightning", "timm"} <= planned
    run([py, "-m", "pip", "install", "-q", spec], user, env, 900)
    assert json.loads(run([py, "-c", PROBE], user, env, 300)) == before

    # 4. The README quick start, then the [onnx] extra at work, from the user's folder.
    where = ("import autotimm, pathlib; print(pathlib.Path(autotimm.__file__).parent); "
             "print(autotimm.example('shapes').root)")
    package, data = run([py, "-c", where], user, env, 300).split()
    assert Path(package).is_relative_to(site) and Path(data).is_relative_to(site)
    image = str(Path(data) / "val" / "000000.jpg")
    script = quick_start_from_readme(image) + (
        "assert set(detections[0]) >= {'boxes', 'scores', 'labels'}, detections[0]\n"
        "from autotimm.export import OnnxDetector\n"
        "path = model.to_onnx('model.onnx', include_postprocess=True, image_size=128)\n"
        f"print('onnx detections', len(OnnxDetector(path).predict({image!r})[0]['boxes']))\n"
    )
    (user / "quick_start.py").write_text(script)
    out = run([py, "quick_start.py"], user, env, 900)
    assert "onnx detections" in out
    assert trainer_outputs(user) and (user / "model.onnx").is_file()


def trainer_outputs(folder: Path) -> list[Path]:
    """Checkpoints the quick start's trainer wrote under ``folder``."""
    return sorted(folder.rglob("*.ckpt"))
