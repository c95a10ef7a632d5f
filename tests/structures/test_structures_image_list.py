import torch

from mrcnn.structures import ImageList


def test_from_tensors_pads_to_divisible_size_with_pad_value():
    a = torch.ones(3, 50, 70)
    b = torch.full((3, 65, 33), 2.0)
    images = ImageList.from_tensors([a, b], size_divisibility=32, pad_value=-1.0)
    assert images.tensor.shape == (2, 3, 96, 96)
    assert images.image_sizes == [(50, 70), (65, 33)]
    assert all(isinstance(v, int) for size in images.image_sizes for v in size)
    assert len(images) == 2
    # content kept, padding at bottom/right filled with pad_value
    assert torch.equal(images[0], a) and torch.equal(images[1], b)
    assert (images.tensor[0, :, 50:, :] == -1).all() and (images.tensor[0, :, :, 70:] == -1).all()
    assert (images.tensor[1, :, :, 33:] == -1).all() and (images.tensor[1, :, 65:, :] == -1).all()
    assert images.tensor[0].sum().item() == 3 * 50 * 70 - (96 * 96 - 50 * 70) * 3


def test_from_tensors_without_divisibility_uses_max_size():
    images = ImageList.from_tensors([torch.rand(1, 10, 20), torch.rand(1, 15, 5)])
    assert images.tensor.shape == (2, 1, 15, 20)
    assert images[1].shape == (1, 15, 5)


def test_single_image_and_exact_multiple():
    image = torch.rand(3, 64, 32)
    images = ImageList.from_tensors([image], size_divisibility=32)
    assert images.tensor.shape == (1, 3, 64, 32)
    assert torch.equal(images.tensor[0], image)
    images = ImageList.from_tensors([torch.rand(3, 65, 31)], size_divisibility=32, pad_value=7.0)
    assert images.tensor.shape == (1, 3, 96, 32)
    assert (images.tensor[0, :, 65:] == 7.0).all() and (images.tensor[0, :, :, 31] == 7.0).all()
    moved = images.to("cpu")
    assert moved.device == torch.device("cpu") and moved.image_sizes == [(65, 31)]
