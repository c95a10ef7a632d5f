"""tools/train_net.py under torchrun: a killed worker is restarted and the group resumes by itself;
two torchrun invocations (two "machines" on one) train as one process with the whole batch."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import torch
from engine_toys import REPO_ROOT, SHAPES_CONFIG, TINY_SHAPES_OPTS, subprocess_env, tiny_shapes_cfg

from mrcnn.engine import DefaultTrainer
from mrcnn.utils.env import seed_all_rng

TRAIN_NET = os.path.join(REPO_ROOT, "tools", "train_net.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _train_net_args(output, extra=(), flags=()):
    return [TRAIN_NET, *flags, "--config-file", SHAPES_CONFIG, *TINY_SHAPES_OPTS, *extra, "OUTPUT_DIR", str(output)]


def _run(command, timeout=300):
    completed = subprocess.run(
        command, env=subprocess_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]


def _worker_of_rank(agent_pid, rank):
    """The pid of torchrun's worker process with RANK=``rank`` (read from /proc)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/environ", "rb") as f:
                environment = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if parent == agent_pid and f"RANK={rank}".encode() in environment:
            return int(entry)
    return None


def _model_weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_torchrun_restarts_a_killed_worker_and_the_group_resumes_by_itself(tiny_shapes, tmp_path):
    extra = ["SOLVER.MAX_ITER", "16", "SOLVER.CHECKPOINT_PERIOD", "4", "SOLVER.MAX_CHECKPOINTS_TO_KEEP", "0"]
    output = tmp_path / "restarted"
    command = [*TORCHRUN, "--standalone", "--nproc-per-node", "2", "--max-restarts", "1"]
    agent = subprocess.Popen(
        [*command, *_train_net_args(output, extra)],
        env=subprocess_env(),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 240
        while not (output / "model_0000003.pth").exists():
            assert agent.poll() is None, agent.stderr.read()[-3000:]
            assert time.time() < deadline, "no checkpoint was written"
            time.sleep(0.1)
        worker = _worker_of_rank(agent.pid, 1)
        assert worker is not None
        os.kill(worker, 9)  # SIGKILL: no chance to save anything
        _, errors = agent.communicate(timeout=300)
        assert agent.returncode == 0, errors[-3000:]
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate()
    log = (output / "log.txt").read_text()
    assert "torchrun restarted the workers (TORCHELASTIC_RESTART_COUNT=1): resuming." in log
    resumed_at = int(re.search(r"Resuming from iteration (\d+)", log).group(1))
    assert resumed_at >= 4 and resumed_at % 4 == 0

    # An uninterrupted run from the checkpoint the restarted workers found ends with the same weights.
    reference = tmp_path / "reference"
    reference.mkdir()
    checkpoint = f"model_{resumed_at - 1:07d}.pth"
    shutil.copy(output / checkpoint, reference / checkpoint)
    (reference / "last_checkpoint").write_text(checkpoint)
    _run([*TORCHRUN, "--standalone", "--nproc-per-node", "2", *_train_net_args(reference, extra, ["--resume"])])
    restarted, uninterrupted = _model_weights(output / "model_final.pth"), _model_weights(reference / "model_final.pth")
    assert restarted.keys() == uninterrupted.keys()
    assert [name for name in restarted if not torch.equal(restarted[name], uninterrupted[name])] == []


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# One shape per image and samplers that take every candidate: no randomness is left in what the
# losses see, and every image has the same number of RoIs (16 proposals + its one ground-truth box)
# and of foreground RoIs (the ground-truth box alone: no proposal reaches IoU 1), so the mean of two
# one-image losses is the loss of the two-image batch. No flips; frozen BatchNorm.
_DETERMINISTIC_OPTS = [
    "DATASETS.TRAIN", "('tinyoneshape_train',)",
    "INPUT.RANDOM_FLIP", "none",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.MAX_ITER", "3",
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "4096",  # above the 1023 anchors of a 64 px image
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", "16",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "64",  # above 16 proposals + 1 box
    "MODEL.ROI_HEADS.IOU_THRESHOLDS", "[1.0]",
]  # fmt: skip


def test_two_torchrun_nodes_train_like_one_process_with_the_whole_batch(tiny_one_shape, tmp_path):
    output = tmp_path / "two_nodes"
    rendezvous = ["--nnodes", "2", "--nproc-per-node", "1", "--master-addr", "127.0.0.1"]
    rendezvous += ["--master-port", str(_free_port())]
    nodes = [
        subprocess.Popen(
            [*TORCHRUN, *rendezvous, "--node-rank", str(node), *_train_net_args(output, _DETERMINISTIC_OPTS)],
            env=subprocess_env(),
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in (0, 1)
    ]
    try:
        for node in nodes:
            _, errors = node.communicate(timeout=300)
            assert node.returncode == 0, errors[-3000:]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.communicate()
    log = (output / "log.txt").read_text()
    assert "World size: 2" in log and (output / "log.txt.rank1").exists()

    seed_all_rng(0)  # as default_setup seeds rank 0, whose initial weights DDP gives every rank
    single = DefaultTrainer(tiny_shapes_cfg(tmp_path / "one_process", _DETERMINISTIC_OPTS))
    single.resume_or_load(resume=False)
    initial = {name: value.clone() for name, value in single.model.state_dict().items()}
    single.train()
    two_nodes = _model_weights(output / "model_final.pth")
    expected = single.model.state_dict()
    assert two_nodes.keys() == expected.keys()
    assert sum(not torch.equal(initial[name], value) for name, value in expected.items()) > 20  # it trained
    for name, value in expected.items():
        torch.testing.assert_close(two_nodes[name], value, rtol=1e-4, atol=1e-6, msg=name)
