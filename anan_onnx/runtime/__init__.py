"""Inference: ``Session`` (onnxruntime, numpy in and out), model inputs from image files and
arrays, and predicted labels. Needs only numpy, onnx, onnxruntime and Pillow."""
