"""The reference model of benchmarks and parity checks: a seeded torchvision Mask R-CNN with
realistic weight statistics.

Random weights alone make a poor benchmark: every BatchNorm sees the wrong statistics, activations
explode or vanish, and the detector returns either nothing or a flat wall of equal scores. Here the
frozen BatchNorm statistics are measured on a natural-looking image and the heads are scaled so
that scores spread out, so a forward pass produces about as many detections (up to 100 per image)
and masks as a trained model does, and two implementations can be compared detection by detection.
"""

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

__all__ = ["calibrated_torchvision_maskrcnn", "freeze_batchnorms"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def freeze_batchnorms(module: nn.Module) -> nn.Module:
    """Replace every nn.BatchNorm2d in ``module`` by torchvision's FrozenBatchNorm2d with its statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features)
            frozen.weight.copy_(child.weight.data)
            frozen.bias.copy_(child.bias.data)
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorms(child)
    return module


def calibrated_torchvision_maskrcnn(
    image: torch.Tensor, seed: int = 0, spread_scores: bool = True, depth: int = 50
) -> nn.Module:
    """torchvision's maskrcnn_resnet50_fpn (91 classes, eval mode) with seeded weights calibrated on ``image``.

    ``depth`` 18, 34 or 101 swaps the ResNet for a lighter or deeper one (the rest is unchanged), for
    quick checks with MODEL.RESNETS.DEPTH set alike (and RES2_OUT_CHANNELS 64 for 18 and 34).

    image: (3, H, W) float RGB in 0-255. The ResNet's frozen BatchNorm statistics are those of
    ``image`` (one training-mode pass). With ``spread_scores`` the RPN, box and mask predictors are
    scaled so that objectness and class scores spread over (0, 1): about 100 detections with
    well-ordered scores. Without it the predictors keep torchvision's initialisation, the better
    start for training.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"calibrated_torchvision_maskrcnn: image must be (3, H, W), got {tuple(image.shape)}")
    constructors = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50, 101: resnet.resnet101}
    if depth not in constructors:
        raise ValueError(f"calibrated_torchvision_maskrcnn: depth must be one of {sorted(constructors)}, got {depth}")
    torch.manual_seed(seed)
    # momentum=None: the running statistics become the plain average of the calibration pass
    body = constructors[depth](weights=None, norm_layer=lambda channels: nn.BatchNorm2d(channels, momentum=None))
    body.train()
    with torch.no_grad():
        mean = torch.tensor(_IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(_IMAGENET_STD)[:, None, None]
        body(((image.float() / 255.0 - mean) / std)[None])
    for module in body.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.0)
            module.bias.data.uniform_(-0.2, 0.2)
    body = freeze_batchnorms(body)
    model = MaskRCNN(_resnet_fpn_extractor(body, 3), num_classes=91)
    if not spread_scores:
        return model.eval()
    with torch.no_grad():
        model.rpn.head.cls_logits.weight.mul_(30.0)
        model.rpn.head.bbox_pred.weight.mul_(5.0)
        model.roi_heads.box_predictor.cls_score.weight.mul_(400.0)
        model.roi_heads.box_predictor.bbox_pred.weight.mul_(50.0)
        model.roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(4.0)
        # Without a bias, RoI cells whose features are all zero after ReLU give probability
        # exactly 0.5, and the mask threshold would decide them by rounding noise.
        model.roi_heads.mask_predictor.mask_fcn_logits.bias.uniform_(-1.0, 1.0)
    return model.eval()
