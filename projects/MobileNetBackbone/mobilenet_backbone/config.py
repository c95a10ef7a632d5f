"""The plugin's config keys, under MODEL.MOBILENET."""

from mrcnn.config import CfgNode


def add_config(cfg: CfgNode) -> None:
    """Add MODEL.MOBILENET.* with defaults (no-op when already there)."""
    if "MOBILENET" in cfg.MODEL:
        return
    cfg.MODEL.MOBILENET = CfgNode()
    # torchvision builder to take the network from: "mobilenet_v3_large" or "mobilenet_v3_small"
    cfg.MODEL.MOBILENET.ARCH = "mobilenet_v3_large"
    # channel multiplier of every layer (torchvision's width_mult); ImageNet weights exist for 1.0
    cfg.MODEL.MOBILENET.WIDTH_MULT = 1.0
    # norm after every conv: "FrozenBN" (fine-tuning ImageNet weights), "BN" or "SyncBN"
    cfg.MODEL.MOBILENET.NORM = "FrozenBN"
    # outputs by stride: mb1 (2), mb2 (4), mb3 (8), mb4 (16), mb5 (32)
    cfg.MODEL.MOBILENET.OUT_FEATURES = ["mb2", "mb3", "mb4", "mb5"]
