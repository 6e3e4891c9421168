"""Write ``golden.pt``: outputs of a fixed-seed tiny FCOS and YOLOX on a fixed input.

Run once on the code whose behaviour is the reference (``python tests/golden/make_golden.py``);
``tests/test_golden.py`` recomputes the same numbers with today's code and compares them to 1e-6.
Everything is on the CPU in fp32; the file holds a few thousand floats.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden.pt"
ARCHS = ("fcos", "yolox")


def inputs() -> tuple[torch.Tensor, list[dict[str, torch.Tensor]], torch.Tensor]:
    """A normalised batch [2, 3, 64, 64], its targets (input frame) and a 40x56 uint8 image for predict."""
    g = torch.Generator().manual_seed(1234)
    images = torch.randn(2, 3, 64, 64, generator=g)
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([0, 2]),
         "iscrowd": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[10.0, 12.0, 50.0, 34.0], [0.0, 0.0, 16.0, 16.0]]), "labels": torch.tensor([1, 1]),
         "iscrowd": torch.tensor([0, 1])},
    ]
    picture = (torch.rand(3, 40, 56, generator=g) * 255).to(torch.uint8)
    return images, targets, picture


def build(arch: str):
    from autotimm import FeatureBackboneConfig, ObjectDetector

    torch.manual_seed(0)
    return ObjectDetector(
        FeatureBackboneConfig("resnet18", pretrained=False), num_classes=3, detection_arch=arch, fpn_channels=16,
        head_num_convs=1, strides=(8, 16, 32), compile_model=False, deterministic=False, score_thresh=0.0,
    ).eval()


@torch.no_grad()
def compute(arch: str) -> dict[str, object]:
    """Raw outputs, losses (YOLOX: with and without L1), detections (input frame) and predict (original frame)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order, so the same code gives the same bits
    try:
        return _compute(arch)
    finally:
        torch.set_num_threads(threads)


def _compute(arch: str) -> dict[str, object]:
    model = build(arch)
    images, targets, picture = inputs()
    outputs = model(images)
    result: dict[str, object] = {"raw": torch.cat([t.reshape(-1) for kind in outputs for t in kind])}
    result["loss"] = losses(model.compute_loss(images, targets, outputs=outputs))
    if arch == "yolox":
        model.detection_head.use_l1 = True
        result["loss_l1"] = losses(model.compute_loss(images, targets, outputs=outputs))
        model.detection_head.use_l1 = False
    result["detect"] = [rows(d) for d in model.detect(outputs, (64, 64), max_detections=20)]
    result["predict"] = [rows(d) for d in model.predict(picture, image_size=64, precision="fp32", max_detections=20)]
    return result


def losses(values: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def rows(det: dict[str, torch.Tensor]) -> torch.Tensor:
    """One detection per row: x1, y1, x2, y2, score, label -> Tensor[N, 6]."""
    return torch.cat([det["boxes"], det["scores"][:, None], det["labels"][:, None].float()], dim=1)


def main() -> None:
    golden = {arch: compute(arch) for arch in ARCHS}
    torch.save(golden, GOLDEN)
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    main()
