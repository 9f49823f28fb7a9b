"""What an ONNX file computes in (FP32, FP16 or INT8), read from the file: the graph (what runs) with the onnx
package, else its bytes and ONNX Runtime (an edge install); and its metadata (our export's). Bench labels its
results with it, the engine builder plans a build from it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cyclegan_edge.errors import importable

QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"})


@dataclass(frozen=True)
class OnnxFacts:
    """What an ONNX file computes in, read from the graph (what runs), and its metadata (our export's)."""

    precision: str  # fp32 | fp16 | int8
    evidence: str  # how that is known, for the report's notes
    metadata: dict[str, str]


def read_onnx_facts(path: str | os.PathLike[str]) -> OnnxFacts:
    """int8 when the graph has quantized ops (our INT8 export: QuantizeLinear/DequantizeLinear pairs), fp16 when
    its weights or inputs are float16 (our FP16 export), else fp32. ValueError for a file that is no model."""
    try:
        import onnx
    except ImportError:  # an edge install without [engine]
        return onnxruntime_facts(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError, truncated file, ...
        raise ValueError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
    if not proto.graph.node:  # an empty file parses as an empty model
        raise ValueError(f"{path}: not a readable ONNX model (no graph)")
    metadata = {p.key: p.value for p in proto.metadata_props}
    graph, f16 = proto.graph, onnx.TensorProto.FLOAT16
    quantized = sorted({n.op_type for n in graph.node if n.op_type in QUANTIZED_OPS})
    if quantized:
        return OnnxFacts("int8", f"{'/'.join(quantized)} nodes", metadata)
    if any(i.data_type == f16 for i in graph.initializer):
        return OnnxFacts("fp16", "float16 weights", metadata)
    if any(i.type.tensor_type.elem_type == f16 for i in graph.input):
        return OnnxFacts("fp16", "float16 input", metadata)
    return OnnxFacts("fp32", "float32 weights", metadata)


# The protobuf bytes of the metadata entry precision=fp16 (key: field 1, value: field 2) that export writes
FP16_METADATA = b"\n\tprecision\x12\x04fp16"


def onnxruntime_facts(path: str | os.PathLike[str]) -> OnnxFacts:
    """read_onnx_facts without the onnx package: op type names and our FP16 export's metadata are plain bytes in
    the file, and ONNX Runtime (in [runtime]) shows float16 inputs."""
    data = Path(path).read_bytes()
    if b"QuantizeLinear" in data or b"DequantizeLinear" in data:
        return OnnxFacts("int8", "QuantizeLinear/DequantizeLinear nodes", {})
    if FP16_METADATA in data:
        return OnnxFacts("fp16", "the export's metadata", {"precision": "fp16"})
    assumed = OnnxFacts("fp32", "assumed: float32 inputs and no precision in the metadata (FP16 weights are only seen "
                                "with the onnx package: pip install 'cyclegan-edge[engine]')", {})  # fmt: skip
    if not importable("onnxruntime"):  # OpenVINO alone runs it: nothing here reads the graph
        return assumed
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT's own exception types: a file that is not a model
        raise ValueError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    if any(i.type == "tensor(float16)" for i in session.get_inputs()):
        return OnnxFacts("fp16", "float16 input", metadata)
    return OnnxFacts(assumed.precision, assumed.evidence, metadata)
