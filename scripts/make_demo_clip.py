"""Make the bundled real demo clip from the CC0 butterfly video (pixabay, via flutter/assets-for-api-docs).

    python scripts/make_demo_clip.py ../shared/data/videos/butterfly.mp4

Writes cyclegan_edge/assets/butterfly.mp4: the clip's first 4 s (a butterfly on a thistle before a green
summer meadow, handheld; 120 frames, short enough for a CPU demo) at 640x360, H.264 (CRF 26, yuv420p,
+faststart) with its AAC sound packets copied as they are, up to the same time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2

OUT = Path(__file__).resolve().parents[1] / "cyclegan_edge" / "assets" / "butterfly.mp4"
W, H, CRF, SECONDS = 640, 360, 26, 4.0


def main(src: str) -> None:
    tmp = OUT.with_name(".butterfly.partial.mp4")
    with av.open(src) as inp, av.open(str(tmp), "w", options={"movflags": "+faststart"}) as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vout = out.add_stream("libx264", rate=vin.average_rate, options={"crf": str(CRF), "preset": "slow"})
        vout.width, vout.height, vout.pix_fmt = W, H, "yuv420p"
        vout.time_base = vin.time_base
        aout = out.add_stream_from_template(ain)
        for packet in inp.demux(vin, ain):
            if packet.pts is not None and packet.pts * packet.time_base >= SECONDS:
                continue
            if packet.stream is ain:
                if packet.dts is not None:
                    packet.stream = aout
                    out.mux(packet)
                continue
            for frame in packet.decode():
                if frame.pts * frame.time_base >= SECONDS:
                    continue
                small = cv2.resize(frame.to_ndarray(format="bgr24"), (W, H), interpolation=cv2.INTER_AREA)
                new = av.VideoFrame.from_ndarray(small, format="bgr24")
                new.pts, new.time_base = frame.pts, frame.time_base
                out.mux(vout.encode(new))
        out.mux(vout.encode(None))
    tmp.replace(OUT)
    print(f"{OUT}: {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1])
