"""root_dataset: the dataset behind any view, through FiftyOne's public API."""

from __future__ import annotations

from autotimm.fiftyone._deps import root_dataset


def test_root_dataset_of_a_dataset_a_view_and_a_patches_view(handmade):
    assert root_dataset(handmade) is handmade
    view = handmade.limit(1)
    assert root_dataset(view) is handmade
    patches = handmade.to_patches("ground_truth")
    assert root_dataset(patches).name == patches.dataset_name
