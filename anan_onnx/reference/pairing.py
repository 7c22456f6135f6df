"""Which base model an ANAN model may be verified against: compressed alike.

Its own module because both ``verify`` paths refuse a mismatched pair: the FP32 one
(:mod:`anan_onnx.reference.verify`) and the compressed one
(:mod:`anan_onnx.reference.compressed`, which builds on the FP32 one).
"""

from __future__ import annotations

from anan_onnx.errors import AnanError

__all__ = ["check_compressed_pair"]


def check_compressed_pair(anan_meta: dict[str, str], base_meta: dict[str, str]) -> None:
    """Refuses a compressed ANAN model paired with a base compressed otherwise (or not)."""
    method = anan_meta.get("compression")
    if method != base_meta.get("compression"):
        raise AnanError(
            f"the ANAN model is {method or 'fp32'} but the base model is "
            f"{base_meta.get('compression', 'fp32')}: pass the base written with it "
            "(the ANAN model's base_model metadata names it)"
        )
