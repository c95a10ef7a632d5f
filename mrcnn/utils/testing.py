"""Small helpers shared by the tests and benchmarks: natural-looking images and tiny configs."""
import numpy as np

__all__ = ["natural_image"]


def natural_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic H×W×3 uint8 RGB image with smooth shading, edges and texture.

    Random low-frequency colour fields plus filled ellipses and rectangles and mild noise: it has
    the structure detectors react to, unlike zeros or uniform noise.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for _ in range(6):
        fy, fx = rng.uniform(0.5, 4.0, size=2) * 2 * np.pi / np.array([height, width])
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(ys * fy + xs * fx + phase)
        image += wave[..., None] * rng.uniform(10, 40, size=3)
    image += rng.uniform(60, 180, size=3)
    for _ in range(25):
        colour = rng.uniform(0, 255, size=3)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.02, 0.25) * height, rng.uniform(0.02, 0.25) * width
        if rng.random() < 0.5:
            inside = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0
        else:
            inside = (np.abs(ys - cy) <= ry) & (np.abs(xs - cx) <= rx)
        shade = 0.8 + 0.2 * np.sin(xs[inside] / rng.uniform(3, 15))
        image[inside] = colour * shade[:, None]
    image += rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def tiny_config(num_classes: int = 3, image_size: int = 64):
    """A small Mask R-CNN config (ResNet-18, narrow FPN and heads) for fast CPU tests."""
    from mrcnn.config import get_cfg

    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[8], [16], [32], [64], [128]]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 7
    cfg.INPUT.MIN_SIZE_TRAIN = [image_size]
    cfg.INPUT.MAX_SIZE_TRAIN = image_size * 2
    cfg.INPUT.MIN_SIZE_TEST = image_size
    cfg.INPUT.MAX_SIZE_TEST = image_size * 2
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.DATALOADER.NUM_WORKERS = 0
    return cfg
