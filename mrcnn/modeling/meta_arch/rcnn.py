"""GeneralizedRCNN: backbone, proposal generator and RoI heads, from images to instances."""

from typing import Dict, List, Sequence, Union

import torch
from torch import nn

from mrcnn.config import configurable
from mrcnn.modeling.backbone import Backbone, build_backbone
from mrcnn.modeling.postprocessing import detector_postprocess
from mrcnn.modeling.proposal_generator import build_proposal_generator
from mrcnn.modeling.roi_heads import build_roi_heads
from mrcnn.structures import ImageList, Instances

from .build import META_ARCH_REGISTRY

__all__ = ["GeneralizedRCNN"]


@META_ARCH_REGISTRY.register()
class GeneralizedRCNN(nn.Module):
    """Faster / Mask R-CNN.

    Input: a list of dicts, one per image, with ``"image"`` a (C, H, W) tensor of 0-255 values in
    ``input_format`` channel order (already resized by the data mapper), optional ``"height"`` /
    ``"width"`` (the size to return results at; default the image's size) and, in training,
    ``"instances"`` with gt_boxes, gt_classes and gt_masks.
    Output: training, a dict of losses (loss_rpn_cls, loss_rpn_loc, loss_cls, loss_box_reg,
    loss_mask); inference, a list of ``{"instances": Instances}`` with pred_boxes, scores,
    pred_classes and pred_masks (bool, height × width).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module,
        roi_heads: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
        mask_threshold: float = 0.5,
        mask_paste_mode: str = "grid",
    ):
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.input_format = input_format
        self.mask_threshold = mask_threshold
        self.mask_paste_mode = mask_paste_mode
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(f"PIXEL_MEAN {pixel_mean} and PIXEL_STD {pixel_std} differ in length.")
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "proposal_generator": build_proposal_generator(cfg, backbone.output_shape()),
            "roi_heads": build_roi_heads(cfg, backbone.output_shape()),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "input_format": cfg.INPUT.FORMAT,
            "mask_threshold": cfg.MODEL.ROI_MASK_HEAD.MASK_THRESHOLD,
            "mask_paste_mode": cfg.MODEL.ROI_MASK_HEAD.PASTE_MODE,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[Dict[str, torch.Tensor]]) -> ImageList:
        """Normalise each image and pad the batch to the backbone's size divisibility."""
        images = []
        for x in batched_inputs:
            image = x["image"]
            if image.device != self.device:  # a .to() that changes nothing still costs a dispatch
                # moved in the loader's dtype (uint8: a quarter of float32's bytes) and converted on
                # the device: a copy that converts dtype on its way to a GPU converts on the host first
                image = image.to(self.device, non_blocking=True)
            images.append((image.to(torch.float32) - self.pixel_mean) / self.pixel_std)
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def forward(
        self, batched_inputs: List[Dict[str, torch.Tensor]]
    ) -> Union[Dict[str, torch.Tensor], List[Dict[str, Instances]]]:
        """Losses in training mode, detections in eval mode (see the class docstring)."""
        if not self.training:
            return self.inference(batched_inputs)
        missing = [i for i, x in enumerate(batched_inputs) if "instances" not in x]
        if missing:
            raise ValueError(f"Training inputs {missing} have no 'instances' (ground truth).")
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        return {**proposal_losses, **detector_losses}

    def inference(
        self,
        batched_inputs: List[Dict[str, torch.Tensor]],
        do_postprocess: bool = True,
    ) -> Union[List[Dict[str, Instances]], List[Instances]]:
        """Detections for each input; rescaled to its "height" × "width" with masks pasted."""
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        proposals, _ = self.proposal_generator(images, features, None)
        results, _ = self.roi_heads(images, features, proposals, None)
        if not do_postprocess:
            return results
        outputs = []
        for result, inputs, image_size in zip(results, batched_inputs, images.image_sizes):
            height = inputs.get("height", image_size[0])
            width = inputs.get("width", image_size[1])
            outputs.append(
                {"instances": detector_postprocess(result, height, width, self.mask_threshold, self.mask_paste_mode)}
            )
        return outputs
