"""LivePlot: a real tiny fit fills the history and writes a PNG; resume keeps the history; in a Jupyter
kernel ONE display output is updated in place."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.callbacks import LivePlot
from autotimm.callbacks.live_plot import ema_update

from synthetic import collate, make_samples

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model() -> ObjectDetector:
    torch.manual_seed(0)
    return ObjectDetector(
        FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, fpn_channels=16,
        head_num_convs=1, compile_model=False, deterministic=False,
    )


def loaders(n_train: int = 6, batch_size: int = 2) -> tuple[DataLoader, DataLoader]:
    samples = make_samples(n_train + 2, 64)
    train = DataLoader(samples[:n_train], batch_size=batch_size, collate_fn=collate)
    return train, DataLoader(samples[n_train:], batch_size=2, collate_fn=collate)


def fit(plot: LivePlot, root: Path, max_epochs: int = 2, ckpt_path: str | None = None) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=max_epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        default_root_dir=str(root), callbacks=[plot],
    )
    trainer.fit(tiny_model(), *loaders(), ckpt_path=ckpt_path)
    return trainer


def test_ema_by_hand():
    values, smoothed = [1.0, 3.0, 3.0, 7.0], []
    for v in values:
        smoothed.append(ema_update(smoothed[-1] if smoothed else None, v, 0.5))
    assert smoothed == [1.0, 2.0, 2.5, 4.75]
    assert ema_update(math.nan, 2.0, 0.9) == 2.0  # a NaN average restarts
    assert ema_update(4.0, 2.0, 0.0) == 2.0  # ema=0: no smoothing


def test_tiny_fit_writes_png_and_fills_history(tmp_path):
    plot = LivePlot(ema=0.5, figsize=(6, 2), dpi=50)  # "auto": not in a kernel -> file mode
    trainer = fit(plot, tmp_path)
    h = plot.history
    assert h["step"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # 2 epochs x 3 batches
    assert h["loss"][-1] == pytest.approx(float(trainer.callback_metrics["train/loss_step"]))
    expected_ema = [h["loss"][0]]
    for v in h["loss"][1:]:
        expected_ema.append(0.5 * expected_ema[-1] + 0.5 * v)
    assert h["loss_ema"] == pytest.approx(expected_ema)
    # Default cosine schedule over 2 epochs, stepping per optimizer step (6 steps): 1e-4 * (1 + cos(pi k / 6)) / 2.
    assert h["lr"] == pytest.approx([1e-4, 9.330127e-5, 7.5e-5, 5e-5, 2.5e-5, 6.698730e-6], rel=1e-6)
    assert h["val_epoch"] == [0.0, 1.0] and h["val_step"] == [3.0, 6.0]
    assert h["val_metric"][-1] == pytest.approx(float(trainer.callback_metrics["val/mAP"]))
    assert h["val_loss"][-1] == pytest.approx(float(trainer.callback_metrics["val/loss"]))
    path = tmp_path / "live_plot.png"
    assert plot.file == path and path.is_file()
    assert path.read_bytes() == plot.last_png
    with Image.open(path) as png:
        assert png.size == (300, 100)  # figsize (6, 2) inches at 50 dpi
    assert plot.renders == 3  # two epoch ends and the end of fit: no per-step drawing outside Jupyter
    fig = plot.figure()
    assert [ax.get_title() for ax in fig.axes][:2] == ["loss", "learning rate"]
    assert fig.axes[2].get_title().startswith("val/mAP (best")


def test_explicit_path_and_render_to(tmp_path):
    pngs: list[bytes] = []
    plot = LivePlot(path=tmp_path / "curves" / "plot.png", render_to=pngs.append, every_n_steps=2, figsize=(4, 2), dpi=40)
    fit(plot, tmp_path, max_epochs=1)
    # every 2 of 3 steps (1), validation end (1), train epoch end (1), fit end (1)
    assert len(pngs) == plot.renders == 4 and pngs[-1] == plot.last_png
    assert (tmp_path / "curves" / "plot.png").read_bytes() == plot.last_png


def test_history_survives_resume(tmp_path):
    first = LivePlot(figsize=(4, 2), dpi=40)
    trainer = fit(first, tmp_path, max_epochs=1)
    ckpt = tmp_path / "epoch1.ckpt"
    trainer.save_checkpoint(ckpt)
    assert torch.load(ckpt, weights_only=False)["callbacks"][first.state_key]["history"]["step"] == [1.0, 2.0, 3.0]
    resumed = LivePlot(figsize=(4, 2), dpi=40)
    fit(resumed, tmp_path, max_epochs=2, ckpt_path=str(ckpt))
    assert resumed.history["step"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert resumed.history["val_epoch"] == [0.0, 1.0]
    assert resumed.history["loss"][:3] == first.history["loss"]


def test_state_dict_round_trip_and_bad_state():
    plot = LivePlot()
    plot.history["step"].append(3.0)
    state = plot.state_dict()
    state["history"]["step"].append(4.0)  # a copy: the callback's own history is untouched
    assert plot.history["step"] == [3.0]
    other = LivePlot()
    other.load_state_dict(state)
    assert other.history["step"] == [3.0, 4.0]
    with pytest.raises(ValueError, match=r"history keys \['step'\]; expected"):
        other.load_state_dict({"history": {"step": []}})
    assert LivePlot(metric_key="val/mAP_50").state_key != LivePlot().state_key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ema": 1.0}, r"ema=1.0\): expected a float in \[0, 1\)"),
        ({"ema": -0.1}, "ema=-0.1"),
        ({"every_n_steps": 0}, r"every_n_steps=0\): expected an int >= 1"),
        ({"mode": "inline"}, r"mode='inline'\): expected one of \['auto', 'notebook', 'file'\]"),
        ({"path": "plot.jpg"}, "path='plot.jpg'.*ending in '.png'"),
        ({"loss_key": ""}, "loss_key=''"),
        ({"render_to": "widget"}, "render_to='widget'.*callable"),
        ({"figsize": (0, 3)}, r"figsize=\(0, 3\)"),
        ({"dpi": 2}, "dpi=2"),
    ],
)
def test_options_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LivePlot(**kwargs)


NOTEBOOK_FIT = """
import sys, hashlib
sys.path.insert(0, {tests!r})
import torch, lightning as L
torch.set_num_threads(1)
from torch.utils.data import DataLoader
from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.callbacks import LivePlot
from synthetic import collate, make_samples
samples = make_samples(6, 64)
model = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, fpn_channels=16,
                       head_num_convs=1, compile_model=False, deterministic=False)
plot = LivePlot(every_n_steps=1, figsize=(4, 2), dpi=40)
trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=0, default_root_dir={root!r}, callbacks=[plot])
trainer.fit(model, DataLoader(samples[:4], batch_size=2, collate_fn=collate), DataLoader(samples[4:], batch_size=2, collate_fn=collate))
"""


@pytest.mark.slow
def test_in_jupyter_one_output_is_updated_in_place(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("HOME", str(tmp_path))  # Jupyter's runtime and config files stay out of ~
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(NOTEBOOK_FIT.format(tests=str(TESTS_DIR), root=str(tmp_path))),
        nbformat.v4.new_code_cell(
            "print(json.dumps({'renders': plot.renders, 'sha': hashlib.sha256(plot.last_png).hexdigest(), "
            "'file': str(plot.file), 'steps': len(plot.history['step'])}))".replace("print(", "import json; print(", 1)
        ),
    ]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    displays = [o for o in nb.cells[0].outputs if o["output_type"] in ("display_data", "execute_result")]
    assert len(displays) == 1, [o["output_type"] for o in nb.cells[0].outputs]
    report = json.loads(next(o["text"] for o in nb.cells[1].outputs if o["output_type"] == "stream" and o["name"] == "stdout"))
    assert report["steps"] == 4 and report["renders"] >= 6  # 4 steps + 2 validations (+ epoch ends)
    shown = base64.b64decode(displays[0]["data"]["image/png"])
    assert hashlib.sha256(shown).hexdigest() == report["sha"]  # the one output holds the LAST drawing
    assert report["file"] == "None" and not (tmp_path / "live_plot.png").exists()  # no PNG file in notebook mode
