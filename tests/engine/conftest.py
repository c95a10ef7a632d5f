"""Fixtures of the engine tests: a tiny shapes dataset generated once per session."""
import os

import pytest

from engine_toys import SHAPES_ROOT_ENV


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory):
    """Generate the 64 px shapes dataset once and register it (via the test plugin)."""
    root = str(tmp_path_factory.mktemp("tiny_shapes"))
    os.environ[SHAPES_ROOT_ENV] = root
    from mrcnn.data.datasets.synthetic_shapes import ensure_shapes_dataset

    ensure_shapes_dataset(root, num_train=16, num_val=4, image_size=64, seed=0)
    import tiny_shapes_plugin  # noqa: F401  (registers tinyshapes_train / tinyshapes_val)

    return root
