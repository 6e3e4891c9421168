"""DetectionDataModule: argument checks, classes before setup, loaders, splits, strong-augment switch."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from autotimm.data.datamodule import DetectionDataModule
from autotimm.data.examples import data_root, example
from autotimm.callbacks.strong_augment import DisableStrongAugment
from autotimm.data.transforms import AugmentConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "kitti"}, r"Unknown format 'kitti'; valid formats: \['coco', 'voc', 'yolo', 'csv'\]"),
        ({"image_size": 16}, r"image_size must be an int >= 32; got 16"),
        ({"batch_size": 0}, r"batch_size must be a positive int; got 0"),
        ({"num_workers": -1}, r"num_workers must be an int >= 0 or None; got -1"),
        ({"augment": "heavy"}, r"Unknown augment 'heavy'"),
        ({"image_check": "full"}, r"image_check must be 'decode', 'header' or 'none'; got 'full'"),
        ({"val": "/nonexistent/val.json"}, r"val='/nonexistent/val.json': no such file or folder"),
        ({"images_dir": {"training": "x"}}, r"images_dir keys must be among \['train', 'val', 'test'\]; got \['training'\]"),
        ({"cache": "disk"}, r"cache must be 'none' or 'ram'; got 'disk'"),
    ],
)
def test_bad_arguments(coco_factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        DetectionDataModule(**{"train": coco_factory(), **kwargs})


def test_needs_a_split():
    with pytest.raises(ValueError, match="Pass at least one of train=, val=, test="):
        DetectionDataModule()


def test_classes_known_before_setup(coco_factory):
    dm = DetectionDataModule(train=coco_factory(), num_workers=0)
    assert dm.class_names == ["cat", "dog"] and dm.num_classes == 2
    assert dm.label_to_category_id == {0: 3, 1: 7}
    assert dm.train_dataset is None  # nothing decoded yet


def test_fit_loaders_and_empty_val_images(coco_factory):
    ann = coco_factory()
    dm = DetectionDataModule(train=ann, val=ann, image_size=64, batch_size=2, val_batch_size=3, num_workers=0)
    with pytest.raises(RuntimeError, match="Call setup"):
        dm.train_dataloader()
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.uint8 and len(targets) == 2
    images, targets = next(iter(dm.val_dataloader()))
    assert images.shape == (3, 3, 64, 64)
    assert [len(t["boxes"]) for t in targets] == [2, 1, 0]  # c.jpg has no boxes and stays in val
    assert dm.val_dataset.config == AugmentConfig()  # letterbox only
    assert len(next(iter(dm.predict_dataloader()))[1]) == 3  # predict falls back to val
    with pytest.raises(ValueError, match=r"No 'test' split was given to DetectionDataModule; available: \['train', 'val'\]"):
        dm.test_dataloader()


def test_val_with_other_categories_is_rejected(coco_factory):
    train = coco_factory()
    val = coco_factory(categories=[{"id": 3, "name": "cat"}, {"id": 8, "name": "dog"}],
                       annotations=[], name="val.json")
    dm = DetectionDataModule(train=train, val=val, num_workers=0)
    with pytest.raises(ValueError, match=r"val\.json: category ids \[3, 8\] differ from the train split's \[3, 7\]"):
        dm.setup("fit")


def test_images_dir_per_split(coco_factory, tmp_path, image_writer):
    images = [{"id": 1, "file_name": "x.jpg", "width": 64, "height": 48}]
    box = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 10, 10]}]  # a train split needs a box
    train = coco_factory(images=images, annotations=box, write_images=False, name="t.json")
    image_writer(tmp_path / "train_imgs/x.jpg")
    image_writer(tmp_path / "val_imgs/x.jpg", colour=(1, 2, 3))
    dm = DetectionDataModule(train=train, val=train, num_workers=0,
                             images_dir={"train": tmp_path / "train_imgs", "val": tmp_path / "val_imgs"})
    dm.setup("fit")
    assert dm.train_dataset.records[0].image_path.parent.name == "train_imgs"
    assert dm.val_dataset.records[0].image_path.parent.name == "val_imgs"


def test_from_voc_and_from_csv_on_raccoon(tmp_path):
    raccoon = data_root() / "raccoon"
    lists = (raccoon / "splits/train.txt", raccoon / "splits/val.txt")
    dm = DetectionDataModule.from_voc(*lists, images_dir=raccoon / "images", num_workers=0)
    with pytest.raises(ValueError, match=r"train\.txt: 160 xml file\(s\) not found"):
        dm.class_names  # the ids' xml live in voc/, not beside the list
    dm = DetectionDataModule.from_voc(*lists, images_dir=raccoon / "images", num_workers=0, image_size=64,
                                      reader_options={"annotations_dir": raccoon / "voc"})
    coco = example("raccoon").datamodule(num_workers=0, image_size=64)
    dm.setup("validate")
    coco.setup("validate")
    for (image_a, target_a), (image_b, target_b) in zip(dm.val_dataset, coco.val_dataset):
        assert torch.equal(image_a, image_b) and torch.equal(target_a["boxes"], target_b["boxes"])
    with pytest.raises(ValueError, match=r"Reader options \['one_based'\] do not apply to format 'coco'"):
        example("raccoon").datamodule(reader_options={"one_based": True}).class_names
    csv = tmp_path / "r.csv"
    csv.write_text("image_path,x_min,y_min,x_max,y_max,label\nraccoon-1.jpg,81,88,522,408,raccoon\n")
    dm = DetectionDataModule.from_csv(csv, images_dir=raccoon / "images", num_workers=0, image_size=64)
    dm.setup("fit")
    assert dm.class_names == ["raccoon"] and len(dm.train_dataset) == 1
    assert dm.val_dataloader() == []  # no val split: Lightning skips validation


def test_example_datamodules():
    shapes = example("shapes")
    assert shapes.class_names == ("circle", "square", "triangle") and shapes.train.is_file()
    dm = shapes.datamodule(image_size=64, batch_size=4, num_workers=0)
    assert dm.class_names == list(shapes.class_names)
    assert "train         200 images" in dm.summary()
    raccoon = example("raccoon").datamodule(num_workers=0)
    assert raccoon.class_names == ["raccoon"] and raccoon.label_to_category_id == {0: 1}
    with pytest.raises(ValueError, match=r"Unknown example dataset 'coco'; available: \['shapes', 'raccoon'\]"):
        example("coco")


class _Recorder(L.LightningModule):
    """A real, tiny LightningModule: records whether each training batch came from a mosaic."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.layer = torch.nn.Linear(3, 1)
        self.mosaic_by_epoch: dict[int, set[bool]] = {}

    def training_step(self, batch, batch_idx):
        images, targets = batch
        flags = {tuple(t["orig_size"].tolist()) == (2 * self.size, 2 * self.size) for t in targets}
        self.mosaic_by_epoch.setdefault(self.current_epoch, set()).update(flags)
        return self.layer(images.float().mean(dim=(2, 3))).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_disable_strong_augment_callback_with_persistent_workers():
    shapes = example("shapes")
    dm = DetectionDataModule(train=shapes.val, image_size=64, batch_size=8, num_workers=1,
                             augment=AugmentConfig(mosaic_prob=1.0), image_check="none")
    model = _Recorder(64)
    trainer = L.Trainer(max_epochs=3, limit_train_batches=2, callbacks=[DisableStrongAugment(last_epochs=1)],
                        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert model.mosaic_by_epoch == {0: {True}, 1: {True}, 2: {False}}


def test_disable_strong_augment_rejects_bad_values():
    with pytest.raises(ValueError, match="last_epochs must be an int >= 0; got -1"):
        DisableStrongAugment(last_epochs=-1)


def test_ram_cache_reaches_the_training_set_only(coco_factory):
    dm = DetectionDataModule(train=coco_factory(), val=coco_factory(name="val.json"), image_size=64, augment="default",
                             cache="ram", num_workers=0, image_check="none")
    dm.setup("fit")
    assert dm.train_dataset.cache == "ram" and dm.train_dataset._cached is not None
    assert dm.val_dataset.cache == "none" and dm.val_dataset._cached is None


class _KeyRecorder(_Recorder):
    """Records the target keys each training step sees."""

    def training_step(self, batch, batch_idx):
        images, targets = batch
        assert images.dtype == torch.uint8
        self.keys = getattr(self, "keys", set()) | {k for t in targets for k in t}
        return self.layer(images.float().mean(dim=(2, 3))).mean()


@pytest.mark.parametrize("photometric", ["auto", "worker", "device"])
def test_photometric_choice_and_the_device_hook(coco_factory, photometric):
    import logging

    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("lightning.pytorch").addHandler(handler)
    try:
        dm = DetectionDataModule(train=coco_factory(), image_size=64, batch_size=2, augment="default", num_workers=0,
                                 image_check="none", photometric=photometric)
        model = _KeyRecorder(64)
        trainer = L.Trainer(max_epochs=2, limit_train_batches=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(model, datamodule=dm)
    finally:
        logging.getLogger("lightning.pytorch").removeHandler(handler)
    assert dm.train_dataset.colour_on_device == (photometric == "device")  # "auto" on a CPU: the workers
    assert "colour_jitter" not in model.keys and "boxes" in model.keys  # applied before the step when left to the device
    choice = [m for m in said if "colour jitter runs" in m]
    assert choice == (["DetectionDataModule: colour jitter runs in the DataLoader workers (photometric='auto')."]
                      if photometric == "auto" else [])  # said once, over two epochs


def test_photometric_device_batches_carry_their_draws_until_the_hook(coco_factory):
    dm = DetectionDataModule(train=coco_factory(), image_size=64, batch_size=3, augment="default", num_workers=0,
                             image_check="none", photometric="device")
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert all(t["colour_jitter"].shape == (4,) for t in targets)
    coloured, kept = dm.on_after_batch_transfer((images, targets), 0)
    assert coloured.dtype == torch.uint8 and coloured.shape == images.shape and not torch.equal(coloured, images)
    assert all("colour_jitter" not in t and torch.equal(t["boxes"], s["boxes"]) for t, s in zip(kept, targets))


def test_bad_photometric(coco_factory):
    with pytest.raises(ValueError, match="photometric must be 'auto', 'worker' or 'device'; got 'gpu'"):
        DetectionDataModule(train=coco_factory(), photometric="gpu")
