"""SIGTERM / SIGINT during training: the iteration in flight finishes, a checkpoint is saved, training
raises TrainingInterrupted (exit status 75), and --resume continues exactly as an uninterrupted run."""

import logging
import multiprocessing
import os
import signal

import pytest
import torch
from engine_toys import SignalAtIteration, ToyTrainer, ddp_signalled_rank_worker, toy_cfg, toy_loader

from mrcnn.engine import EXIT_CODE_INTERRUPTED, HookBase, TrainingInterrupted, launch
from mrcnn.engine.preemption import _loop_running
from mrcnn.utils.env import seed_all_rng


@pytest.fixture(autouse=True)
def stop_signals_handled_as_in_a_foreground_run():
    """SIGINT and SIGTERM start with Python's handlers whatever the environment: a test run started
    in the background (``cmd &`` in a script) inherits SIGINT ignored, which training keeps ignored."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


class _LogLines(logging.Handler):
    """Collects the messages of the library loggers (they do not propagate to pytest's caplog)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    @property
    def text(self):
        return "\n".join(self.lines)


def _lrs(trainer):
    return {it: value for value, it in trainer.storage.history("lr").values()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Final weights and learning rates of the toy run that no signal stops."""
    seed_all_rng(0)
    straight = ToyTrainer(toy_cfg(tmp_path_factory.mktemp("uninterrupted")))
    straight.resume_or_load(resume=False)
    straight.train()
    return {key: value.clone() for key, value in straight.model.state_dict().items()}, _lrs(straight)


@pytest.mark.parametrize(
    "signum, stop_at, times",
    [(signal.SIGTERM, 7, 1), (signal.SIGINT, 7, 2), (signal.SIGTERM, 9, 1)],
    ids=["sigterm", "sigint-twice", "sigterm-at-periodic-checkpoint"],
)
def test_signal_stops_after_the_iteration_in_flight_and_resume_is_exact(
    tmp_path, uninterrupted, signum, stop_at, times
):
    final_weights, final_lrs = uninterrupted
    output = tmp_path / "stopped"
    handler_before = signal.getsignal(signum)
    seed_all_rng(0)
    stopped = ToyTrainer(toy_cfg(output))
    stopped.resume_or_load(resume=False)
    stopped.register_hooks([SignalAtIteration(stop_at, signum, times)])
    log = _LogLines()
    logging.getLogger("mrcnn").addHandler(log)  # the conftest fixture removes it afterwards
    with pytest.raises(TrainingInterrupted) as interrupted:
        stopped.train()
    assert signal.getsignal(signum) is handler_before
    name = signal.Signals(signum).name
    checkpoint = str(output / f"model_{stop_at:07d}.pth")
    assert interrupted.value.code == EXIT_CODE_INTERRUPTED == 75
    assert (interrupted.value.signal_name, interrupted.value.iteration) == (name, stop_at)
    assert interrupted.value.checkpoint == checkpoint
    assert stopped.iter == stop_at and stopped.steps_run == stop_at + 1 and not stopped.finished
    assert (output / "last_checkpoint").read_text() == os.path.basename(checkpoint)
    assert not (output / "model_final.pth").exists()
    assert torch.load(checkpoint, weights_only=True)["iteration"] == stop_at
    assert f"Training stopped by {name} after iteration {stop_at}; checkpoint {checkpoint}" in log.text
    assert log.text.count(f"Saving checkpoint to {checkpoint}") == 1  # at a periodic iteration: saved once
    assert ("again" in log.text) == (times > 1)

    seed_all_rng(1234)  # a new process starts from other generator states
    resumed = ToyTrainer(toy_cfg(output))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == stop_at + 1
    resumed.train()
    for key, value in final_weights.items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert {**_lrs(stopped), **_lrs(resumed)} == final_lrs


def test_data_loader_processes_survive_a_signal_to_the_whole_process_group(tmp_path):
    # SLURM and a terminal's Ctrl-C signal every process of the job: the loader's too.
    class TwoLoaderProcessesTrainer(ToyTrainer):
        @classmethod
        def build_train_loader(cls, cfg):
            return toy_loader(batch_size=cfg.SOLVER.IMS_PER_BATCH, seed=cfg.SEED, num_workers=2)

    class SignalEveryProcess(HookBase):
        loader_processes = []

        def after_backward(self):
            if self.trainer.iter == 3:
                self.loader_processes = [p for p in multiprocessing.active_children() if p.pid not in before]
                for pid in [p.pid for p in self.loader_processes] + [os.getpid()]:
                    os.kill(pid, signal.SIGTERM)

    before = {p.pid for p in multiprocessing.active_children()}
    trainer = TwoLoaderProcessesTrainer(toy_cfg(tmp_path))
    signaller = SignalEveryProcess()
    trainer.register_hooks([signaller])
    with pytest.raises(TrainingInterrupted) as interrupted:
        trainer.train()  # without the loader ignoring it: "DataLoader worker ... killed by signal"
    assert interrupted.value.iteration == 3 and interrupted.value.checkpoint == str(tmp_path / "model_0000003.pth")
    assert len(signaller.loader_processes) == 2 and all(p.is_alive() for p in signaller.loader_processes)
    assert _loop_running().value == 0  # from now on the signals end them again (as at the process's exit)


def test_a_signal_ignored_before_training_stays_ignored(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a job started in the background
    try:
        trainer = ToyTrainer(toy_cfg(tmp_path, ["SOLVER.MAX_ITER", "6"]))
        trainer.register_hooks([SignalAtIteration(2, signal.SIGINT)])
        trainer.train()
        assert trainer.finished and trainer.iter == 5 and trainer.stopped_by is None
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_signal_during_the_last_iteration_lets_training_finish(tmp_path):
    trainer = ToyTrainer(toy_cfg(tmp_path, ["SOLVER.MAX_ITER", "6"]))
    trainer.register_hooks([SignalAtIteration(5, signal.SIGTERM)])
    trainer.train()  # nothing is left to interrupt: model_final is written, no exception
    assert trainer.finished and trainer.stopped_by is None
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"


def test_all_ranks_stop_after_the_iteration_in_which_one_rank_got_the_signal(tmp_path):
    # Two gloo processes; only rank 1 gets SIGTERM, in iteration 3. launch() waits for both and
    # raises TrainingInterrupted, as the process of tools/train_net.py would exit with status 75.
    with pytest.raises(TrainingInterrupted) as interrupted:
        launch(ddp_signalled_rank_worker, 2, dist_url="auto", args=(str(tmp_path), 1, 3))
    assert interrupted.value.code == EXIT_CODE_INTERRUPTED
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    checkpoint = str(tmp_path / "model_0000003.pth")
    assert ranks == [{"iter": 3, "stopped_by": "SIGTERM", "checkpoint": checkpoint}] * 2
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000003.pth"
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["iteration"] == 3 and len(saved["rng_states"]) == 2
