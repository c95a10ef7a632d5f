"""Model pairs: torchvision's model gets the proposal, sampling and test-time settings of the
config, and the mrcnn model made from its weights returns the same detections."""

import torch

from mrcnn.benchmark import (
    calibrated_torchvision_maskrcnn,
    detections_agreement,
    match_torchvision_settings,
    mrcnn_model_from_torchvision,
    natural_image,
    torchvision_equivalent_config,
)


def test_match_torchvision_settings_copies_the_config():
    cfg = torchvision_equivalent_config(
        [
            "MODEL.RPN.PRE_NMS_TOPK_TEST",
            "300",
            "MODEL.RPN.POST_NMS_TOPK_TEST",
            "40",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "0.25",
            "TEST.DETECTIONS_PER_IMAGE",
            "7",
        ]
    )
    model = match_torchvision_settings(
        calibrated_torchvision_maskrcnn(torch.zeros(3, 64, 64), spread_scores=False, depth=18), cfg
    )
    assert model.rpn._pre_nms_top_n["testing"] == 300 and model.rpn._post_nms_top_n["testing"] == 40
    assert model.rpn._pre_nms_top_n["training"] == cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN
    assert model.roi_heads.score_thresh == 0.25 and model.roi_heads.detections_per_img == 7
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE


def test_mrcnn_model_from_torchvision_returns_the_same_detections():
    height, width = 96, 128
    image = torch.from_numpy(natural_image(height, width, seed=3)).permute(2, 0, 1).float()
    cfg = torchvision_equivalent_config(
        [
            "MODEL.RESNETS.DEPTH",
            "18",
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            "64",
            "TEST.DETECTIONS_PER_IMAGE",
            "20",
        ]
    )
    torchvision_model = match_torchvision_settings(calibrated_torchvision_maskrcnn(image, depth=18), cfg)
    torchvision_model.transform.min_size, torchvision_model.transform.max_size = (height,), width  # no resizing
    model = mrcnn_model_from_torchvision(torchvision_model, cfg)
    assert not model.training
    with torch.no_grad():
        ours = model([{"image": image, "height": height, "width": width}])[0]["instances"]
        theirs = torchvision_model([image / 255.0])[0]
    report = detections_agreement(ours, theirs)
    assert report["num_detections"] == 20 and report["agree"], report
