"""CycleGAN training: ``python -m cyclegan_edge.train`` (or under torchrun for DDP); config in ``train.config``."""
