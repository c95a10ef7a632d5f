"""A training process killed with SIGKILL in the middle of saving leaves a loadable checkpoint,
and tools/train_net.py --resume continues from it."""

import json
import os
import signal
import subprocess
import sys
import time

import torch
from engine_toys import REPO_ROOT, SHAPES_CONFIG, TINY_SHAPES_OPTS, subprocess_env

TRAIN_NET = os.path.join(REPO_ROOT, "tools", "train_net.py")

# Runs tools/train_net.py with torch.save slowed down: the second save writes half of its bytes,
# announces itself through a marker file and hangs, so the test can kill it mid-write.
_SLOW_SAVE_RUNNER = """
import io, os, runpy, sys, time
import torch

real_save = torch.save
count = [0]


def slow_save(obj, f, *args, **kwargs):
    count[0] += 1
    if count[0] == 2:
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        with open({marker!r}, "w") as marker:
            marker.write("saving")
        time.sleep(600)
    return real_save(obj, f, *args, **kwargs)


torch.save = slow_save
sys.argv = [{train_net!r}] + sys.argv[1:]
runpy.run_path({train_net!r}, run_name="__main__")
"""


def test_sigkill_during_save_then_resume(tiny_shapes, tmp_path):
    output = tmp_path / "out"
    marker = tmp_path / "saving"
    runner = tmp_path / "slow_save_runner.py"
    runner.write_text(_SLOW_SAVE_RUNNER.format(marker=str(marker), train_net=TRAIN_NET))
    opts = [*TINY_SHAPES_OPTS, "SOLVER.CHECKPOINT_PERIOD", "5", "SOLVER.MAX_ITER", "12", "OUTPUT_DIR", str(output)]
    process = subprocess.Popen(
        [sys.executable, str(runner), "--config-file", SHAPES_CONFIG, *opts],
        env=subprocess_env(),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 240
        while not marker.exists():
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "the second checkpoint save never started"
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()

    # The save of iteration 9 was cut off in its temporary file; iteration 4 is still the last one.
    files = sorted(os.listdir(output))
    assert "model_0000009.pth" not in files
    temporaries = [name for name in files if name.startswith("model_0000009.pth.") and name.endswith(".tmp")]
    assert len(temporaries) == 1
    assert (output / "last_checkpoint").read_text() == "model_0000004.pth"
    saved = torch.load(output / "model_0000004.pth", weights_only=True)
    assert saved["iteration"] == 4 and saved["trainer"]["iteration"] == 4

    completed = subprocess.run(
        [sys.executable, TRAIN_NET, "--config-file", SHAPES_CONFIG, "--resume", *opts],
        env=subprocess_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    log = (output / "log.txt").read_text()
    assert "Resuming from iteration 5" in log
    final = torch.load(output / "model_final.pth", weights_only=True)
    assert final["iteration"] == 11
    assert (output / "last_checkpoint").read_text() == "model_final.pth"
    assert not [name for name in os.listdir(output) if name.endswith(".tmp")]  # cleaned up on resume
    iterations = [json.loads(line)["iteration"] for line in (output / "metrics.json").read_text().splitlines()]
    assert iterations[-1] == 11
