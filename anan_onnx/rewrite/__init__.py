"""The graph rewrite: the target Conv (``target``) becomes the unrolled k-step astrocyte
subgraph (``graph``), its steps (``portable_steps``) and the exact shortcuts it takes
(``routes/``). Works on onnx-ir models; never imports TensorFlow."""
