"""A detector trained through DetectionDataModule + AutoTrainer on synthetic shapes reaches a clearly
non-trivial val mAP (evaluated by the validation loop, in original-image pixels)."""

from __future__ import annotations

import pytest

from autotimm import AutoTrainer, DetectionDataModule

from training_utils import quiet, tiny_model


@pytest.mark.slow
def test_fcos_learns_shapes_through_the_data_module(tiny_shapes, tmp_path):
    # The val split is the training file: a short CPU budget can memorise 12 images but not generalise
    # from them; what is tested is the whole path (reader, letterbox, loader, loss, decode, mAP).
    data = DetectionDataModule(train=tiny_shapes["train"], val=tiny_shapes["train"], image_size=128, batch_size=4,
                               num_workers=0, augment="none", persistent_workers=False)
    model = tiny_model(lr=2e-3, fpn_channels=64, head_num_convs=2)
    # precision "auto": the bf16 fast path where the CPU has it (24 epochs take ~12 s there), fp32 elsewhere
    trainer = AutoTrainer(max_epochs=24, default_root_dir=tmp_path, precision="auto", check_val_every_n_epoch=24,
                          **quiet())
    trainer.fit(model, datamodule=data)
    assert float(trainer.callback_metrics["val/mAP_50"]) >= 0.5
    assert float(trainer.callback_metrics["val/mAP"]) >= 0.2  # measured 0.48 (seed 0); 0.30-0.59 over seeds 0-3
