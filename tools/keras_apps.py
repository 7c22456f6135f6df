"""Every CNN constructor of ``keras.applications``, enumerated, and how to build one.

The constructors are read from the installed Keras (never a hand-written list), so a
constructor added by a new Keras joins the matrix by itself. Each is built with random
weights (``weights=None``, seeded), 10 classes and ``classifier_activation=None`` so the
astrocytes' change shows in the logits rather than being squashed by a softmax.

Building happens in a process of its own (``python tools/keras_apps.py NAME OUT.keras``) so
that the test session never holds forty Keras models: TensorFlow keeps memory it once used.

``CI_MEMBER`` names the member of each family that the default test run converts (the
cheapest one measured by tools/keras_apps_report.py; ``None``: the whole family is slow);
the others run under ``-m slow``.
A family missing from it fails ``test_every_family_has_a_ci_member``.
"""

from __future__ import annotations

import inspect
import os
import sys

SIZE = 224
CLASSES = 10
SEED = 0

#: The default-run member of each family (family = the constructor's module).
CI_MEMBER = {
    "convnext": "ConvNeXtTiny",
    "densenet": "DenseNet121",
    "efficientnet": "EfficientNetB0",
    "efficientnet_v2": "EfficientNetV2B0",
    "inception_resnet_v2": None,  # 12 GB to convert: InceptionV3 stands for the Inception family
    "inception_v3": "InceptionV3",
    "mobilenet": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3": "MobileNetV3Small",
    "nasnet": "NASNetMobile",
    "resnet": "ResNet50",
    "resnet_v2": "ResNet50V2",
    # VGG: 528 MB of weights; since the export holds few copies of them
    # (convert/tf_to_onnx.py) VGG16 converts in ~80 s at a 7.5 GB peak (22.8 GB before: the
    # family ran slow only); VGG19 is the same network, deeper
    "vgg16": "VGG16",
    "vgg19": None,
    "xception": "Xception",
}

#: Input sizes other than 224×224 (none so far: every constructor accepts 224 with
#: ``weights=None``); kept so that the report says which size each model ran at.
SIZES: dict[str, int] = {}


def constructors() -> dict[str, str]:
    """``{constructor name: family}`` for every model constructor in keras.applications."""
    import keras

    found = {}
    for name in dir(keras.applications):
        value = getattr(keras.applications, name)
        if name[:1].isupper() and inspect.isfunction(value):
            found[name] = value.__module__.rsplit(".", 1)[-1]
    return dict(sorted(found.items()))


def size(name: str) -> int:
    return SIZES.get(name, SIZE)


def build(name: str):
    """The model ``name`` with seeded random weights and raw logits."""
    import keras

    keras.utils.set_random_seed(SEED)
    constructor = getattr(keras.applications, name)
    side = size(name)
    kwargs = dict(weights=None, input_shape=(side, side, 3), classes=CLASSES)
    if "classifier_activation" in inspect.signature(constructor).parameters:
        kwargs["classifier_activation"] = None
    return constructor(**kwargs)


def main(argv: list[str]) -> int:
    """``keras_apps.py NAME OUT.keras``: builds NAME and saves it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    name, out = argv
    build(name).save(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
