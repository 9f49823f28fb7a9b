"""Shared model code: the generator families (ResNet, U-Net), the discriminator, checkpoints, complexity."""

from cyclegan_edge.models.checkpoint import (
    AnyGeneratorConfig,
    CheckpointError,
    Generator,
    LoadedGenerator,
    build_generator,
    clean_state_dict,
    config_from_dict,
    infer_generator_config,
    load_generator,
    nonfinite_weights,
    save_generator,
)
from cyclegan_edge.models.complexity import Complexity, count_macs, count_params
from cyclegan_edge.models.discriminator import NLayerDiscriminator
from cyclegan_edge.models.generator import (
    GeneratorConfig,
    ResnetGenerator,
    init_from_wider,
    init_normal,
    mobile_resnet_9blocks,
    named_config,
    parse_channels,
    resnet_6blocks,
    resnet_9blocks,
    seeded_resnet_9blocks,
)
from cyclegan_edge.models.unet import UnetConfig, UnetGenerator, unet_128, unet_256, unet_config

__all__ = [
    "AnyGeneratorConfig", "CheckpointError", "Complexity", "Generator", "GeneratorConfig", "LoadedGenerator",
    "NLayerDiscriminator", "ResnetGenerator", "UnetConfig", "UnetGenerator", "build_generator", "clean_state_dict",
    "config_from_dict", "count_macs", "count_params", "infer_generator_config", "init_from_wider", "init_normal",
    "load_generator", "mobile_resnet_9blocks", "named_config", "nonfinite_weights", "parse_channels",
    "resnet_6blocks", "resnet_9blocks", "save_generator", "seeded_resnet_9blocks", "unet_128", "unet_256",
    "unet_config",
]  # fmt: skip
