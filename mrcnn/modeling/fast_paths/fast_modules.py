"""Fast variants of the model's modules, and the functions that put them into a built model.

Each fast class subclasses one plain class, adds no parameters or buffers, and overrides only how
it computes: while the fast paths are active (`switch.fast_paths_active`) it takes its fast
path, otherwise it calls the plain class's method. ``apply_fast_paths`` swaps the class of every
module whose class is exactly one of the plain classes (a subclass a user wrote keeps its own
code), so the state dict, the module tree, deepcopy and pickling are those of the plain model.
"""

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.layers import Conv2d, ROIAlign
from mrcnn.modeling.backbone.fpn import FPN
from mrcnn.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock
from mrcnn.modeling.meta_arch.rcnn import GeneralizedRCNN
from mrcnn.modeling.roi_heads.cascade_rcnn import CascadeROIHeads
from mrcnn.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from mrcnn.modeling.roi_heads.res5_roi_heads import Res5ROIHeads
from mrcnn.modeling.roi_heads.roi_heads import StandardROIHeads
from mrcnn.structures import ImageList, Instances

from .conv_fusion import (
    clear_fast_path_caches,
    conv_add_relu,
    conv_norm_activation,
    conv_relu,
    conv_transpose_relu,
    is_relu,
)
from .roi_align_cpu import roi_align_cpu
from .switch import fast_paths_active

__all__ = ["FAST_CLASSES", "apply_fast_paths", "has_fast_paths", "remove_fast_paths"]


class FastConv2d(Conv2d):
    """Its affine norm folded into the weights (cached between inference calls); in CPU
    inference conv, norm and ReLU as one oneDNN kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not fast_paths_active():
            return super().forward(x)
        return conv_norm_activation(self, x)


class FastBasicStem(BasicStem):
    """conv1 and its ReLU as one kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not fast_paths_active():
            return super().forward(x)
        return F.max_pool2d(conv_relu(self.conv1, x), kernel_size=3, stride=2, padding=1)


class FastBasicBlock(BasicBlock):
    """The last conv, the residual add and the ReLU as one kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not fast_paths_active():
            return super().forward(x)
        out = conv_relu(self.conv1, x)
        return conv_add_relu(self.conv2, out, x if self.shortcut is None else self.shortcut(x))


class FastBottleneckBlock(BottleneckBlock):
    """Each conv with its ReLU, and conv3 with the residual add and ReLU, as one kernel each."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not fast_paths_active():
            return super().forward(x)
        out = conv_relu(self.conv1, x)
        out = conv_relu(self.conv2, out)
        return conv_add_relu(self.conv3, out, x if self.shortcut is None else self.shortcut(x))


class FastFPN(FPN):
    """The lateral conv and the top-down addition as one kernel."""

    def merge_lateral(self, index: int, bottom_up_feature: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
        if not fast_paths_active():
            return super().merge_lateral(index, bottom_up_feature, upsampled)
        return conv_add_relu(self.lateral_convs[index], bottom_up_feature, upsampled, relu=False)


class FastGeneralizedRCNN(GeneralizedRCNN):
    """On the CPU the images, and so every convolution of the backbone and RPN, are channels-last
    (NHWC), which oneDNN convolves without reordering each activation."""

    def preprocess_image(self, batched_inputs: List[Dict[str, torch.Tensor]]) -> ImageList:
        images = super().preprocess_image(batched_inputs)
        if fast_paths_active() and images.tensor.device.type == "cpu":
            images.tensor = images.tensor.contiguous(memory_format=torch.channels_last)
        return images


class FastStandardROIHeads(StandardROIHeads):
    """Pooled feature levels made NCHW once for all poolers: RoIAlign's kernel would copy a
    channels-last level at every call."""

    def forward(self, images: ImageList, features: Dict[str, torch.Tensor], proposals: List[Instances], targets=None):
        if fast_paths_active():
            pooled = set(self.box_in_features) | set(getattr(self, "mask_in_features", None) or ())
            features = {name: value.contiguous() if name in pooled else value for name, value in features.items()}
        return super().forward(images, features, proposals, targets)


class FastCascadeROIHeads(CascadeROIHeads):
    """As FastStandardROIHeads: the pooled levels made NCHW once for the stages and the mask head."""

    def forward(self, images: ImageList, features: Dict[str, torch.Tensor], proposals: List[Instances], targets=None):
        if fast_paths_active():
            pooled = set(self.box_in_features) | set(getattr(self, "mask_in_features", None) or ())
            features = {name: value.contiguous() if name in pooled else value for name, value in features.items()}
        return super().forward(images, features, proposals, targets)


class FastRes5ROIHeads(Res5ROIHeads):
    """The pooled feature map made NCHW once for both poolings (boxes, then detections), and on the
    CPU the pooled RoIs channels-last, so that res5's oneDNN convs run without reordering them."""

    def forward(self, images: ImageList, features: Dict[str, torch.Tensor], proposals: List[Instances], targets=None):
        if fast_paths_active():
            features = {
                name: value.contiguous() if name in self.in_features else value for name, value in features.items()
            }
        return super().forward(images, features, proposals, targets)

    def _shared_roi_transform(self, features: Dict[str, torch.Tensor], boxes: List) -> torch.Tensor:
        if not fast_paths_active():
            return super()._shared_roi_transform(features, boxes)
        pooled = self.pooler([features[f] for f in self.in_features], boxes)
        if pooled.device.type == "cpu":
            pooled = pooled.contiguous(memory_format=torch.channels_last)
        return self.res5(pooled)


class FastMaskRCNNConvUpsampleHead(MaskRCNNConvUpsampleHead):
    """On the CPU channels-last RoI features, and the deconv with its ReLU as one kernel."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if not fast_paths_active():
            return super().features(x)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        fuse_deconv_relu = is_relu(getattr(self, "deconv_relu", None))
        for layer in self.children():
            if layer is self.predictor:
                break
            if fuse_deconv_relu and layer is self.deconv_relu:
                continue  # applied together with the deconv
            x = conv_transpose_relu(layer, x) if fuse_deconv_relu and layer is self.deconv else layer(x)
        return x


class FastROIAlign(ROIAlign):
    """On the CPU the RoIs split over the threads (torchvision's kernel uses one core), and a
    gradient computed as batched matmuls."""

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        if not fast_paths_active() or input.device.type != "cpu":
            return super().forward(input, rois)
        if rois.dim() != 2 or rois.size(1) != 5:
            return super().forward(input, rois)  # the plain forward raises the error
        args = (self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)
        if rois.dtype != input.dtype:  # a no-op .to() would still be dispatched
            rois = rois.to(dtype=input.dtype)
        return roi_align_cpu(input, rois, *args)


# plain class -> its fast variant
FAST_CLASSES: Dict[type, type] = {
    Conv2d: FastConv2d,
    BasicStem: FastBasicStem,
    BasicBlock: FastBasicBlock,
    BottleneckBlock: FastBottleneckBlock,
    FPN: FastFPN,
    GeneralizedRCNN: FastGeneralizedRCNN,
    StandardROIHeads: FastStandardROIHeads,
    CascadeROIHeads: FastCascadeROIHeads,
    Res5ROIHeads: FastRes5ROIHeads,
    MaskRCNNConvUpsampleHead: FastMaskRCNNConvUpsampleHead,
    ROIAlign: FastROIAlign,
}
_PLAIN_CLASSES: Dict[type, type] = {fast: plain for plain, fast in FAST_CLASSES.items()}


def apply_fast_paths(model: nn.Module) -> nn.Module:
    """Give every module of ``model`` whose class is exactly a plain class in FAST_CLASSES its fast
    variant, in place; returns ``model``. Applying twice changes nothing."""
    for module in model.modules():
        fast = FAST_CLASSES.get(type(module))
        if fast is not None:
            module.__class__ = fast
    return model


def remove_fast_paths(model: nn.Module) -> nn.Module:
    """Turn every fast module of ``model`` back into its plain class and drop the cached weights,
    in place (for export and scripting, which must see only the plain code); returns ``model``."""
    for module in model.modules():
        plain = _PLAIN_CLASSES.get(type(module))
        if plain is not None:
            module.__class__ = plain
    clear_fast_path_caches(model)
    return model


def has_fast_paths(model: nn.Module) -> bool:
    """Whether any module of ``model`` is a fast variant."""
    return any(type(module) in _PLAIN_CLASSES for module in model.modules())
