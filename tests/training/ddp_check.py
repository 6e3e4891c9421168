"""Run by test_ddp.py in a subprocess: `fit2` trains and validates with 2 DDP processes,
`val1` validates the saved checkpoint in one process. Each writes its val metrics as json."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main(mode: str, data_dir: str, out_dir: str) -> None:
    import torch

    from autotimm import AutoTrainer, DetectionDataModule, ObjectDetector
    from training_utils import quiet, tiny_model

    torch.set_num_threads(1)
    data = DetectionDataModule(train=Path(data_dir) / "train.json", val=Path(data_dir) / "val.json", image_size=96,
                               batch_size=2, num_workers=0, augment="none", persistent_workers=False)
    out = Path(out_dir)
    if mode == "fit2":
        trainer = AutoTrainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp", precision="32-true",
                              default_root_dir=out, **quiet())
        model = tiny_model()
        trainer.fit(model, datamodule=data)
        metrics = trainer.validate(model, datamodule=data, verbose=False)[0]
        trainer.save_checkpoint(out / "final.ckpt")  # every process: it synchronises
        if trainer.is_global_zero:
            (out / "fit2.json").write_text(json.dumps({k: float(v) for k, v in metrics.items()}))
    else:
        model = ObjectDetector.load_from_checkpoint(out / "final.ckpt")
        trainer = AutoTrainer(accelerator="cpu", devices=1, precision="32-true", logger=False,
                              enable_checkpointing=False, monitor=None, default_root_dir=out / "val1", **quiet())
        metrics = trainer.validate(model, datamodule=data, verbose=False)[0]
        (out / "val1.json").write_text(json.dumps({k: float(v) for k, v in metrics.items()}))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main(*sys.argv[1:4])
