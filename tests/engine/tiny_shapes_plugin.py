"""Test plugin: registers ``tinyshapes_train`` (16 images) and ``tinyshapes_val`` (4 images) at 64 px,
and ``tinyoneshape_train`` / ``tinyoneshape_val``: 64 px images holding one shape each (or none).

The folder comes from $MRCNN_TEST_TINY_SHAPES (the engine tests' conftest generates it once); the
one-shape set lives in its ``oneshape`` subfolder.
"""

import os
import tempfile

from mrcnn.data import DatasetCatalog
from mrcnn.data.datasets.synthetic_shapes import register_shapes

ROOT = os.environ.get("MRCNN_TEST_TINY_SHAPES", os.path.join(tempfile.gettempdir(), "mrcnn_tiny_shapes"))
ONE_SHAPE = dict(num_train=8, num_val=2, image_size=64, seed=1, max_instances=1)

if "tinyshapes_train" not in DatasetCatalog.list():
    register_shapes("tinyshapes", root=ROOT, num_train=16, num_val=4, image_size=64, seed=0)
if "tinyoneshape_train" not in DatasetCatalog.list():
    register_shapes("tinyoneshape", root=os.path.join(ROOT, "oneshape"), **ONE_SHAPE)
