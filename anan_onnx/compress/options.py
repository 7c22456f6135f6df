"""The choices ``compress`` offers, in one place (and importable without onnx, for the CLI)."""

from __future__ import annotations

__all__ = ["CALIBRATION_METHODS", "MIN_CALIBRATION"]

#: onnxruntime's range estimators (``CalibrationMethod``), by the name ``--calibration-method``
#: takes: MinMax (the observed range), Entropy (KL-optimal clipping of the histogram),
#: Percentile (clips the top 0.001 % of magnitudes by default)
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")

#: fewer calibration images than this get a warning: MinMax ranges then hang on a handful of
#: images (one bright image sets a layer's whole scale), and agreement with FP32 drops
MIN_CALIBRATION = 32
