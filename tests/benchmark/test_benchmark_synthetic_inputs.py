"""Synthetic inputs: natural images are deterministic per seed and textured; a training batch has
instances whose boxes bound their masks; torchvision's form of it shifts labels by one."""

import numpy as np
import torch

from mrcnn.benchmark import natural_image, synthetic_training_batch, to_torchvision_training_inputs


def test_natural_image_is_deterministic_and_textured():
    image = natural_image(48, 64, seed=2)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert np.array_equal(image, natural_image(48, 64, seed=2))
    assert not np.array_equal(image, natural_image(48, 64, seed=3))
    assert image.std() > 20  # structure, not a flat field


def test_training_batch_and_its_torchvision_form_hold_the_same_instances():
    batch = synthetic_training_batch(3, 60, 80, instances_per_image=4, num_classes=5, seed=1)
    assert len(batch) == 3
    images, targets = to_torchvision_training_inputs(batch)
    for item, image, target in zip(batch, images, targets):
        instances = item["instances"]
        assert item["image"].shape == (3, 60, 80) and item["image"].dtype == torch.uint8
        assert len(instances) >= 1 and instances.image_size == (60, 80)
        assert int(instances.gt_classes.min()) >= 0 and int(instances.gt_classes.max()) < 5
        assert torch.equal(image, item["image"].float() / 255.0)
        assert torch.equal(target["labels"], instances.gt_classes + 1)
        assert torch.equal(target["boxes"], instances.gt_boxes.tensor)
        masks = target["masks"]
        assert masks.shape == (len(instances), 60, 80) and masks.dtype == torch.uint8
        for mask, (x0, y0, x1, y1) in zip(masks, target["boxes"].tolist()):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert len(ys) > 0
            # every mask pixel lies in its box (pixel centres, so within one pixel of the edges)
            assert xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1
