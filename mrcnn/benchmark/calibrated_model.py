"""Any config's model with random weights that detect like a trained model's, for precision and
parity checks of architectures whose trained weights are not at hand.

As in `torchvision_reference`: random weights alone leave every BatchNorm with the wrong
statistics, so activations explode or vanish and the detector returns nothing or a wall of equal
scores. Here the norm statistics are measured on a natural-looking image (one training-mode pass
of the backbone and of a C4 model's res5 head) and the predictors are scaled so that objectness
and class scores spread over (0, 1); a forward pass then gives about as many detections as a
trained model, ordered by well-separated scores.
"""

from typing import Dict

import torch
from torch import nn

from mrcnn.config import CfgNode
from mrcnn.modeling import build_model

__all__ = ["calibrated_model"]


def _calibration_batch(image: torch.Tensor) -> list:
    return [{"image": image, "height": image.shape[1], "width": image.shape[2]}]


def calibrated_model(cfg: CfgNode, image: torch.Tensor, seed: int = 0) -> nn.Module:
    """``build_model(cfg)`` in eval mode with seeded weights calibrated on ``image`` ((3, H, W), 0-255,
    in INPUT.FORMAT order).

    Every FrozenBN/BN of the backbone and RoI heads gets the statistics of ``image`` (GroupNorm
    needs none); the RPN, box and mask predictors are scaled so that scores spread out.
    """
    torch.manual_seed(seed)
    model = build_model(cfg)
    # The same weights with trainable BatchNorm (momentum None: the running statistics become the
    # plain average of one pass), to measure the statistics the frozen norms should hold.
    measuring = cfg.clone()
    model_cfg = measuring.MODEL
    for node in (model_cfg.RESNETS, model_cfg.FPN, model_cfg.ROI_BOX_HEAD, model_cfg.ROI_MASK_HEAD):
        if node.NORM in ("FrozenBN", "SyncBN"):
            node.NORM = "BN"
    measuring.MODEL.BACKBONE.FREEZE_AT = 0
    measuring.MODEL.FAST_PATHS = False
    probe = build_model(measuring)
    probe.load_state_dict(model.state_dict(), strict=False)
    for module in probe.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    with torch.no_grad():
        probe.train()
        images = probe.preprocess_image(_calibration_batch(image.to(probe.device)))
        features = probe.backbone(images.tensor)
        heads = probe.roi_heads
        if hasattr(heads, "res5"):  # C4: res5 runs per RoI, calibrate it on pooled boxes of the image
            probe.eval()
            proposals, _ = probe.proposal_generator(images, features, None)
            heads.res5.train()
            heads._shared_roi_transform(features, [p.proposal_boxes[:256] for p in proposals])
    calibrated: Dict[str, torch.Tensor] = {}
    for name, module in probe.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            for key in ("running_mean", "running_var"):
                calibrated[f"{name}.{key}"] = getattr(module, key)
    state = model.state_dict()
    with torch.no_grad():
        for key, value in calibrated.items():
            if key in state:
                state[key].copy_(value)
        for key, value in state.items():  # affine parameters away from 1/0, as after training
            if key.endswith("norm.weight"):
                value.uniform_(0.5, 1.0)
            elif key.endswith("norm.bias"):
                value.uniform_(-0.2, 0.2)
        model.proposal_generator.rpn_head.objectness_logits.weight.mul_(30.0)
        model.proposal_generator.rpn_head.anchor_deltas.weight.mul_(5.0)
        predictor = model.roi_heads.box_predictor
        predictor.cls_score.weight.mul_(10.0)
        predictor.bbox_pred.weight.mul_(50.0)
        if cfg.MODEL.MASK_ON:
            model.roi_heads.mask_head.predictor.weight.mul_(300.0)
            model.roi_heads.mask_head.predictor.bias.uniform_(-1.0, 1.0)
    return model.eval()
