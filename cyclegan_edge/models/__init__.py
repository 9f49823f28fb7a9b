"""Shared model code: the generator family, the discriminator, checkpoints, complexity."""

from cyclegan_edge.models.checkpoint import (
    CheckpointError,
    LoadedGenerator,
    clean_state_dict,
    infer_generator_config,
    load_generator,
    save_generator,
)
from cyclegan_edge.models.complexity import Complexity, count_macs, count_params
from cyclegan_edge.models.discriminator import NLayerDiscriminator
from cyclegan_edge.models.generator import (
    GeneratorConfig,
    ResnetGenerator,
    init_normal,
    mobile_resnet_9blocks,
    named_config,
    parse_channels,
    resnet_6blocks,
    resnet_9blocks,
    seeded_resnet_9blocks,
)

__all__ = [
    "CheckpointError", "Complexity", "GeneratorConfig", "LoadedGenerator", "NLayerDiscriminator",
    "ResnetGenerator", "clean_state_dict", "count_macs", "count_params", "infer_generator_config",
    "init_normal", "load_generator", "mobile_resnet_9blocks", "named_config", "parse_channels", "resnet_6blocks",
    "resnet_9blocks", "save_generator", "seeded_resnet_9blocks",
]  # fmt: skip
