"""Never lose a user's work (issue 13, items 1-6), end to end on the tiny model:

1. last.ckpt follows every epoch, and a resume equals an uninterrupted run (weights, optimizer,
   scheduler, EMA, epoch, step);
2. Ctrl+C saves a resumable last.ckpt and fit returns, with one line on how to resume;
3. ckpt_path="last" without a checkpoint is an error naming the folder ("last_if_present" is not);
4. a full disk leaves no partial file and best_model_path at the previous good checkpoint;
5. non-finite weights or val metrics are never checkpointed;
6. every run gets its own folder, and a resume appends to its metrics.csv.
"""

from __future__ import annotations

import csv
import errno
import io
import signal

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from autotimm import AutoTrainer, FeatureBackboneConfig, ObjectDetector
from autotimm.callbacks.checkpoint import non_finite_in_checkpoint

from training_utils import InterruptAt, StopAfterEpoch, quiet
from training_utils import tiny_model as _resnet18_model


def tiny_model(**kw):
    """timm's test_resnet (5x faster than resnet18) keeps this module well under a minute on an idle machine."""
    kw.setdefault("backbone", FeatureBackboneConfig("test_resnet", pretrained=False))
    return _resnet18_model(fpn_channels=16, **kw)


def _trainer(root, **kw):
    kw.setdefault("precision", "32-true")
    kw.setdefault("limit_val_batches", 1)
    return AutoTrainer(default_root_dir=root, num_sanity_val_steps=0, **quiet(**kw))


def _load(path):
    return torch.load(path, weights_only=False, map_location="cpu")


def _metrics_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------- 1
def test_last_ckpt_holds_every_epoch_when_the_metric_stays_flat(tiny_data, tmp_path):
    model = tiny_model(score_thresh=0.999)  # never detects anything: val/mAP is 0 every epoch
    trainer = _trainer(tmp_path, max_epochs=2, limit_val_batches=1)
    trainer.fit(model, datamodule=tiny_data)
    best, last = _load(trainer.best_model_path), _load(tmp_path / "checkpoints" / "last.ckpt")
    assert best["epoch"] == 0  # the flat metric never improved after epoch 0
    assert last["epoch"] == 1 and last["global_step"] == 6  # ... but last.ckpt followed every epoch
    resumed = _trainer(tmp_path, max_epochs=3, limit_val_batches=1)
    resumed.fit(tiny_model(seed=1), datamodule=tiny_data, ckpt_path="last")
    assert resumed.global_step == 9  # one more epoch, not a repeated one


@pytest.mark.parametrize("stop", ["epoch_end", "ctrl_c_mid_epoch"])
def test_resume_equals_an_uninterrupted_run(tiny_shapes, tmp_path, stop):
    from autotimm import DetectionDataModule

    def data():
        return DetectionDataModule(train=tiny_shapes["train"], val=tiny_shapes["val"], image_size=96, batch_size=4,
                                   num_workers=0, augment="none", persistent_workers=False, shuffle_seed=7)

    common = dict(max_epochs=2, ema=0.9, limit_val_batches=1)
    schedule = {"scheduler_kwargs": {"warmup_steps": 5}}  # the interruption at step 4 falls inside the warm-up
    whole = _trainer(tmp_path / "whole", **common)
    whole.fit(tiny_model(seed=0, **schedule), datamodule=data())

    halt = StopAfterEpoch(1) if stop == "epoch_end" else InterruptAt(step=4)  # step 4: epoch 1, batch 1
    first = _trainer(tmp_path / "halves", callbacks=[halt], **common)
    first.fit(tiny_model(seed=0, **schedule), datamodule=data())
    assert first.global_step == (3 if stop == "epoch_end" else 4)
    second = _trainer(tmp_path / "halves", **common)
    second.fit(tiny_model(seed=3, **schedule), datamodule=data(), ckpt_path="last")  # other init: all state must come back

    a = _load(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    b = _load(tmp_path / "halves" / "checkpoints" / "last.ckpt")
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (1, 6)
    for key in ("state_dict", "current_model_state"):  # EMA weights and raw weights
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.allclose(a[key][name], b[key][name], rtol=0, atol=1e-6), (key, name)
    opt_a, opt_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert opt_a.keys() == opt_b.keys() and len(opt_a) > 0
    for i in opt_a:
        for k in opt_a[i]:
            assert torch.allclose(torch.as_tensor(opt_a[i][k]), torch.as_tensor(opt_b[i][k]), rtol=0, atol=1e-6), (i, k)
    assert a["lr_schedulers"] == b["lr_schedulers"]
    ema_state = [k for k in a["callbacks"] if "WeightAveraging" in k]
    assert ema_state and a["callbacks"][ema_state[0]] == b["callbacks"][ema_state[0]]


# ---------------------------------------------------------------------------------------------- 2
def test_keyboard_interrupt_saves_last_step_and_returns(tiny_data, tmp_path, capsys):
    handler = signal.getsignal(signal.SIGINT)
    trainer = _trainer(tmp_path, max_epochs=1, callbacks=[InterruptAt(step=2)])
    trainer.fit(tiny_model(), datamodule=tiny_data)  # no SystemExit: code after fit runs
    out = capsys.readouterr().out
    assert 'ckpt_path="last"' in out and "global step 2" in out
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl+C works again afterwards
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert _load(last)["global_step"] == 2  # the first epoch was not finished, yet the work is kept

    trainer.fit(tiny_model(seed=1), datamodule=tiny_data, ckpt_path="last")  # as the printed line says
    assert trainer.global_step == 3 and trainer.current_epoch == 1
    assert _load(last)["global_step"] == 3


# ---------------------------------------------------------------------------------------------- 3
def test_resume_without_checkpoint_names_the_folder(tiny_data, tmp_path, capsys):
    trainer = _trainer(tmp_path / "nothing_here", max_epochs=1)
    with pytest.raises(FileNotFoundError, match=r"no last.ckpt in '.*nothing_here.checkpoints'.*last_if_present"):
        trainer.fit(tiny_model(), datamodule=tiny_data, ckpt_path="last")
    assert trainer.global_step == 0

    trainer = _trainer(tmp_path / "nothing_here", max_epochs=1, limit_train_batches=1)
    trainer.fit(tiny_model(), datamodule=tiny_data, ckpt_path="last_if_present")
    assert trainer.global_step == 1 and "starting a new run" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- 4
def test_full_disk_leaves_no_partial_file_and_keeps_the_good_one(tiny_data, tmp_path, monkeypatch):
    model = tiny_model()
    first = _trainer(tmp_path, max_epochs=1, monitor=None)  # monitor=None: every epoch replaces "best"
    first.fit(model, datamodule=tiny_data)
    good = first.best_model_path
    good_bytes = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()

    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):  # writes part of the file, then the disk is full
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[:4096])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    resumed = _trainer(tmp_path, max_epochs=2, monitor=None)
    with pytest.warns(UserWarning, match="could not be written") as record:
        resumed.fit(model, datamodule=tiny_data, ckpt_path="last")
    monkeypatch.undo()
    assert sum("could not be written" in str(w.message) for w in record) == 1  # said once, not per file
    assert resumed.global_step == 6  # training went on
    assert resumed.best_model_path == good and _load(good)["epoch"] == 0  # still the previous good file
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == good_bytes
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [good.rsplit("/", 1)[-1], "last.ckpt"]


# ---------------------------------------------------------------------------------------------- 5
class _PoisonAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == trainer.num_training_batches - 1:
            with torch.no_grad():
                next(pl_module.detection_head.parameters()).fill_(float("nan"))


def test_non_finite_weights_are_never_checkpointed(tiny_data, tmp_path):
    trainer = _trainer(tmp_path, max_epochs=2, callbacks=[_PoisonAt(epoch=1)])
    with pytest.raises(FloatingPointError, match=r"Non-finite .* epoch 1.*last good checkpoint is kept"):
        trainer.fit(tiny_model(), datamodule=tiny_data)
    last = _load(tmp_path / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 0 and non_finite_in_checkpoint(last) is None
    assert _load(trainer.best_model_path)["epoch"] == 0
    assert not any(p.name.startswith("best-epoch001") for p in (tmp_path / "checkpoints").iterdir())


def test_nan_checkpoint_warns_on_load(tiny_data, tmp_path):
    trainer = _trainer(tmp_path, max_epochs=1, limit_train_batches=1)
    trainer.fit(tiny_model(), datamodule=tiny_data)
    ckpt = _load(trainer.best_model_path)
    name = next(k for k in ckpt["state_dict"] if k.endswith("weight"))
    ckpt["state_dict"][name].fill_(float("nan"))
    bad = tmp_path / "nan.ckpt"
    torch.save(ckpt, bad)
    with pytest.warns(UserWarning, match=rf"nan.ckpt.*non-finite.*{name}"):
        ObjectDetector.load_from_checkpoint(bad)


def test_ema_weights_are_checked_too():
    ok = {"state_dict": {"w": torch.ones(2)}, "current_model_state": {"w": torch.ones(2)}}
    assert non_finite_in_checkpoint(ok) is None
    ok["state_dict"]["w"][1] = float("inf")
    assert non_finite_in_checkpoint(ok) == "state_dict['w']"


# ---------------------------------------------------------------------------------------------- 6
def test_each_run_gets_a_folder_and_resume_appends_the_log(tiny_data, tmp_path, capsys):
    root = tmp_path / "exp"
    first = _trainer(root, max_epochs=1, limit_train_batches=1)
    first.fit(tiny_model(), datamodule=tiny_data)
    rows_first = _metrics_rows(root)
    second = _trainer(root, max_epochs=1, limit_train_batches=1)
    second.fit(tiny_model(), datamodule=tiny_data)
    assert second.run_dir == tmp_path / "exp2" and "exp2" in capsys.readouterr().out
    assert _metrics_rows(root) == rows_first  # the first run's log is intact
    assert (tmp_path / "exp2" / "metrics.csv").is_file() and (tmp_path / "exp2" / "checkpoints" / "last.ckpt").is_file()

    resumed = _trainer(root, max_epochs=2, limit_train_batches=1)
    resumed.fit(tiny_model(), datamodule=tiny_data, ckpt_path="last")
    assert resumed.run_dir == root
    rows = _metrics_rows(root)
    assert rows[: len(rows_first)] == rows_first  # appended, not replaced
    epochs = sorted({int(float(r["epoch"])) for r in rows if r.get("val/mAP")})
    assert epochs == [0, 1]
    assert not (tmp_path / "exp3").exists()
