"""The oracle: the spec's literal per-image loop (``literal``) and ``verify``, which checks an
ANAN graph against it. Written independently of ``anan_onnx.rewrite`` and never importing it
(an import-linter contract), so that the two cannot share a mistake."""
