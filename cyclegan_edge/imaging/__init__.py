"""Image helpers, the bottom layer beside models: OpenCV access (cv), frame <-> tensor conversion (frames),
image files (io)."""
