"""Test plugin: registers ``tinyshapes_train`` (16 images) and ``tinyshapes_val`` (4 images) at 64 px.

The folder comes from $MRCNN_TEST_TINY_SHAPES (the engine tests' conftest generates it once).
"""

import os
import tempfile

from mrcnn.data import DatasetCatalog
from mrcnn.data.datasets.synthetic_shapes import register_shapes

if "tinyshapes_train" not in DatasetCatalog.list():
    register_shapes(
        "tinyshapes",
        root=os.environ.get("MRCNN_TEST_TINY_SHAPES", os.path.join(tempfile.gettempdir(), "mrcnn_tiny_shapes")),
        num_train=16,
        num_val=4,
        image_size=64,
        seed=0,
    )
