"""Fixtures of the engine tests: a tiny shapes dataset generated once per session, and loggers
put back after each test (training sets up the library loggers, which would hide their records
from pytest's caplog in later tests)."""

import logging
import os

import pytest
from engine_toys import SHAPES_ROOT_ENV

from mrcnn.utils.logger import setup_logger

_LOGGERS = ("mrcnn", "fvcore", "mrcnn.utils.events", "mrcnn.checkpoint.detection_checkpoint")


@pytest.fixture(autouse=True)
def restore_library_loggers():
    """Undo handler, level and propagation changes that trainers and default_setup make."""
    saved = {}
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate, logger.level)
    yield
    for name, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)
    setup_logger.cache_clear()


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory):
    """Generate the 64 px shapes dataset once and register it (via the test plugin)."""
    root = str(tmp_path_factory.mktemp("tiny_shapes"))
    os.environ[SHAPES_ROOT_ENV] = root
    from mrcnn.data.datasets.synthetic_shapes import ensure_shapes_dataset

    ensure_shapes_dataset(root, num_train=16, num_val=4, image_size=64, seed=0)
    import tiny_shapes_plugin  # noqa: F401  (registers tinyshapes_train / tinyshapes_val)

    return root


@pytest.fixture(scope="session")
def tiny_one_shape(tiny_shapes):
    """Generate the one-shape-per-image set beside the tiny shapes once (registered by the plugin)."""
    from tiny_shapes_plugin import ONE_SHAPE

    from mrcnn.data.datasets.synthetic_shapes import ensure_shapes_dataset

    root = os.path.join(tiny_shapes, "oneshape")
    ensure_shapes_dataset(root, **ONE_SHAPE)
    return root
