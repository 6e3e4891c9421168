"""The architecture seam: a third architecture is one class and one registry line.

The toy below is defined here, not in the package: a 1x1 conv per point, a point learns the first
box that contains it, distances decoded by :class:`DistanceCoder`. Registering it is the only step;
``ObjectDetector``, training and ``predict`` need no edit.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autotimm import ObjectDetector
from autotimm.arch import ARCHITECTURES, DenseArchitecture, LossWeights, build_arch, register_architecture
from autotimm.losses.functional import summed
from autotimm.ops.coders import DistanceCoder
from autotimm.ops.points import flatten_levels

from synthetic import collate, make_samples


class ToyArch(DenseArchitecture):
    name = "toy"
    quality = "centerness"
    output_prefixes = ("cls", "reg", "q")
    default_cls_loss = "bce"
    default_reg_loss = "l1"

    def __init__(self, **common) -> None:
        super().__init__(**common)
        self.pred = nn.Conv2d(self.in_channels, self.num_classes + 5, 1)
        self.cls_loss, self.reg_loss = common["cls_loss"], common["reg_loss"]

    def forward(self, feats):
        k = self.num_classes
        outs = [self.pred(f) for f in feats]
        return [o[:, :k] for o in outs], [F.relu(o[:, k : k + 4]) * s for o, s in zip(outs, self.strides)], [o[:, k + 4 :] for o in outs]

    def loss(self, outputs, points, level, targets) -> dict[str, Tensor]:
        cls, reg, q = (flatten_levels(o) for o in outputs)  # [B, P, K], [B, P, 4], [B, P, 1]
        ltrb = DistanceCoder.encode(targets.boxes[:, None], points[None, :, None])  # [B, P, G, 4]
        inside = (ltrb.amin(-1) > 0) & targets.valid[:, None]  # [B, P, G]
        pos = inside.any(-1)  # [B, P]
        match = inside.float().argmax(-1)  # [B, P], the first containing box
        n = pos.sum().clamp(min=1)
        onehot = F.one_hot(targets.labels.gather(1, match), self.num_classes).float() * pos[..., None]
        cls_loss = summed(self.cls_loss(cls.reshape(-1, self.num_classes), onehot.reshape(-1, self.num_classes))) / n
        boxes = DistanceCoder.decode(reg, points[None])  # [B, P, 4]
        gt = targets.boxes.gather(1, match[..., None].expand(-1, -1, 4))
        reg_loss = summed(self.reg_loss(boxes[pos], gt[pos])) / n
        q_loss = F.binary_cross_entropy_with_logits(q[..., 0], pos.float())
        w = self.weights
        return {"loss": w.cls * cls_loss + w.box * reg_loss + w.quality * q_loss, "cls_loss": cls_loss, "reg_loss": reg_loss}

    def decode(self, outputs, points):
        cls, reg, q = (flatten_levels(o).float() for o in outputs)
        return cls.sigmoid() * q.sigmoid(), DistanceCoder.decode(reg, points)


@pytest.fixture
def toy_registered():
    register_architecture(ToyArch)  # the one registry line
    yield
    ARCHITECTURES.pop("toy")


def test_toy_architecture_trains_one_step_and_predicts(toy_registered, tiny_detector_kwargs):
    model = ObjectDetector(**{**tiny_detector_kwargs, "detection_arch": "toy", "strides": (8, 16, 32)}, scheduler=None, lr=1e-2)
    assert isinstance(model.detection_head, ToyArch)
    before = model.detection_head.pred.weight.detach().clone()
    loader = torch.utils.data.DataLoader(make_samples(2, 64), batch_size=2, collate_fn=collate)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=loader)
    assert trainer.global_step == 1
    assert not torch.equal(before, model.detection_head.pred.weight)  # the toy's loss reached its weights
    image = make_samples(1, 64)[0][0]
    (det,) = model.predict(image, image_size=64, precision="fp32", score_thresh=0.0, max_detections=5)
    assert 1 <= len(det["boxes"]) <= 5 and det["boxes"].shape[1] == 4 and det["labels"].dtype == torch.int64
    assert (det["boxes"][:, 2:] >= det["boxes"][:, :2]).all() and (det["boxes"] <= 64).all()


def test_head_conv_is_refused_by_an_architecture_without_that_head(toy_registered, tiny_detector_kwargs):
    # The toy leaves head_convs at the base class's ("dense",): it is built, but never with a head it lacks.
    assert ObjectDetector(**{**tiny_detector_kwargs, "detection_arch": "toy"}).detection_head.head_conv == "dense"
    with pytest.raises(ValueError, match=r"detection_arch='toy', head_conv='depthwise'\): the 'toy' head has no 'depthwise' variant; it builds head_conv in \['dense'\]"):
        ObjectDetector(**tiny_detector_kwargs, detection_arch="toy", head_conv="depthwise")
    for name in ("fcos", "yolox"):
        arch = build_arch(name, in_channels=8, num_classes=2, strides=(8,), num_convs=1, head_conv="depthwise")
        assert arch.head_conv == arch.head.head_conv == "depthwise"
    with pytest.raises(ValueError, match=r"FCOS\(head_conv='sep'\): expected one of"):
        build_arch("fcos", in_channels=8, num_classes=2, strides=(8,), num_convs=1, head_conv="sep")


def test_unknown_and_malformed_architectures_are_refused():
    with pytest.raises(ValueError, match=r"Unknown detection_arch 'nope'. Valid: fcos, yolox"):
        build_arch("nope", in_channels=8, num_classes=2, strides=(8,), num_convs=0)
    with pytest.raises(TypeError, match="DenseArchitecture subclass"):
        register_architecture(nn.Conv2d)
    with pytest.raises(ValueError, match="already registered"):
        register_architecture(type("Other", (ToyArch,), {"name": "fcos"}))


def test_constructors_are_keyword_only_and_weights_are_named():
    with pytest.raises(TypeError):
        build_arch("fcos", 8, 2, (8,), 0)  # noqa: the positional form of before is gone
    arch = build_arch("yolox", in_channels=8, num_classes=2, strides=(8, 16), num_convs=0, weights=LossWeights(quality=0.5))
    assert arch.quality == "objectness" and arch.criterion.obj_weight == 0.5
    fcos = build_arch("fcos", in_channels=8, num_classes=2, strides=(8, 16), num_convs=0, weights=LossWeights(quality=0.25))
    assert fcos.quality == "centerness" and fcos.criterion.centerness_weight == 0.25
    with pytest.raises(ValueError, match=r"LossWeights\(box=-1"):
        LossWeights(box=-1)
