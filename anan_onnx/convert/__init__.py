"""Conversion: model files in (Keras through tf2onnx, or ONNX), a validated ANAN model out
(``pipeline``). TensorFlow is imported lazily by ``keras_export`` alone."""
