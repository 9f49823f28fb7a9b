"""FP32 ONNX -> FP16 ONNX, keeping InstanceNormalization in FP32.

NVIDIA recommends FP32 for normalization statistics: mean/variance over a whole feature map
overflow or lose precision in FP16. Each InstanceNormalization gets a Cast to FP32 on its input
(so its statistics are computed in FP32) and a Cast back to FP16 on its output; its scale and
bias stay FP32. Graph inputs and outputs stay FP32 (casts at the edges), so callers don't change.
The precision lives in the graph itself, which is what strongly typed TensorRT (10 with the
flag, 11 and TensorRT-RTX always) builds from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

FP32_OPS = frozenset({"InstanceNormalization"})
# Inputs the ONNX spec types as float32 whatever the data's type: Resize's scales (and its roi, kept alike),
# Upsample's scales. Converted, ONNX Runtime refuses the model (resize-conv generators: the default upsample).
FLOAT_ONLY_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}


def convert_fp16(model: Any, fp32_ops: frozenset[str] = FP32_OPS) -> Any:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    fp32_inputs = {i for n in graph.node if n.op_type in fp32_ops for i in list(n.input)[1:]}
    fp32_inputs |= {n.input[k] for n in graph.node for k in FLOAT_ONLY_INPUTS.get(n.op_type, ()) if k < len(n.input)}

    new_inits = []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in fp32_inputs:
            new_inits.append(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
        else:
            new_inits.append(init)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)

    nodes: list[Any] = []
    renames: dict[str, str] = {}
    for inp in graph.input:
        if inp.type.tensor_type.elem_type == TensorProto.FLOAT:
            renames[inp.name] = inp.name + "_fp16"
            nodes.append(helper.make_node("Cast", [inp.name], [inp.name + "_fp16"], to=TensorProto.FLOAT16,
                                          name=f"cast_in_{inp.name}"))  # fmt: skip
    for node in graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
        if node.op_type == "Constant" and not set(node.output) & fp32_inputs:
            for attr in node.attribute:
                if attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
        if node.op_type in fp32_ops:
            x = node.input[0]
            nodes.append(helper.make_node("Cast", [x], [x + "_fp32"], to=TensorProto.FLOAT, name=f"{node.name}_in_fp32"))
            node.input[0] = x + "_fp32"
            y = node.output[0]
            node.output[0] = y + "_fp32"
            nodes.append(node)
            nodes.append(helper.make_node("Cast", [y + "_fp32"], [y], to=TensorProto.FLOAT16, name=f"{node.name}_out_fp16"))
            continue
        nodes.append(node)
    for out in graph.output:
        if out.type.tensor_type.elem_type == TensorProto.FLOAT:
            internal = out.name + "_fp16"
            for n in nodes:
                n.output[:] = [internal if o == out.name else o for o in n.output]
                n.input[:] = [internal if i == out.name else i for i in n.input]
            nodes.append(helper.make_node("Cast", [internal], [out.name], to=TensorProto.FLOAT, name=f"cast_out_{out.name}"))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


def export_fp16(onnx_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """FP32 ONNX file -> FP16 ONNX file (written atomically)."""
    import onnx

    from cyclegan_edge.atomic import atomic_path
    from cyclegan_edge.export.onnx_export import set_metadata

    model = convert_fp16(onnx.load(str(onnx_path)))
    set_metadata(model, {"precision": "fp16"})  # what a reader without the onnx package can see (bench)
    with atomic_path(out_path) as tmp:
        onnx.save(model, str(tmp))
    return Path(out_path)
