"""measure_loader_throughput counts the images of the timed batches only, and stops when a finite
loader runs out."""

import pytest

from mrcnn.benchmark import measure_loader_throughput


def test_measure_loader_throughput():
    loader = [[{"image": None}] * 2 for _ in range(10)]
    result = measure_loader_throughput(loader, num_batches=5, warmup_batches=2)
    assert result["num_images"] == 10 and result["images_per_second"] > 0
    assert result["images_per_second"] == pytest.approx(2 * result["batches_per_second"])
    result = measure_loader_throughput(loader, num_batches=50, warmup_batches=2)  # finite loader runs out
    assert result["num_images"] == 16
    assert result["images_per_second"] * result["seconds"] == pytest.approx(16)
