"""Type stubs for ``tensorrt`` made from the installed TensorRT-RTX bindings, so that mypy checks our
TensorRT code against the real TensorRT-RTX API as well as against tensorrt-stubs (TensorRT 10).

    python scripts/make_rtx_stubs.py OUT_DIR && mypy --config-file OUT_DIR/mypy.ini cyclegan_edge

stubgen reads the pybind11 signatures of the compiled module; a few of them put a parameter without a
default after one with a default, which is not valid Python, so those get ``= ...``. stubgen cannot see
pybind11's implicit conversions (a tuple passed as Dims, IHostMemory's buffer protocol), so the config
leaves out the error codes those produce: this check is about names, attributes and arity.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PARAM = re.compile(r"(\w+: [^,=()]+(?:\[[^\]]*\])?)(?=[,)])")


def fix_defaults(line: str) -> str:
    """``def f(a: int = ..., b: int)`` -> ``def f(a: int = ..., b: int = ...)``."""
    head, sep, rest = line.partition("(")
    if not line.lstrip().startswith("def ") or "= ..." not in rest:
        return line
    first_default = rest.index("= ...")
    tail = PARAM.sub(r"\1 = ...", rest[first_default:])
    return head + sep + rest[:first_default] + tail


def main(out: str) -> int:
    out_dir = Path(out)
    from mypy.stubgen import main as stubgen

    stubgen(["-p", "tensorrt_rtx_bindings", "-o", str(out_dir), "--quiet"])
    stub = out_dir / "tensorrt_rtx_bindings" / "tensorrt_rtx.pyi"
    stub.write_text("\n".join(fix_defaults(ln) for ln in stub.read_text().splitlines()) + "\n")
    (out_dir / "tensorrt").mkdir(exist_ok=True)
    (out_dir / "tensorrt" / "__init__.pyi").write_text(
        "from tensorrt_rtx_bindings.tensorrt_rtx import *\n"
        "from tensorrt_rtx_bindings import nptype as nptype, __version__ as __version__\n"
    )
    (out_dir / "mypy.ini").write_text(MYPY_INI.format(stubs=out_dir.resolve()))
    return 0


MYPY_INI = """[mypy]
python_version = 3.11
ignore_missing_imports = True
check_untyped_defs = True
mypy_path = {stubs}
disable_error_code = arg-type, call-overload, var-annotated

[mypy-tensorrt_rtx_bindings.*]
ignore_errors = True
"""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
