"""The models and graph variants of the conformance matrix, with their expected outputs.

Shared by tests/test_conformance.py and tools/conformance_report.py. Each case is one
base model converted in one graph variant, saved once, with a small batch, the spec's
literal per-image loop on it (the reference) and the base model's outputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from anan_onnx import AnanParams, LiteralReference, convert_model, load_base
from anan_onnx.testing import VARIANTS as CONV_VARIANTS
from anan_onnx.testing import build_cnn, random_batch

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "models" / "catsdogs_cnn.keras"

TOLERANCE = 1e-5
#: An image counts as modulated where the reference moves an output by more than this
#: from the base model: there a runtime must differ from the base model too.
MODULATED = 10 * TOLERANCE
BATCH = 3

#: graph variant -> (convert_model keywords, parameters)
GRAPH_VARIANTS: dict[str, tuple[dict[str, object], AnanParams]] = {
    "default": ({}, AnanParams()),
    "tunable": ({"tunable": True}, AnanParams()),
    f"batch-{BATCH}": ({"batch": BATCH}, AnanParams()),
    # the default folds the steps where exact: this keeps the k unrolled steps covered
    "unroll-steps": ({"fold_steps": False}, AnanParams()),
    "signal-post": ({}, AnanParams(signal="post")),
    "reduce-max": ({}, AnanParams(reduce="max")),
    "layers-all": ({"layers": "all"}, AnanParams()),  # every Conv, one after the other
}

#: model -> what it is (the bundled Keras CNN needs TensorFlow to convert)
MODELS: dict[str, str] = {
    "catsdogs": "bundled Keras CNN, NHWC 128x128x3, sigmoid",
    "plain": "generated, NCHW 11x11x3, 3x3 Conv, softmax",
    "depthwise": "generated, NCHW 11x11x3, depthwise Conv, sigmoid",
    "stride2-maxpool": "generated, NCHW 11x11x3, 4x4 stride-2 SAME Conv, MaxPool, softmax",
}


def base_model(name: str) -> tuple[onnx.ModelProto, np.ndarray]:
    """The base model ``name`` and its test batch (BATCH images, seeded)."""
    if name == "catsdogs":
        # dark noise: in [0, 1) the base CNN saturates at p = 1 and some variants no longer
        # move it; in [0, 0.5) every variant changes every image's output
        batch = np.random.default_rng(20).random((BATCH, 128, 128, 3), dtype=np.float32) * 0.5
        return load_base(BUNDLED_MODEL), batch
    # seeds picked so that every graph variant changes some output (test_conformance checks)
    variant, kwargs = {
        "plain": (CONV_VARIANTS["plain"], {"seed": 3}),
        "depthwise": (CONV_VARIANTS["depthwise"], {"head": "sigmoid", "seed": 4}),
        "stride2-maxpool": (CONV_VARIANTS["same_upper"], {"pool": "max", "seed": 6}),
    }[name]
    return build_cnn(variant, **kwargs), random_batch(variant, BATCH, seed=4)


@dataclasses.dataclass
class Case:
    """One model in one graph variant, saved, with what every runtime must reproduce."""

    model: str
    variant: str
    path: Path
    base_path: Path
    batch: np.ndarray
    reference: np.ndarray  # (N, classes), the literal per-image loop
    base: np.ndarray  # (N, classes), the base model on onnxruntime CPU
    near_tie: np.ndarray  # (N,) images excluded from the comparison

    @property
    def modulated(self) -> np.ndarray:
        """Images whose reference output differs from the base model's."""
        return np.abs(self.reference - self.base).max(axis=1) > MODULATED


def make_case(
    model: str, variant: str, folder: Path, base: tuple[onnx.ModelProto, np.ndarray]
) -> Case:
    """Converts ``base`` in ``variant``, saves both models in ``folder``, runs the reference."""
    proto, batch = base
    kwargs, params = GRAPH_VARIANTS[variant]
    conversion = convert_model(proto, params, **kwargs)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model}.{variant}.anan.onnx"
    base_path = folder / f"{model}.base.onnx"
    onnx.save(conversion.anan, path)
    onnx.save(conversion.base, base_path)
    targets = conversion.target_layers or conversion.target_layer
    reference = LiteralReference(conversion.base, targets, params).run(batch)
    session = ort.InferenceSession(str(base_path), providers=["CPUExecutionProvider"])
    base_out = session.run(None, {session.get_inputs()[0].name: batch})[0]
    return Case(
        model=model,
        variant=variant,
        path=path,
        base_path=base_path,
        batch=batch,
        reference=np.asarray(reference.outputs[0], np.float64).reshape(len(batch), -1),
        base=np.asarray(base_out, np.float64).reshape(len(batch), -1),
        near_tie=np.asarray(reference.near_tie, bool),
    )


@dataclasses.dataclass
class CellResult:
    """What one runtime produced on one case."""

    max_abs_diff: float  # vs the reference, over the images without near-ties
    differs: int  # modulated images on which the runtime's output differs from the base's
    modulated: int  # images the astrocytes changed (reference vs base)
    shape_ok: bool

    @property
    def passed(self) -> bool:
        return (
            self.shape_ok
            and self.modulated > 0
            and self.max_abs_diff <= TOLERANCE
            and self.differs == self.modulated
        )


def compare(case: Case, outputs: np.ndarray) -> CellResult:
    """Checks a runtime's outputs against the case's reference and base outputs."""
    outputs = np.asarray(outputs, np.float64)
    if outputs.shape != case.reference.shape:
        return CellResult(float("inf"), 0, int(case.modulated.sum()), False)
    keep = ~case.near_tie
    diff = float(np.abs(outputs[keep] - case.reference[keep]).max()) if keep.any() else 0.0
    if not np.all(np.isfinite(outputs)):
        diff = float("inf")
    moved = np.abs(outputs - case.base).max(axis=1) > TOLERANCE
    modulated = case.modulated
    return CellResult(diff, int((moved & modulated).sum()), int(modulated.sum()), True)


# --- a per-channel, BGR model fed from image files ------------------------------------------

#: ImageNet-style ``(pixel / 255 - mean) / std`` per channel, on BGR input (as Caffe models
#: expect): each runtime that reads image files must reorder and scale per channel.
PER_CHANNEL_MEAN = (0.406, 0.456, 0.485)  # B, G, R
PER_CHANNEL_STD = (0.225, 0.224, 0.229)
PER_CHANNEL_SCALE = tuple(1 / (255 * s) for s in PER_CHANNEL_STD)
PER_CHANNEL_OFFSET = tuple(-m / s for m, s in zip(PER_CHANNEL_MEAN, PER_CHANNEL_STD, strict=True))
IMAGE_SIZE = 11  # the generated "plain" CNN's input, NCHW 11x11x3


def per_channel_tensor(pixels: np.ndarray) -> np.ndarray:
    """The model input the spec defines for RGB uint8 images (N, H, W, 3): channels
    reordered to BGR, ``x[c] = pixel[c] * scale[c] + offset[c]`` in float32, NCHW."""
    x = pixels[..., ::-1].astype(np.float32)
    x *= np.asarray(PER_CHANNEL_SCALE, np.float32)
    x += np.asarray(PER_CHANNEL_OFFSET, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def per_channel_metadata() -> dict[str, str]:
    """The preprocessing keys of the per-channel model, as ``anan.*`` metadata values."""
    return {
        "layout": "NCHW",
        "height": str(IMAGE_SIZE),
        "width": str(IMAGE_SIZE),
        "channels": "3",
        "scale": ",".join(repr(s) for s in PER_CHANNEL_SCALE),
        "offset": ",".join(repr(o) for o in PER_CHANNEL_OFFSET),
        "channel_order": "BGR",
        "resize": "bilinear",
        "aspect": "stretch",
    }


def write_preprocess_sidecar(model_path: Path, metadata: dict[str, str]) -> Path:
    """``MODEL.anan.json`` beside the model with the sidecar's ``preprocess`` object in its
    per-channel form (lists of numbers), written here, not by anan_onnx.sidecar, so that the
    runtimes are checked against the documented format itself."""
    import json

    from anan_onnx.sidecar import FORMAT, sidecar_path

    def numbers(text: str) -> float | list[float]:
        values = [float(v) for v in text.split(",")]
        return values[0] if len(values) == 1 else values

    preprocess = {
        "layout": metadata["layout"],
        "height": int(metadata["height"]),
        "width": int(metadata["width"]),
        "channels": int(metadata["channels"]),
        "scale": numbers(metadata["scale"]),
        "offset": numbers(metadata["offset"]),
        **{k: metadata[k] for k in ("channel_order", "resize", "aspect") if k in metadata},
    }
    document = {
        "format": FORMAT,
        "model": model_path.name,
        "metadata": metadata,
        "params": None,
        "preprocess": preprocess,
        "classes": None,
        "inputs": [],
        "outputs": [],
    }
    path = sidecar_path(model_path)
    path.write_text(json.dumps(document, indent=2))
    return path


@dataclasses.dataclass
class ImageCase:
    """The per-channel ANAN model, image files, and what a runtime must output on them."""

    path: Path
    pixels: np.ndarray  # (N, H, W, 3) uint8 RGB, as stored in the files
    png: list[Path]
    ppm: list[Path]
    expected: np.ndarray  # the ANAN model on per_channel_tensor(pixels), onnxruntime Python
    reference: np.ndarray  # the literal per-image loop on the same tensor
    base: np.ndarray  # the base model on the same tensor


def make_image_case(folder: Path) -> ImageCase:
    """Converts the generated "plain" CNN, records per-channel BGR preprocessing in its
    metadata and sidecar, and writes BATCH random RGB images as PNG and PPM files."""
    from PIL import Image

    from anan_onnx.metadata import write_metadata

    base, _ = base_model("plain")
    params = AnanParams()
    conversion = convert_model(base, params)
    metadata = per_channel_metadata()
    write_metadata(conversion.anan, metadata)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plain.per_channel.anan.onnx"
    onnx.save(conversion.anan, path)
    write_preprocess_sidecar(path, metadata)
    # seed picked so that the astrocytes change every image's output
    pixels = np.random.default_rng(5).integers(0, 256, (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    png, ppm = [], []
    for i, image in enumerate(pixels):
        png.append(folder / f"image{i}.png")
        Image.fromarray(image, "RGB").save(png[-1])
        ppm.append(folder / f"image{i}.ppm")
        ppm[-1].write_bytes(b"P6\n%d %d\n255\n" % (IMAGE_SIZE, IMAGE_SIZE) + image.tobytes())
    x = per_channel_tensor(pixels)

    def run(model: onnx.ModelProto) -> np.ndarray:
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        out = session.run(None, {session.get_inputs()[0].name: x})[0]
        return np.asarray(out, np.float64).reshape(len(x), -1)

    reference = LiteralReference(conversion.base, conversion.target_layer, params).run(x)
    return ImageCase(
        path=path,
        pixels=pixels,
        png=png,
        ppm=ppm,
        expected=run(conversion.anan),
        reference=np.asarray(reference.outputs[0], np.float64).reshape(len(x), -1),
        base=run(conversion.base),
    )


def non_finite_model(path: Path, size: int, divide_by: float = 0.0) -> Path:
    """``image / divide_by`` averaged per channel, NCHW (N, 3, size, size) -> (N, 3).

    With the default 0 the output is never finite (NaN for 0 pixels, inf otherwise): every
    runtime must refuse to print or show it as a result.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Div", ["image", "d"], ["ratio"]),
         helper.make_node("ReduceMean", ["ratio"], ["out"], axes=[2, 3], keepdims=0)],
        "divide",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.array([divide_by], np.float32), "d")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path
