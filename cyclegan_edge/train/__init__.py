"""CycleGAN training: ``python -m cyclegan_edge.train`` (or under torchrun for DDP)."""

from cyclegan_edge.train.config import TrainConfig

__all__ = ["TrainConfig"]
