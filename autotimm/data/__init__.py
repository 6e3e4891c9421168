"""Data layer: annotation readers, transforms, the detection dataset and its LightningDataModule.

Samples are ``(uint8 image Tensor[3, S, S], target)`` with target boxes x1y1x2y2 in the INPUT frame
(the letterboxed tensor); ``target["letterbox"]`` and ``target["orig_size"]`` map them back to the
ORIGINAL frame (the image file's pixels).

Names are imported lazily, so ``autotimm.data.letterbox`` and friends load without Lightning.
"""

from __future__ import annotations

from autotimm._lazy import export_lazily

_EXPORTS: dict[str, str] = {
    "Annotations": "autotimm.data.records",
    "AugmentConfig": "autotimm.data.transforms",
    "DetectionDataModule": "autotimm.data.datamodule",
    "DetectionDataset": "autotimm.data.dataset",
    "DetectionRecord": "autotimm.data.records",
    "ExampleDataset": "autotimm.data.examples",
    "PRESETS": "autotimm.data.transforms",
    "collate_detection": "autotimm.data.dataset",
    "default_num_workers": "autotimm.data.datamodule",
    "example": "autotimm.data.examples",
    "read_annotations": "autotimm.data.readers",
    "read_coco": "autotimm.data.readers",
    "read_csv": "autotimm.data.readers",
    "read_voc": "autotimm.data.readers",
    "read_yolo": "autotimm.data.readers",
    "validate_records": "autotimm.data.validation",
}

export_lazily(globals(), _EXPORTS)
