"""cyclegan-edge: CycleGAN from training to real-time use on edge GPUs."""

__version__ = "0.1.0"
