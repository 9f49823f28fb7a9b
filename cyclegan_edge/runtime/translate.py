"""Translate image files with any generator: ``python -m cyclegan_edge.translate MODEL INPUT... -o DIR``.

Folders are searched recursively; outputs keep their relative paths, as PNG (inputs that would share an
output name keep their own name in it: ``x.jpg.png``, ``x.png.png``). Unreadable, corrupt or too small
files are skipped with one warning each and the exit status is 1; a failed write stops at once. Outputs
that exist are kept (a rerun adds what is missing) unless --overwrite; outputs of another model or --size
(each PNG names its job) stop the run before it starts, unless --overwrite.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

from cyclegan_edge.atomic import unwritable_folder
from cyclegan_edge.errors import EXIT_INTERRUPTED, ArgumentParser, UsageError, int_arg, run_cli
from cyclegan_edge.imaging.cv import cv2
from cyclegan_edge.imaging.files import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    OutputPathError,
    check_outputs,
    list_files,
    mark_output_folder,
    markable_output_folder,
    output_path,
    relative_to,
    unique_outputs,
)
from cyclegan_edge.progress import progress_bar
from cyclegan_edge.runtime.backends import (CONVERSION_PRECISION_HINT, OV_PRECISIONS, PRECISION_HELP, BackendOptions,
                                            open_backend)  # fmt: skip
from cyclegan_edge.runtime.batch import already_done, check_same_job, convert_image, image_job, model_digest
from cyclegan_edge.runtime.bundled import bundled_names, resolve_model
from cyclegan_edge.runtime.pipeline import SIZE_RANGE, PipelineOptions

log = logging.getLogger("cyclegan_edge.translate")


def run(argv: list[str] | None) -> int:
    script = Path(sys.argv[0]).name == "cyclegan-edge-translate"  # the console script, else python -m
    ap = ArgumentParser(prog="cyclegan-edge-translate" if script else "python -m cyclegan_edge.translate",
                        description=__doc__.split("\n")[0])  # fmt: skip
    ap.add_argument("model", help="generator checkpoint (.pth/.pt), ONNX model, TensorRT engine, or a bundled "
                    f"model's name ({', '.join(bundled_names())})")  # fmt: skip
    ap.add_argument("inputs", nargs="+", help="image files or folders")
    ap.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    ap.add_argument("--device", default=BackendOptions().device, help="PyTorch device: auto, cpu, cuda")
    ap.add_argument("--precision-hint", choices=OV_PRECISIONS, default=CONVERSION_PRECISION_HINT, help=PRECISION_HELP)
    ap.add_argument("--overwrite", action="store_true", help="replace outputs that exist (default: keep them)")
    ap.add_argument("--size", type=int_arg(*SIZE_RANGE, also=0), default=PipelineOptions().size,
                    help=f"translate at this shorter side ({SIZE_RANGE[0]}..{SIZE_RANGE[1]}, rounded to a multiple of "
                    "4) and scale the result back to the photo's size: far faster and lighter for large photos; "
                    "0 = full resolution")  # fmt: skip
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    cv2()  # images are read and written through OpenCV: without it, one line before any work

    out_dir: Path = args.output
    if out_dir.suffix.lower() in IMAGE_EXTENSIONS and not out_dir.is_dir():  # it would become a folder of that name
        raise UsageError(f"--output {out_dir}: translate writes into a folder (-o DIR gives DIR/NAME.png); one image "
                         f"to one file: python -m cyclegan_edge.runtime IMAGE {out_dir} --model MODEL")  # fmt: skip
    why = unwritable_folder(out_dir)  # before the model loads and any image is read
    if why:
        raise OutputPathError(f"--output {out_dir}: {why}; nothing written")
    options = BackendOptions(device=args.device, precision_hint=args.precision_hint)
    model = resolve_model(args.model, options)
    named = {Path(p) for p in args.inputs if Path(p).is_file()}
    # found in a folder but inside the output folder: an earlier run's output, not an input
    listed = list_files(args.inputs, IMAGE_EXTENSIONS | VIDEO_EXTENSIONS, skip_outputs=True)
    videos = [f for f in listed if f.suffix.lower() in VIDEO_EXTENSIONS]
    found = [f for f in listed if f not in videos]
    if videos:
        log.warning("left out %d video%s (%s%s): translate takes images; python -m cyclegan_edge.runtime FOLDER OUT "
                    "converts videos too", len(videos), "" if len(videos) == 1 else "s", videos[0],
                    ", ..." if len(videos) > 1 else "")  # fmt: skip
    files = [f for f in found if f in named or relative_to(f.resolve(), out_dir.resolve()) is None]
    if found and not files:
        raise OutputPathError(f"{out_dir}: every image found is inside this output folder, where outputs go (and "
                              "are not read back as inputs): choose an output folder outside the inputs")  # fmt: skip
    if not files:
        raise FileNotFoundError(f"no images found in {' '.join(args.inputs)}")
    roots = [Path(p) for p in args.inputs]
    outputs = unique_outputs(files, [output_path(src, out_dir, roots, root_named=True) for src in files])
    check_outputs(files, outputs)
    opts = PipelineOptions(size=args.size)
    job = image_job(model_digest(model), opts)
    if not args.overwrite:
        check_same_job(zip(files, outputs), out_dir, job)
    todo = [(src, out) for src, out in zip(files, outputs) if args.overwrite or not already_done(src, out)]
    kept = len(files) - len(todo)
    kept_note = f"; {kept} that existed kept (--overwrite replaces them)" if kept else ""
    if not todo:
        print(f"nothing to do: all {kept} outputs exist in {out_dir} (--overwrite replaces them)")
        return 0
    backend = open_backend(model, options)
    markable = markable_output_folder(out_dir)
    failed = written = 0
    said: set[str] = set()  # hints given once per run
    for src, out in progress_bar(todo, desc="translate", unit="img"):
        before = out.stat().st_mtime_ns if out.is_file() else None
        try:
            result = convert_image(src, out, backend, opts, job=job, said=said)
        except KeyboardInterrupt:  # the image may have been written before the Ctrl-C landed
            written += out.is_file() and out.stat().st_mtime_ns != before
            if markable and written:
                mark_output_folder(out_dir)
            print(f"interrupted: {written} of {len(todo)} images written to {out_dir}; the same command adds the "
                  "rest", file=sys.stderr)  # fmt: skip
            return EXIT_INTERRUPTED
        if result.error is not None:
            tqdm.write(f"skipped: {src}: {result.error}", file=sys.stderr)
            failed += 1
        else:
            written += 1
            if markable:
                mark_output_folder(out_dir)
    print(f"{written} of {len(todo)} images written to {out_dir} ({backend.name}){kept_note}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
