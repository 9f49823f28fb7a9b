"""Generator -> ONNX with dynamic batch/height/width, folded constants and metadata."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cyclegan_edge import __version__
from cyclegan_edge.atomic import atomic_path
from cyclegan_edge.imaging.frames import padded_size
from cyclegan_edge.model_files import INPUT_NAME, OUTPUT_NAME
from cyclegan_edge.model_files import SIZE_MULTIPLE_KEY

if TYPE_CHECKING:  # importing this module must not need torch (the export CLI builds engines from ONNX without it)
    from cyclegan_edge.models import LoadedGenerator

DEFAULT_OPSET = 17  # JetPack 5's TensorRT 8.5 parses up to opset 17
MIN_OPSET = 9  # torch's minimum is 7, but at 7 and 8 these generators fail onnx.checker (measured with torch 2.13)


def max_opset() -> int:
    """The newest opset this torch exports (23 with torch 2.13: 9..23 export and pass parity; 24 is refused)."""
    try:
        from torch.onnx import _constants  # private: another torch may move it
    except ImportError:
        return DEFAULT_OPSET
    return int(getattr(_constants, "ONNX_MAX_OPSET", DEFAULT_OPSET))


class ExportError(RuntimeError):
    pass


def fold_constants(model: Any) -> Any:
    """Evaluate every node whose inputs are all constants and store its outputs as initializers.

    The TorchScript exporter computes Pad's pads through Concat/Reshape/Slice chains and emits
    InstanceNormalization's scale and bias as Constant nodes; TensorRT and quantizers want plain
    initializers.
    """
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    const: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    kept = []
    opsets = list(model.opset_import)
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type == "Constant" or (inputs and all(i in const for i in inputs)):
            sub = helper.make_model(
                helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
                                                       for o in node.output],
                                  [numpy_helper.from_array(np.asarray(const[i]), i) for i in inputs]),  # fmt: skip
                opset_imports=opsets,
            )
            for name, value in zip(node.output, ReferenceEvaluator(sub).run(None, {})):
                const[name] = np.asarray(value)
        else:
            kept.append(node)
    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in const.items() if k in used)
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def generator_metadata(gen: LoadedGenerator, extra: dict[str, str] | None = None) -> dict[str, str]:
    multiple = gen.config.size_multiple  # 4 for ResNets, 2**depth for U-Nets: the runtime backends pad to it
    return {
        "architecture": gen.config.name,
        "architecture_config": str(gen.config.to_dict()),
        "direction": str(gen.meta.get("direction", "A->B")),
        "input_normalization": "RGB, NCHW, float in [-1, 1] = uint8 / 127.5 - 1; output the same",
        "size_rule": f"height and width must be multiples of {multiple} (reflect-pad and crop back)",
        SIZE_MULTIPLE_KEY: str(multiple),
        "source_checkpoint_sha256": gen.sha256,
        "toolkit": f"cyclegan-edge {__version__}",
        **(extra or {}),
    }


def set_metadata(model: Any, props: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = v
        else:
            p = model.metadata_props.add()
            p.key, p.value = k, v


def export_onnx(gen: LoadedGenerator, path: str | os.PathLike[str], opset: int = DEFAULT_OPSET,
                sample_hw: tuple[int, int] = (256, 256)) -> Path:  # fmt: skip
    """Export a loaded generator to ``path`` (atomically); returns the path."""
    import onnx
    import torch

    model = gen.model.float().eval().cpu()
    x = torch.zeros(1, gen.config.input_nc, *padded_size(*sample_hw, gen.config.size_multiple))
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad(), tempfile.TemporaryDirectory() as tmpdir:
        warnings.simplefilter("ignore")
        raw = Path(tmpdir) / "raw.onnx"
        # The TorchScript exporter writes opsets MIN_OPSET..max_opset() (above 20 with a warning, silenced here: the
        # export's parity check against PyTorch is what vouches for the model).
        torch.onnx.export(
            model, (x,), str(raw), dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, do_constant_folding=True,
        )
        proto = fold_constants(onnx.load(str(raw)))
    proto.producer_name, proto.producer_version = "cyclegan-edge", __version__
    proto.graph.name = gen.config.name
    set_metadata(proto, generator_metadata(gen))
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return Path(path)
