"""Samplers that decide which dataset indices each rank reads."""

from .distributed_sampler import InferenceSampler, RepeatFactorTrainingSampler, TrainingSampler

__all__ = ["TrainingSampler", "InferenceSampler", "RepeatFactorTrainingSampler"]
