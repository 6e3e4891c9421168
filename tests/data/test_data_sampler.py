"""The training order depends only on (seed, epoch), so a resumed run sees the same images in the same order."""

from __future__ import annotations

from torch.utils.data import RandomSampler

from autotimm.data.sampler import EpochShuffleSampler


def test_order_depends_on_seed_and_epoch_only():
    data = list(range(10))
    a, b = EpochShuffleSampler(data, 3), EpochShuffleSampler(data, lambda: 3)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b) and sorted(a) == data  # a permutation, the same for the same (seed, epoch)
    b.set_epoch(5)
    assert list(a) != list(b)
    assert list(EpochShuffleSampler(data, 4)) != list(EpochShuffleSampler(data, 3))
    assert isinstance(a, RandomSampler)  # Lightning's DDP swaps it for a shuffling DistributedSampler


def test_datamodule_keeps_its_seed_in_checkpoints(coco_factory):
    from autotimm.data import DetectionDataModule

    dm = DetectionDataModule(train=coco_factory(), image_size=64, num_workers=0, batch_size=1, shuffle_seed=None)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochShuffleSampler)
    first = list(loader.sampler)
    state = dm.state_dict()
    assert isinstance(state["shuffle_seed"], int)
    again = DetectionDataModule(train=coco_factory(), image_size=64, num_workers=0, batch_size=1)
    again.load_state_dict(state)
    again.setup("fit")
    assert list(again.train_dataloader().sampler) == first


def test_a_mid_epoch_position_skips_the_batches_done_in_that_epoch_only(coco_factory):
    from autotimm.data import DetectionDataModule

    def fresh():
        dm = DetectionDataModule(train=coco_factory(), image_size=64, num_workers=0, batch_size=1, shuffle_seed=5)
        dm.setup("fit")
        return dm

    full = list(fresh().train_dataloader().sampler)  # epoch 0: 3 images
    dm = fresh()
    loader = dm.train_dataloader()
    dm.load_state_dict({"shuffle_seed": 5, "train_position": {"epoch": 0, "batches": 2}})
    assert list(loader.sampler) == full[2:]  # the rest of the interrupted epoch
    assert list(loader.sampler) == full  # the next pass is whole again
    loader.sampler.resume_at = (7, 2)  # a position from another epoch is ignored
    assert list(loader.sampler) == full
