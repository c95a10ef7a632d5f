"""DetectionCheckpointer: fvcore's Checkpointer with crash-safe saves and safe loading.

* Saving writes a temporary file and renames it, and only then rewrites ``last_checkpoint`` (also
  atomically), so a process killed at any moment leaves the previous checkpoint loadable.
* ``.pth`` files load with ``torch.load(weights_only=True)``; ``.pkl`` files (detectron2's model
  zoo format) load through an unpickler that only accepts numpy arrays and plain containers.
* Parameters whose shapes differ from the model (e.g. another class count) are skipped and listed
  in one log line; the "module." prefix of DistributedDataParallel checkpoints is removed.
* A checkpoint written with MODEL_EMA.ENABLED holds the moving average of the weights under
  "model_ema" beside the trained weights under "model". Resuming training restores both; loading
  the file for its weights only (MODEL.WEIGHTS: evaluation, demo, export, fine-tuning) takes the
  average.
"""

import logging
import os
import re
from typing import Any, Dict, List, Optional

from fvcore.common.checkpoint import Checkpointer, _IncompatibleKeys
from torch import nn

from mrcnn.utils import comm
from mrcnn.utils.atomic_save import TEMP_SUFFIX, atomic_torch_save, atomic_write_text

from .c2_names import align_resnet_names
from .foreign_weights import SOURCE_KEY, convert_foreign_checkpoint, describe_loading
from .weights_file import check_weights_match_model, read_weights_file
from .weights_path import resolve_weights_path

__all__ = ["DetectionCheckpointer", "EMA_CHECKPOINT_KEY"]

EMA_CHECKPOINT_KEY = "model_ema"  # the entry holding mrcnn.engine.ModelEMA.state_dict()

LAST_CHECKPOINT_FILE = "last_checkpoint"
_PERIODIC_NAME = re.compile(r"^(?P<prefix>.+)_(?P<iteration>\d{7})\.pth$")
# atomic_write's temporaries: "<target>.<random>.tmp" beside a .pth file or last_checkpoint.
_STALE_TEMPORARY = re.compile(r"^(.+\.pth|" + LAST_CHECKPOINT_FILE + r")\.[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")


class DetectionCheckpointer(Checkpointer):
    """Save and load model weights plus any objects with ``state_dict``/``load_state_dict``.

    ``DetectionCheckpointer(model, save_dir, optimizer=opt, scheduler=sched)``; only the main
    process writes files unless ``save_to_disk`` says otherwise.
    """

    def __init__(
        self, model: nn.Module, save_dir: str = "", *, save_to_disk: Optional[bool] = None, **checkpointables: Any
    ):
        if save_to_disk is None:
            save_to_disk = comm.is_main_process()
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.logger = logging.getLogger(__name__)
        self._weights_only = False  # set by `load`: whether the file is read for its weights alone

    # --- saving -------------------------------------------------------------------------------
    def save(self, name: str, *, tag_last: bool = True, **kwargs: Any) -> None:
        """Write ``save_dir/name.pth`` atomically; then point ``last_checkpoint`` at it if ``tag_last``.

        ``kwargs`` are stored as extra entries and returned by `load`.
        """
        if not self.save_dir or not self.save_to_disk:
            return
        data: Dict[str, Any] = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        atomic_torch_save(data, path)
        if tag_last:
            self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Atomically make ``last_checkpoint`` name ``last_filename_basename``."""
        atomic_write_text(os.path.join(self.save_dir, LAST_CHECKPOINT_FILE), last_filename_basename)

    # --- finding ------------------------------------------------------------------------------
    def get_checkpoint_file(self) -> str:
        """The file ``last_checkpoint`` names; if that file is gone, the newest periodic one; else ""."""
        tag = os.path.join(self.save_dir, LAST_CHECKPOINT_FILE)
        try:
            with open(tag, encoding="utf-8") as f:
                tagged = f.read().strip()
        except OSError:
            return ""
        path = os.path.join(self.save_dir, tagged)
        if tagged and os.path.isfile(path):
            return path
        candidates = self.periodic_checkpoints()
        if candidates:
            self.logger.warning(f"'{tag}' names '{tagged}', which does not exist; using {candidates[-1]} instead.")
            return candidates[-1]
        self.logger.warning(f"'{tag}' names '{tagged}', which does not exist, and no other checkpoint is there.")
        return ""

    def has_checkpoint(self) -> bool:
        """Whether `resume_or_load` would find a checkpoint to resume from."""
        return bool(self.save_dir) and bool(self.get_checkpoint_file())

    def periodic_checkpoints(self, prefix: str = "model") -> List[str]:
        """Paths of ``{prefix}_{iteration:07d}.pth`` files in ``save_dir``, oldest first."""
        if not self.save_dir or not os.path.isdir(self.save_dir):
            return []
        found = []
        for filename in os.listdir(self.save_dir):
            match = _PERIODIC_NAME.match(filename)
            if match and match.group("prefix") == prefix:
                found.append((int(match.group("iteration")), os.path.join(self.save_dir, filename)))
        return [path for _, path in sorted(found)]

    def remove_stale_temporaries(self) -> List[str]:
        """Delete temporary files a killed save left in ``save_dir``; returns their paths.

        Call only when no other process saves into ``save_dir`` (e.g. when resuming).
        """
        if not self.save_dir or not self.save_to_disk or not os.path.isdir(self.save_dir):
            return []
        removed = []
        for filename in os.listdir(self.save_dir):
            if _STALE_TEMPORARY.match(filename):
                path = os.path.join(self.save_dir, filename)
                os.remove(path)
                removed.append(path)
        if removed:
            self.logger.info(f"Removed {len(removed)} incomplete checkpoint file(s) of an interrupted save: {removed}")
        return removed

    # --- loading ------------------------------------------------------------------------------
    def _load_file(self, filename: str) -> Dict[str, Any]:
        """Read a weights file into ``{"model": state_dict, ...other entries}``."""
        loaded = read_weights_file(filename)
        loaded = self._convert_loaded(loaded, filename)
        if not isinstance(loaded, dict):
            raise ValueError(f"Weights file '{filename}' holds a {type(loaded).__name__}, not a dict of weights.")
        average = loaded.get(EMA_CHECKPOINT_KEY)
        if self._weights_only and isinstance(average, dict) and isinstance(average.get("weights"), dict):
            self.logger.info(f"Taking the moving average of the weights ('{EMA_CHECKPOINT_KEY}') from {filename}.")
            loaded = {**loaded, "model": average["weights"]}
        if "model" not in loaded:
            if "blobs" in loaded:  # Detectron (Caffe2) files keep their weights under "blobs"
                loaded = {"model": loaded["blobs"], **{k: v for k, v in loaded.items() if k != "blobs"}}
            elif "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
                loaded = {"model": loaded["state_dict"], **{k: v for k, v in loaded.items() if k != "state_dict"}}
            else:  # a bare state_dict, as torch.save(model.state_dict()) writes
                loaded = {"model": loaded}
        if isinstance(loaded["model"], dict):
            loaded["model"] = align_resnet_names(loaded["model"], self.model.state_dict().keys(), self.logger.info)
            check_weights_match_model(loaded["model"], self.model.state_dict().keys(), filename)
        return loaded

    def _convert_loaded(self, checkpoint: Any, filename: str) -> Any:
        """Translate a foreign checkpoint into this library's parameter names.

        Called on every loaded file before its weights are matched to the model: detectron2 /
        Detectron / MSRA ``.pkl`` files and torchvision state dicts are renamed (see
        `mrcnn.checkpoint.foreign_weights`); our own and detectron2's ``.pth`` pass unchanged.
        """
        return convert_foreign_checkpoint(checkpoint, filename)

    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        """Load ``path``: a local file, an http(s) URL, ``torchvision://name`` or ``detectron2://path``
        (remote files are downloaded once into a cache, see `mrcnn.checkpoint.weights_path`)."""
        # Weights only (the average, where the file has one) unless training state is restored too.
        self._weights_only = not (self.checkpointables if checkpointables is None else checkpointables)
        try:
            return super().load(resolve_weights_path(path) if path else path, checkpointables)
        finally:
            self._weights_only = False

    def _load_model(self, checkpoint: Any) -> _IncompatibleKeys:
        num_in_file = len(checkpoint.get("model", {}))
        source = checkpoint.get(SOURCE_KEY)
        incompatible = super()._load_model(checkpoint)
        summary = describe_loading(
            self.model.state_dict().keys(),
            num_in_file,
            incompatible.missing_keys,
            incompatible.unexpected_keys,
            incompatible.incorrect_shapes,
            source if isinstance(source, str) else None,
        )
        self.logger.info(summary)
        return incompatible

    def _log_incompatible_keys(self, incompatible: _IncompatibleKeys) -> None:
        skipped = incompatible.incorrect_shapes
        if skipped:
            listing = "; ".join(f"{key} {tuple(ckpt)} -> {tuple(model)}" for key, ckpt, model in skipped)
            self.logger.warning(
                f"Skipped {len(skipped)} parameter(s) whose shape in the checkpoint differs from the "
                f"model (they keep their initial values): {listing}"
            )
        skipped_keys = {key for key, _, _ in skipped}
        super()._log_incompatible_keys(
            _IncompatibleKeys(
                missing_keys=[key for key in incompatible.missing_keys if key not in skipped_keys],
                unexpected_keys=incompatible.unexpected_keys,
                incorrect_shapes=[],
            )
        )
