"""Evaluation without any network download: ``python -m cyclegan_edge.evaluate``.

One job per module: ``data`` (test images), ``generators`` (opening any model file), ``domain`` (the domain
classifier, trained and cached per dataset), ``filters`` (colour-filter baselines), ``checkerboard`` (the
alias-frequency score), ``metrics`` (domain score and interval, cycle L1, edge SSIM), ``report``
(JSON + Markdown), ``config`` (the flags).
"""
