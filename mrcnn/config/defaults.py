"""Every configuration key the library reads, with its default and what it means.

Key names follow detectron2 so that its yaml files and habits carry over, and so do the MODEL.*
defaults (MODEL.DEVICE aside): a zoo file leaves many keys unset and relies on them, e.g.
Base-RCNN-C4.yaml on the C4 backbone, RPN and Res5ROIHeads that the defaults describe. FPN
models set their keys in Base-RCNN-FPN.yaml. The tree is built with the small `CfgNode` dict
below and turned into an omegaconf config by `get_cfg()`.
"""

from .config import CfgNode as CN

_C = CN()
_C.VERSION = 2  # config format version; detectron2 files say 2

# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"  # name in META_ARCH_REGISTRY
# "cpu", "cuda" or "cuda:N"; "auto" picks cuda when available. detectron2 defaults to "cuda"; ours
# is "cpu" so that a config runs on any machine (training on a GPU is one override away), since
# "cuda" would fail on the many machines without one instead of running slower.
_C.MODEL.DEVICE = "cpu"
_C.MODEL.WEIGHTS = ""  # path/URL of weights to start from (fine-tuning), "" for random init
_C.MODEL.MASK_ON = False  # predict masks (Mask R-CNN); False gives Faster R-CNN
_C.MODEL.LOAD_PROPOSALS = False  # precomputed proposals are not supported; must stay False
_C.MODEL.KEYPOINT_ON = False  # keypoint heads are not supported; must stay False
_C.MODEL.PLUGINS = []  # python modules imported before anything is built (plugin components)
# Speed-ups that compute what the plain model computes (folded norms, fused oneDNN kernels,
# channels-last and threaded RoIAlign on the CPU: mrcnn/modeling/fast_paths). False builds the
# plain model, for debugging or comparing against a reference implementation op by op.
_C.MODEL.FAST_PATHS = True
# Pixel statistics in INPUT.FORMAT channel order, for 0-255 input. Defaults: ImageNet BGR, as MSRA.
_C.MODEL.PIXEL_MEAN = [103.530, 116.280, 123.675]
_C.MODEL.PIXEL_STD = [1.0, 1.0, 1.0]

_C.MODEL.BACKBONE = CN()
# Name in BACKBONE_REGISTRY: "build_resnet_backbone" (C4, DC5) or "build_resnet_fpn_backbone".
_C.MODEL.BACKBONE.NAME = "build_resnet_backbone"
_C.MODEL.BACKBONE.FREEZE_AT = 2  # 0: train all; 1: freeze stem; 2: stem+res2; ...

_C.MODEL.RESNETS = CN()
_C.MODEL.RESNETS.DEPTH = 50  # 18, 34, 50 or 101
_C.MODEL.RESNETS.OUT_FEATURES = ["res4"]  # stages the backbone returns: res4 for C4, res2..res5 for FPN
_C.MODEL.RESNETS.NUM_GROUPS = 1  # groups of the 3x3 conv (1 = plain ResNet)
_C.MODEL.RESNETS.NORM = "FrozenBN"  # "", "BN", "SyncBN", "FrozenBN", "GN"
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64  # bottleneck width of res2 per group
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True  # True: stride in the 1x1 conv (MSRA); False: in 3x3 (torchvision)
_C.MODEL.RESNETS.RES5_DILATION = 1  # dilation of res5 (1 or 2); 2 keeps res5 at stride 16 (DC5)
_C.MODEL.RESNETS.RES2_OUT_CHANNELS = 256  # output channels of res2 (64 for a standard ResNet-18/34; less is narrower)
_C.MODEL.RESNETS.STEM_OUT_CHANNELS = 64  # output channels of the stem
# Deformable 3x3 convs in the bottleneck blocks of res2, res3, res4, res5 (ResNet-50 and deeper).
_C.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, False, False, False]
_C.MODEL.RESNETS.DEFORM_MODULATED = False  # modulated (v2, with a mask) instead of plain (v1) deformable convs
_C.MODEL.RESNETS.DEFORM_NUM_GROUPS = 1  # groups of channels that share one offset field

_C.MODEL.FPN = CN()
_C.MODEL.FPN.IN_FEATURES = []  # backbone stages feeding the FPN, e.g. ["res2", "res3", "res4", "res5"]
_C.MODEL.FPN.OUT_CHANNELS = 256  # channels of every pyramid level
_C.MODEL.FPN.NORM = ""  # norm after FPN convs: "", "GN", "BN", ...
_C.MODEL.FPN.FUSE_TYPE = "sum"  # "sum" or "avg" of lateral and top-down features

_C.MODEL.ANCHOR_GENERATOR = CN()
_C.MODEL.ANCHOR_GENERATOR.NAME = "DefaultAnchorGenerator"  # name in ANCHOR_GENERATOR_REGISTRY
# Anchor sizes (sqrt of the area, input pixels), one list per level or one list for all levels:
# five sizes on the one C4 level here; FPN configs give [[32], [64], [128], [256], [512]].
_C.MODEL.ANCHOR_GENERATOR.SIZES = [[32, 64, 128, 256, 512]]
_C.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]  # h/w ratios, per level or shared
_C.MODEL.ANCHOR_GENERATOR.ANGLES = [[-90, 0, 90]]  # rotated anchors: unsupported (kept for d2 files)
_C.MODEL.ANCHOR_GENERATOR.OFFSET = 0.0  # anchor centre offset in units of the stride (0 or 0.5)
_C.MODEL.ANCHOR_GENERATOR.ROUND_CELL_ANCHORS = False  # round cell anchors to integers (torchvision)
# Each level's stride per side = padded image side // feature map side (torchvision: 61 px at p6 for
# a padded side of 800); False uses the backbone's nominal strides (detectron2).
_C.MODEL.ANCHOR_GENERATOR.STRIDES_FROM_IMAGE_SIZE = False

_C.MODEL.PROPOSAL_GENERATOR = CN()
_C.MODEL.PROPOSAL_GENERATOR.NAME = "RPN"  # name in PROPOSAL_GENERATOR_REGISTRY
_C.MODEL.PROPOSAL_GENERATOR.MIN_SIZE = 0.0  # RPN: drop proposals with a side below this (input pixels)

_C.MODEL.RPN = CN()
_C.MODEL.RPN.HEAD_NAME = "StandardRPNHead"  # name in RPN_HEAD_REGISTRY
_C.MODEL.RPN.IN_FEATURES = ["res4"]  # feature maps the RPN reads; ["p2", ..., "p6"] with FPN
_C.MODEL.RPN.BOUNDARY_THRESH = -1  # drop anchors beyond the image by more than this; -1 keeps all
_C.MODEL.RPN.IOU_THRESHOLDS = [0.3, 0.7]  # anchor/gt IoU thresholds between labels
_C.MODEL.RPN.IOU_LABELS = [0, -1, 1]  # labels for the intervals: negative, ignore, positive
_C.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 256  # anchors sampled per image for the RPN loss
_C.MODEL.RPN.POSITIVE_FRACTION = 0.5  # target fraction of positives among sampled anchors
_C.MODEL.RPN.BBOX_REG_LOSS_TYPE = "smooth_l1"  # "smooth_l1" (on deltas; beta 0 is L1), "giou", "diou", "ciou"
_C.MODEL.RPN.BBOX_REG_LOSS_WEIGHT = 1.0  # weight of loss_rpn_loc
_C.MODEL.RPN.BBOX_REG_WEIGHTS = [1.0, 1.0, 1.0, 1.0]  # (wx, wy, ww, wh) of the box transform
_C.MODEL.RPN.SMOOTH_L1_BETA = 0.0  # smooth-L1 beta; 0 is L1
_C.MODEL.RPN.LOSS_WEIGHT = 1.0  # weight of loss_rpn_cls
_C.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 12000  # top proposals per level before NMS (training)
_C.MODEL.RPN.PRE_NMS_TOPK_TEST = 6000  # top proposals per level before NMS (inference)
_C.MODEL.RPN.POST_NMS_TOPK_TRAIN = 2000  # proposals kept per image after NMS (training)
_C.MODEL.RPN.POST_NMS_TOPK_TEST = 1000  # proposals kept per image after NMS (inference)
_C.MODEL.RPN.NMS_THRESH = 0.7  # NMS IoU threshold of proposals
_C.MODEL.RPN.CONV_DIMS = [-1]  # convs of the shared head; -1 keeps the input channels
# What NMS and the post-NMS top-k rank proposals by: "logit" (detectron2), or "probability": the float32
# sigmoid, 1.0 for every logit above ~17, such ties kept in per-level top-k order (torchvision).
_C.MODEL.RPN.PROPOSAL_RANKING = "logit"

_C.MODEL.ROI_HEADS = CN()
_C.MODEL.ROI_HEADS.NAME = "Res5ROIHeads"  # name in ROI_HEADS_REGISTRY: Res5ROIHeads (C4) or StandardROIHeads
_C.MODEL.ROI_HEADS.NUM_CLASSES = 80  # foreground classes (background is extra, last index)
_C.MODEL.ROI_HEADS.IN_FEATURES = ["res4"]  # feature maps the RoI heads pool; ["p2", ..., "p5"] with FPN
_C.MODEL.ROI_HEADS.IOU_THRESHOLDS = [0.5]  # proposal/gt IoU threshold for foreground
_C.MODEL.ROI_HEADS.IOU_LABELS = [0, 1]  # background below, foreground above
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 512  # RoIs sampled per image for the head losses
_C.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.25  # target foreground fraction of sampled RoIs
_C.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05  # drop detections scoring below this
_C.MODEL.ROI_HEADS.NMS_THRESH_TEST = 0.5  # per-class NMS IoU threshold
_C.MODEL.ROI_HEADS.MIN_BOX_SIZE_TEST = 0.0  # drop detections with a side below this (torchvision 0.01)
_C.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT = True  # add gt boxes to the proposals in training

_C.MODEL.ROI_BOX_HEAD = CN()
# Name in ROI_BOX_HEAD_REGISTRY, read by StandardROIHeads; Res5ROIHeads' box head is res5 itself.
_C.MODEL.ROI_BOX_HEAD.NAME = ""
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE = "smooth_l1"  # "smooth_l1" (on deltas), "giou", "diou", "ciou" (on boxes)
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT = 1.0  # weight of loss_box_reg
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = [10.0, 10.0, 5.0, 5.0]  # (wx, wy, ww, wh)
_C.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA = 0.0  # smooth-L1 beta; 0 is L1
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 14  # RoIAlign output size for the box head
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0  # RoIAlign samples per bin; 0 = adaptive
_C.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignV2"  # "ROIAlignV2" (aligned) or "ROIAlign" (not)
_C.MODEL.ROI_BOX_HEAD.NUM_FC = 0  # fully connected layers of the box head
_C.MODEL.ROI_BOX_HEAD.FC_DIM = 1024  # width of those layers
_C.MODEL.ROI_BOX_HEAD.NUM_CONV = 0  # 3x3 convs before the fully connected layers
_C.MODEL.ROI_BOX_HEAD.CONV_DIM = 256  # channels of those convs
_C.MODEL.ROI_BOX_HEAD.NORM = ""  # norm of the convs: "", "GN", "BN", ...
_C.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = False  # one box regressor for all classes
_C.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = False  # cascade-style training: unsupported

# Cascade R-CNN (MODEL.ROI_HEADS.NAME "CascadeROIHeads"): one box head and predictor per stage; stage
# k trains on the boxes of stage k-1, matched to gt at IOUS[k] (IOUS[0] must equal
# MODEL.ROI_HEADS.IOU_THRESHOLDS[0]). The box regression must be class-agnostic.
_C.MODEL.ROI_BOX_CASCADE_HEAD = CN()
_C.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS = [  # (wx, wy, ww, wh) of each stage
    [10.0, 10.0, 5.0, 5.0],
    [20.0, 20.0, 10.0, 10.0],
    [30.0, 30.0, 15.0, 15.0],
]
_C.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = [0.5, 0.6, 0.7]  # foreground IoU threshold of each stage

_C.MODEL.ROI_MASK_HEAD = CN()
_C.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"  # name in ROI_MASK_HEAD_REGISTRY
_C.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14  # RoIAlign output size for the mask head
_C.MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO = 0  # RoIAlign samples per bin; 0 = adaptive
_C.MODEL.ROI_MASK_HEAD.POOLER_TYPE = "ROIAlignV2"  # "ROIAlignV2" (aligned) or "ROIAlign"
_C.MODEL.ROI_MASK_HEAD.NUM_CONV = 0  # 3x3 convs before the upsampling deconv
_C.MODEL.ROI_MASK_HEAD.CONV_DIM = 256  # channels of those convs
_C.MODEL.ROI_MASK_HEAD.NORM = ""  # norm of the convs
_C.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = False  # one mask for all classes
_C.MODEL.ROI_MASK_HEAD.PASTE_MODE = "grid"  # "grid" (continuous box) or "torchvision" (padded, int box)
_C.MODEL.ROI_MASK_HEAD.MASK_THRESHOLD = 0.5  # probability above which a pasted pixel is in the mask
# Training targets of the mask loss: "crop_and_resize" (detectron2: polygons rasterised inside each
# proposal box, bit masks resampled by aligned RoIAlign, both binary) or "roi_align_image_mask"
# (torchvision: the gt mask rasterised on the whole image, resampled by unaligned RoIAlign, soft 0..1).
_C.MODEL.ROI_MASK_HEAD.TARGET_MODE = "crop_and_resize"

# ---------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------
_C.INPUT = CN()
_C.INPUT.MIN_SIZE_TRAIN = [800]  # shortest-edge sizes for training (a choice or a range)
_C.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"  # "choice" or "range"
_C.INPUT.MAX_SIZE_TRAIN = 1333  # longest edge cap in training
_C.INPUT.MIN_SIZE_TEST = 800  # shortest edge at test time; 0 disables resizing
_C.INPUT.MAX_SIZE_TEST = 1333  # longest edge cap at test time
_C.INPUT.RANDOM_FLIP = "horizontal"  # "horizontal", "vertical", "both" or "none"
_C.INPUT.RANDOM_FLIP_PROB = 0.5  # probability of each flip
_C.INPUT.FORMAT = "BGR"  # channel order the model sees: "BGR" or "RGB"
_C.INPUT.MASK_FORMAT = "polygon"  # "polygon" or "bitmask" for gt masks
_C.INPUT.CROP = CN()
_C.INPUT.CROP.ENABLED = False  # random crop in training
_C.INPUT.CROP.TYPE = "relative_range"  # "relative_range", "relative" or "absolute"
_C.INPUT.CROP.SIZE = [0.9, 0.9]  # crop size in the unit TYPE says
_C.INPUT.PHOTOMETRIC_DISTORT = CN()
_C.INPUT.PHOTOMETRIC_DISTORT.ENABLED = False  # random brightness/contrast/saturation/hue in training
_C.INPUT.PHOTOMETRIC_DISTORT.PROB = 0.5  # probability of each of the four changes
_C.INPUT.PHOTOMETRIC_DISTORT.BRIGHTNESS = [0.875, 1.125]  # brightness factor range
_C.INPUT.PHOTOMETRIC_DISTORT.CONTRAST = [0.5, 1.5]  # contrast factor range
_C.INPUT.PHOTOMETRIC_DISTORT.SATURATION = [0.5, 1.5]  # saturation factor range
_C.INPUT.PHOTOMETRIC_DISTORT.HUE = [-0.05, 0.05]  # hue shift range (fraction of the hue circle)

# ---------------------------------------------------------------------------------------------
# Datasets and loading
# ---------------------------------------------------------------------------------------------
_C.DATASETS = CN()
_C.DATASETS.TRAIN = []  # registered dataset names to train on
_C.DATASETS.TEST = []  # registered dataset names to evaluate on
_C.DATASETS.PROPOSAL_FILES_TRAIN = []  # precomputed proposals: unsupported, must stay empty
_C.DATASETS.PROPOSAL_FILES_TEST = []  # precomputed proposals: unsupported, must stay empty

_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 2  # loader worker processes per rank
_C.DATALOADER.ASPECT_RATIO_GROUPING = True  # batch landscape and portrait images separately
_C.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"  # or "RepeatFactorTrainingSampler"
_C.DATALOADER.REPEAT_THRESHOLD = 0.0  # category frequency threshold of the repeat-factor sampler
_C.DATALOADER.FILTER_EMPTY_ANNOTATIONS = True  # skip training images without instances
_C.DATALOADER.MAX_LOAD_RETRIES = 10  # unreadable training images skipped in a row before giving up
_C.DATALOADER.MAPPER_NAME = "DatasetMapper"  # name in MAPPER_REGISTRY

# ---------------------------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------------------------
_C.SOLVER = CN()
_C.SOLVER.OPTIMIZER = "SGD"  # "SGD" or "AdamW"
_C.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"  # "WarmupMultiStepLR" or "WarmupCosineLR"
_C.SOLVER.MAX_ITER = 40000  # training iterations
_C.SOLVER.BASE_LR = 0.001  # learning rate after warm-up
_C.SOLVER.BASE_LR_END = 0.0  # final learning rate of the cosine schedule
_C.SOLVER.MOMENTUM = 0.9  # SGD momentum
_C.SOLVER.NESTEROV = False  # Nesterov momentum
_C.SOLVER.BETAS = [0.9, 0.999]  # AdamW betas
_C.SOLVER.EPS = 1e-8  # AdamW epsilon
_C.SOLVER.WEIGHT_DECAY = 0.0001  # weight decay of ordinary parameters
_C.SOLVER.WEIGHT_DECAY_NORM = 0.0  # weight decay of norm-layer parameters
_C.SOLVER.WEIGHT_DECAY_BIAS = -1.0  # weight decay of biases; negative (or null) means WEIGHT_DECAY
_C.SOLVER.BIAS_LR_FACTOR = 1.0  # learning-rate multiplier of biases
_C.SOLVER.GAMMA = 0.1  # multi-step decay factor
_C.SOLVER.STEPS = [30000]  # iterations where the multi-step schedule decays
_C.SOLVER.NUM_DECAYS = 3  # unused (detectron2 compatibility); STEPS decides
_C.SOLVER.WARMUP_FACTOR = 0.001  # learning-rate factor at iteration 0 of warm-up
_C.SOLVER.WARMUP_ITERS = 1000  # warm-up length
_C.SOLVER.WARMUP_METHOD = "linear"  # "linear" or "constant"
_C.SOLVER.RESCALE_INTERVAL = False  # unused (detectron2 compatibility)
_C.SOLVER.CHECKPOINT_PERIOD = 5000  # save a checkpoint every this many iterations
_C.SOLVER.MAX_CHECKPOINTS_TO_KEEP = 3  # periodic checkpoints kept (older ones deleted); 0 keeps all
_C.SOLVER.IMS_PER_BATCH = 16  # images per iteration over all ranks
_C.SOLVER.REFERENCE_WORLD_SIZE = 0  # automatic rescaling by world size: unsupported, keep 0
_C.SOLVER.CLIP_GRADIENTS = CN()
_C.SOLVER.CLIP_GRADIENTS.ENABLED = False  # clip gradients before each step
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"  # "value" or "norm"
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0  # the clip value or maximum norm
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0  # the p of the norm
_C.SOLVER.AMP = CN()
_C.SOLVER.AMP.ENABLED = False  # mixed precision (autocast; a gradient scaler for float16)
_C.SOLVER.AMP.DTYPE = "float16"  # "float16" or "bfloat16" on CUDA; the CPU always uses bfloat16
_C.SOLVER.EARLY_STOP = CN()
_C.SOLVER.EARLY_STOP.ENABLED = False  # stop when the monitored metric stops improving
_C.SOLVER.EARLY_STOP.METRIC = "bbox/AP"  # metric in the event storage to monitor
_C.SOLVER.EARLY_STOP.MODE = "max"  # "max" or "min"
_C.SOLVER.EARLY_STOP.PATIENCE = 3  # evaluations without improvement before stopping
_C.SOLVER.BEST_CHECKPOINT = CN()
_C.SOLVER.BEST_CHECKPOINT.ENABLED = True  # keep model_best.pth by METRIC when evaluations run
_C.SOLVER.BEST_CHECKPOINT.METRIC = "bbox/AP"  # metric to rank checkpoints by
_C.SOLVER.BEST_CHECKPOINT.MODE = "max"  # "max" or "min"

_C.MODEL_EMA = CN()
# Keep an exponential moving average of the weights (mrcnn.engine.model_ema); evaluations use it, and
# loading a checkpoint that holds one as MODEL.WEIGHTS takes the averaged weights.
_C.MODEL_EMA.ENABLED = False
_C.MODEL_EMA.DECAY = 0.999  # averages over about 1 / (1 - DECAY) iterations

# ---------------------------------------------------------------------------------------------
# Test
# ---------------------------------------------------------------------------------------------
_C.TEST = CN()
_C.TEST.EVAL_PERIOD = 0  # evaluate every this many iterations (0: only at the end)
_C.TEST.VAL_LOSS_PERIOD = 0  # compute the loss on DATASETS.TEST every this many iterations (0: off)
_C.TEST.VAL_LOSS_NUM_IMAGES = 64  # images of the first test set used for the validation loss
_C.TEST.DETECTIONS_PER_IMAGE = 100  # detections kept per image
_C.TEST.EVALUATOR = ""  # evaluator name; "" picks it from the dataset's evaluator_type
_C.TEST.EVAL_BACKEND = "pycocotools"  # "pycocotools" or "faster_coco_eval"
_C.TEST.EXPECTED_RESULTS = []  # unused (detectron2 compatibility)
_C.TEST.AUG = CN()
# Test-time augmentation (mrcnn.modeling.test_time_augmentation): tools/train_net.py also evaluates
# the model run at every size of MIN_SIZES (and mirrored, with FLIP), reported as "bbox_TTA" / "segm_TTA".
_C.TEST.AUG.ENABLED = False
_C.TEST.AUG.MIN_SIZES = [400, 500, 600, 700, 800, 900, 1000, 1100, 1200]  # shortest-edge sizes
_C.TEST.AUG.MAX_SIZE = 4000  # longest-edge cap of each size
_C.TEST.AUG.FLIP = True  # also run each size mirrored left-right
_C.TEST.AUG.MERGE = "nms"  # "nms" (detectron2's: pooled, NMS) or "average" (boxes of the first pass averaged)
_C.TEST.AUG.MATCH_IOU = 0.7  # "average": least IoU of another pass's detection to be averaged in
_C.TEST.PRECISE_BN = CN()
# Before each evaluation (every TEST.EVAL_PERIOD and at the end) recompute the running statistics of
# the BatchNorm layers in training mode over NUM_ITER training batches (fvcore's precise BN).
_C.TEST.PRECISE_BN.ENABLED = False
_C.TEST.PRECISE_BN.NUM_ITER = 200  # training batches the statistics are computed over

# ---------------------------------------------------------------------------------------------
# Misc
# ---------------------------------------------------------------------------------------------
_C.OUTPUT_DIR = "./output"  # where checkpoints, logs, metrics and results go
_C.SEED = -1  # global seed; negative draws one at start-up (logged)
_C.CUDNN_BENCHMARK = False  # cudnn autotuner
_C.VIS_PERIOD = 0  # unused (detectron2 compatibility)
_C.GLOBAL = CN()
_C.GLOBAL.HACK = 1.0  # unused (detectron2 compatibility)
