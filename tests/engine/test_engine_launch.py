"""Distributed training on the CPU: gloo processes from launch(), torchrun, and tools/train_net.py."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from engine_toys import (
    REPO_ROOT,
    SHAPES_CONFIG,
    TESTS_ENGINE_DIR,
    TINY_SHAPES_OPTS,
    ddp_toy_worker,
    rank_zero_fails_late_worker,
    subprocess_env,
    toy_dataset,
    toy_training_run,
)

from mrcnn.engine import launch


def _check_against_single_process(output_dir, world_size=2):
    ranks = [torch.load(os.path.join(output_dir, f"rank{r}.pt"), weights_only=True) for r in range(world_size)]
    reference_gradients, reference_weights, reference_loss = toy_training_run(toy_dataset(8))
    for rank in ranks:
        assert rank["world_size"] == world_size
        for name, gradient in reference_gradients.items():
            # DDP averages the half-batch gradients: the gradient of the mean loss over all 8 samples.
            torch.testing.assert_close(rank["gradients"][name], gradient, rtol=0, atol=1e-5)
        for name, weight in reference_weights.items():
            torch.testing.assert_close(rank["weights"][name], weight, rtol=0, atol=1e-5)
    for name in reference_weights:
        assert torch.equal(ranks[0]["weights"][name], ranks[1]["weights"][name]), name
    # The recorded loss is the average over ranks: the single-process loss of the whole batch.
    assert ranks[0]["first_loss"] == pytest.approx(reference_loss, abs=1e-5)
    return ranks


def test_two_gloo_processes_match_single_process_gradients(tmp_path):
    launch(ddp_toy_worker, 2, dist_url="auto", args=(str(tmp_path),))
    ranks = _check_against_single_process(str(tmp_path))
    assert [r["local_rank"] for r in ranks] == [0, 1]
    assert all(r["threads"] == max(1, (os.cpu_count() or 1) // 2) for r in ranks)  # cores shared out


def test_the_failing_rank_is_reported_when_another_returned_first(tmp_path):
    # Rank 1 returns and waits at the barrier before teardown; rank 0's error is what launch raises,
    # not the broken barrier of the rank that had finished.
    with pytest.raises(Exception, match="rank 0 failed on purpose"):
        launch(rank_zero_fails_late_worker, 2, dist_url="auto", args=(str(tmp_path),))
    assert os.path.exists(tmp_path / "rank1_returned")


def test_under_torchrun(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {TESTS_ENGINE_DIR!r})
        from engine_toys import ddp_toy_worker
        from mrcnn.engine import launch
        launch(ddp_toy_worker, 8, args=({str(tmp_path)!r},))  # torchrun's environment wins over 8
    """)
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    completed = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    _check_against_single_process(str(tmp_path))


def test_single_process_runs_in_place(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    calls = []
    launch(lambda *a: calls.append(a), 1, args=(1, 2))
    assert calls == [(1, 2)]
    # Started by torchrun with a world of one: no process group, no spawning.
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    launch(lambda *a: calls.append(a), 4, args=(3,))
    assert calls == [(1, 2), (3,)]
    with pytest.raises(ValueError, match="one machine"):
        monkeypatch.delenv("RANK")
        launch(lambda: None, 2, num_machines=2, machine_rank=0, dist_url="auto")


_TRAIN_NET_WRAPPER = """
import os, sys
import torch
sys.path.insert(0, os.path.join({repo!r}, "tools"))
import train_net
from mrcnn.engine import default_argument_parser, launch
from mrcnn.utils import comm


def main(args):
    # tools/train_net.py's own setup and Trainer; afterwards every rank saves its weights.
    cfg = train_net.setup(args)
    trainer = train_net.Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    model = getattr(trainer.model, "module", trainer.model)
    torch.save(model.state_dict(), os.path.join(cfg.OUTPUT_DIR, "weights_rank%d.pth" % comm.get_rank()))


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url, args=(args,))
"""


def test_train_net_with_two_cpu_processes_keeps_ranks_identical(tiny_shapes, tmp_path):
    script = tmp_path / "train_net_ranks.py"
    script.write_text(_TRAIN_NET_WRAPPER.format(repo=REPO_ROOT))
    output = tmp_path / "out"
    command = [
        sys.executable,
        str(script),
        "--num-gpus",
        "2",
        "--config-file",
        SHAPES_CONFIG,
        *TINY_SHAPES_OPTS,
        "SOLVER.IMS_PER_BATCH",
        "4",
        "SOLVER.MAX_ITER",
        "4",
        "OUTPUT_DIR",
        str(output),
    ]
    completed = subprocess.run(
        command, env=subprocess_env(), capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    rank0 = torch.load(output / "weights_rank0.pth", weights_only=True)
    rank1 = torch.load(output / "weights_rank1.pth", weights_only=True)
    initial = torch.load(output / "model_final.pth", weights_only=True)["model"]
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
        assert torch.equal(rank0[name], initial[name]), name
    log = (output / "log.txt").read_text()
    assert "World size: 2" in log
    assert (output / "log.txt.rank1").exists()
    # Each rank loads its own half of the batch: 2 images per rank and iteration.
    assert "iter: 3" in log and "total_loss" in log


def _process_state(pid):
    """The state letter of ``pid`` from /proc ("R", "S", "Z", ...), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def _children(pid):
    """Process ids whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return found


def _wait_for_text(path, text, process, timeout):
    deadline = time.time() + timeout
    while not (path.exists() and text in path.read_text()):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.time() < deadline, f"'{text}' never appeared in {path}"
        time.sleep(0.2)


def test_workers_stop_when_the_launching_process_is_killed(tiny_shapes, tmp_path):
    output = tmp_path / "out"
    command = [sys.executable, os.path.join(REPO_ROOT, "tools", "train_net.py"), "--num-gpus", "2"]
    command += [
        "--config-file",
        SHAPES_CONFIG,
        *TINY_SHAPES_OPTS,
        "SOLVER.MAX_ITER",
        "100000",
        "OUTPUT_DIR",
        str(output),
    ]
    # Started with SIGINT ignored, as a job started in the background is: the SIGINT that torch asks
    # the kernel to send to children of a dead parent is then ignored too (why orphans trained on).
    launcher = subprocess.Popen(
        command,
        env=subprocess_env(),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        for log in ("log.txt", "log.txt.rank1"):
            _wait_for_text(output / log, "Starting training from iteration 0", launcher, timeout=240)
        workers = [pid for pid in _children(launcher.pid) if b"spawn_main" in open(f"/proc/{pid}/cmdline", "rb").read()]
        assert len(workers) == 2
        os.kill(launcher.pid, signal.SIGKILL)
        assert launcher.wait(timeout=30) == -signal.SIGKILL
        killed_at = time.time()
        while any(_process_state(pid) not in (None, "Z") for pid in workers):
            assert time.time() - killed_at < 30, "the workers outlived their launcher"
            time.sleep(0.2)
    finally:
        if launcher.poll() is None:
            launcher.kill()
        launcher.stderr.close()
    # They noticed (the first to notice may stop both), and stopped as on SIGTERM: after the same
    # iteration, with a checkpoint of it.
    logs = [(output / name).read_text() for name in ("log.txt", "log.txt.rank1")]
    assert any(f"The launching process {launcher.pid} is gone" in log for log in logs)
    tagged = (output / "last_checkpoint").read_text()
    iteration = torch.load(output / tagged, weights_only=True)["iteration"]
    stopped = f"Training stopped by SIGTERM after iteration {iteration}; checkpoint {output / tagged}"
    assert all(stopped in log for log in logs)
