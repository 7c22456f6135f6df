"""Train the ANAN paper's base CNN (Section 3.2, Figure 2) with the paper's protocol.

The network is a stack of Conv2D(ReLU) + MaxPool blocks, a Flatten, a ReLU dense layer and a
sigmoid output (softmax with N units for N > 2 classes). The paper uses 3x3 filters at 128x128
for Cats&Dogs and at 224x224 for Fire, and 5x5 filters with one more block for the fundus sets;
all of this is configurable (``--size``, ``--kernel``, ``--blocks``, ``--filters``, ``--dense``).

Protocol: stratified, seeded k-fold cross-validation (``--folds``, default 10), Adam, batch 64,
up to 100 epochs, stopping when the training loss has not improved by 0.01 for 30 epochs.
``--folds 1`` trains one model on all training images with a stratified ``--val-split`` holdout.

Input pipeline: images are read with Pillow, converted to RGB, resized (bilinear) to
``--size`` x ``--size`` and scaled by 1/255 *outside* the model, so every saved model takes
NHWC float32 in [0, 1]. Each fold model is written as ``fold{i}.keras`` (i = 1..k, no optimizer
state) into ``--out``, with ``training.json`` (config, splits, per-fold metrics) and, when the
core package provides ``anan_onnx.keras_to_onnx``, ``fold{i}.onnx``.

Example (the bundled demo model, see models/MODEL_CARD.md)::

    python research/train_base_cnn.py --dataset cats_dogs --size 128 --filters 16,32,64 \\
        --dense 64 --dropout 0.5 --augment --folds 1 --epochs 80 --out out/catsdogs \\
        --model-out models/catsdogs_cnn.keras
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import keras

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "data"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
ONNX_SCALE = 1.0 / 255.0


@dataclass
class DataSplit:
    """Training and test images as paths plus integer labels (class = sorted folder index)."""

    root: Path
    classes: list[str]
    train_files: list[Path]
    train_labels: np.ndarray
    test_files: list[Path] = field(default_factory=list)
    test_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    split: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        prog="train_base_cnn.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Paper settings: Cats&Dogs --size 128; Fire --dataset fire --size 224; "
        "fundus sets --size 224 --kernel 5 --blocks 4.",
    )
    src = p.add_argument_group("data")
    src.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data root")
    src.add_argument("--dataset", choices=["cats_dogs", "fire"], default="cats_dogs")
    src.add_argument(
        "--folder",
        type=Path,
        help="class-per-subfolder image folder "
        "(or one with train/ and test/ inside); overrides --dataset",
    )
    src.add_argument(
        "--test-split",
        type=float,
        default=0.2,
        help="test fraction when the data has no given test set (0: none)",
    )
    arch = p.add_argument_group("architecture")
    arch.add_argument("--size", type=int, default=128, help="input height = width")
    arch.add_argument("--kernel", type=int, default=3, help="conv filter size")
    arch.add_argument("--filters", default="32,64,128", help="filters per conv block")
    arch.add_argument(
        "--blocks",
        type=int,
        help="conv blocks (default: len(--filters); extra blocks double the last filter count)",
    )
    arch.add_argument("--dense", type=int, default=128, help="units of the hidden dense layer")
    arch.add_argument("--dropout", type=float, default=0.0, help="dropout before the output")
    arch.add_argument("--padding", choices=["valid", "same"], default="valid")
    tr = p.add_argument_group("training")
    tr.add_argument("--folds", type=int, default=10, help="k of k-fold CV; 1 = single model")
    tr.add_argument("--val-split", type=float, default=0.15, help="holdout for --folds 1")
    tr.add_argument("--epochs", type=int, default=100)
    tr.add_argument("--patience", type=int, default=30)
    tr.add_argument("--min-delta", type=float, default=0.01)
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    tr.add_argument(
        "--augment",
        action="store_true",
        help="random horizontal flips and small shifts of the training images",
    )
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0: default)")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "base_cnn")
    out.add_argument(
        "--model-out",
        type=Path,
        help="with --folds 1: also copy the model here "
        "(and training.json as <name>.training.json beside it)",
    )
    out.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    out.add_argument("--opset", type=int, default=17)
    out.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2], help="Keras fit")
    args = p.parse_args(argv)
    validate_args(p, args)
    return args


def validate_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject inconsistent options early, before TensorFlow is imported."""
    if args.folds < 1:
        p.error("--folds must be >= 1")
    if args.folds == 1 and not 0.0 < args.val_split < 1.0:
        p.error("--val-split must be in (0, 1)")
    if not 0.0 <= args.test_split < 1.0:
        p.error("--test-split must be in [0, 1)")
    if args.model_out is not None and args.folds != 1:
        p.error("--model-out needs --folds 1")
    try:
        args.filter_list = parse_filters(args.filters, args.blocks)
    except ValueError as exc:
        p.error(str(exc))


def parse_filters(text: str, blocks: int | None) -> list[int]:
    """'32,64,128' -> [32, 64, 128]; ``blocks`` truncates or extends by doubling."""
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise ValueError(f"--filters needs positive integers, got {text!r}")
    n = len(values) if blocks is None else blocks
    if n < 1:
        raise ValueError("--blocks must be >= 1")
    while len(values) < n:
        values.append(values[-1] * 2)
    return values[:n]


# --------------------------------------------------------------------------- data


def class_folder(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Images of a folder with one subfolder per class (classes sorted by name)."""
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    for idx, name in enumerate(classes):
        found = sorted(f for f in (folder / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [idx] * len(found)
    if len(classes) < 2 or not files:
        raise SystemExit(f"error: {folder} needs >= 2 class subfolders with images")
    return files, np.asarray(labels, dtype=np.int64), classes


def given_split(root: Path, train_dir: Path, test_dir: Path) -> DataSplit:
    """A data set that comes with its own train/ and test/ folders."""
    x_tr, y_tr, classes = class_folder(train_dir)
    x_te, y_te, test_classes = class_folder(test_dir)
    if test_classes != classes:
        raise SystemExit(f"error: class folders differ: {classes} vs {test_classes}")
    # relative to the data root, which training.json records relative to itself
    split = {
        "method": "given",
        "train_dir": os.path.relpath(train_dir, root),
        "test_dir": os.path.relpath(test_dir, root),
    }
    return DataSplit(root, classes, x_tr, y_tr, x_te, y_te, split)


def seeded_split(root: Path, folder: Path, test_split: float, seed: int) -> DataSplit:
    """A class folder without a test set: deterministic stratified seeded train/test split."""
    from sklearn.model_selection import train_test_split

    files, labels, classes = class_folder(folder)
    split: dict[str, Any] = {
        "method": "stratified_seeded",
        "folder": str(folder),
        "test_fraction": test_split,
        "seed": seed,
    }
    if test_split == 0.0:
        split["method"] = "none"
        return DataSplit(root, classes, files, labels, split=split)
    idx_tr, idx_te = train_test_split(
        np.arange(len(files)), test_size=test_split, stratify=labels, random_state=seed
    )
    idx_tr, idx_te = np.sort(idx_tr), np.sort(idx_te)
    return DataSplit(
        root,
        classes,
        [files[i] for i in idx_tr],
        labels[idx_tr],
        [files[i] for i in idx_te],
        labels[idx_te],
        split,
    )


def resolve_data(args: argparse.Namespace) -> DataSplit:
    """Pick the images for --folder or --dataset."""
    if args.folder is not None:
        folder = args.folder.resolve()
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            return given_split(folder, folder / "train", folder / "test")
        return seeded_split(folder, folder, args.test_split, args.seed)
    root = (args.data / args.dataset).resolve()
    if not root.is_dir():
        raise SystemExit(f"error: data folder {root} not found (use --data or --folder)")
    if args.dataset == "cats_dogs":
        return given_split(root, root / "train", root / "test")
    return seeded_split(root, root, args.test_split, args.seed)


def load_image(path: Path, size: int) -> np.ndarray:
    """One image as uint8 HxWx3: Pillow, RGB, bilinear resize to size x size."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


def load_images(paths: list[Path], size: int, desc: str) -> np.ndarray:
    """Images as NHWC float32 scaled by 1/255 (the scaling is not part of the model)."""
    from tqdm import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.float32)
    for i, path in enumerate(tqdm(paths, desc=desc, unit="img", leave=False)):
        out[i] = load_image(path, size)
    out *= np.float32(1.0 / 255.0)
    return out


# --------------------------------------------------------------------------- model


def build_model(args: argparse.Namespace, n_classes: int) -> keras.Sequential:
    """The base CNN: [Conv2D(ReLU) -> MaxPool] x blocks -> Flatten -> Dense(ReLU) -> output."""
    import keras
    from keras import layers

    model = keras.Sequential(name="anan_base_cnn")
    model.add(keras.Input(shape=(args.size, args.size, 3), name="image"))
    for i, filters in enumerate(args.filter_list, start=1):
        model.add(
            layers.Conv2D(
                filters,
                args.kernel,
                padding=args.padding,
                activation="relu",
                data_format="channels_last",
                name=f"conv{i}",
            )
        )
        model.add(layers.MaxPooling2D(2, name=f"pool{i}"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(args.dense, activation="relu", name="dense"))
    if args.dropout > 0:
        model.add(layers.Dropout(args.dropout, name="dropout"))
    if n_classes == 2:
        model.add(layers.Dense(1, activation="sigmoid", name="output"))
    else:
        model.add(layers.Dense(n_classes, activation="softmax", name="output"))
    return model


def compile_model(model: keras.Model, n_classes: int, lr: float) -> None:
    """Adam with binary (sigmoid) or sparse categorical (softmax) cross-entropy."""
    import keras

    loss = "binary_crossentropy" if n_classes == 2 else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])


def save_without_optimizer(model: keras.Model, path: Path) -> None:
    """Save architecture + weights only.

    Keras 3 ignores ``include_optimizer=False`` for ``.keras`` files (it still stores the
    compile config and the Adam slots), so an uncompiled copy of the model is saved instead.
    """
    clean = model.__class__.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    path.parent.mkdir(parents=True, exist_ok=True)
    clean.save(path)


# --------------------------------------------------------------------------- training


def fold_splits(labels: np.ndarray, args: argparse.Namespace) -> list[tuple[np.ndarray, ...]]:
    """(train, val) index pairs: stratified seeded k-fold, or one stratified holdout."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    idx = np.arange(len(labels))
    if args.folds == 1:
        tr, va = train_test_split(
            idx, test_size=args.val_split, stratify=labels, random_state=args.seed
        )
        return [(np.sort(tr), np.sort(va))]
    skf = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    return list(skf.split(idx, labels))


def augmented_batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int, shift: int = 0):
    """Endless shuffled batches with random horizontal flips and shifts (wrap-around)."""
    rng = np.random.default_rng(seed)
    shift = shift or max(1, x.shape[1] // 10)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            sel = order[start : start + batch]
            xb = x[sel].copy()
            flip = rng.random(len(sel)) < 0.5
            xb[flip] = xb[flip, :, ::-1]
            for i, (dy, dx) in enumerate(rng.integers(-shift, shift + 1, size=(len(sel), 2))):
                xb[i] = np.roll(xb[i], (dy, dx), axis=(0, 1))
            yield xb, y[sel]


def fit_model(
    model: keras.Model, data: tuple[np.ndarray, ...], args: argparse.Namespace, seed: int
) -> dict[str, list[float]]:
    """Fit with the paper's stopping rule; returns the Keras history."""
    import keras

    x_tr, y_tr, x_va, y_va = data
    stop = keras.callbacks.EarlyStopping(
        monitor="loss", min_delta=args.min_delta, patience=args.patience
    )
    kwargs: dict[str, Any] = {
        "epochs": args.epochs,
        "validation_data": (x_va, y_va),
        "callbacks": [stop],
        "verbose": args.verbose,
    }
    if args.augment:
        steps = -(-len(x_tr) // args.batch_size)
        gen = augmented_batches(x_tr, y_tr, args.batch_size, seed)
        hist = model.fit(gen, steps_per_epoch=steps, shuffle=False, **kwargs)
    else:
        hist = model.fit(x_tr, y_tr, batch_size=args.batch_size, shuffle=True, **kwargs)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, float]:
    """Loss, accuracy and F1 (binary: of class 1; multi-class: macro) on (x, y)."""
    from sklearn.metrics import f1_score

    loss, _ = model.evaluate(x, y, batch_size=64, verbose=0)
    prob = model.predict(x, batch_size=64, verbose=0)
    pred = (prob[:, 0] > 0.5).astype(np.int64) if n_classes == 2 else prob.argmax(axis=1)
    avg = "binary" if n_classes == 2 else "macro"
    return {
        "loss": float(loss),
        "accuracy": float(np.mean(pred == y)),
        "f1": float(f1_score(y, pred, average=avg)),
    }


def find_keras_to_onnx() -> Callable[..., Any] | None:
    """``anan_onnx.keras_to_onnx`` from the installed package or this checkout, if it exists."""
    if str(REPO_ROOT) not in sys.path and importlib.util.find_spec("anan_onnx") is None:
        sys.path.append(str(REPO_ROOT))
    try:
        import anan_onnx
    except ImportError:
        return None
    return getattr(anan_onnx, "keras_to_onnx", None)


def export_onnx(keras_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Convert one fold model with ``anan_onnx.keras_to_onnx`` if the core package has it."""
    if args.no_onnx:
        return {"status": "skipped"}
    keras_to_onnx = find_keras_to_onnx()
    if keras_to_onnx is None:
        print("note: anan_onnx.keras_to_onnx is not available yet; ONNX export skipped")
        return {"status": "unavailable"}
    dst = keras_path.with_suffix(".onnx")
    try:
        keras_to_onnx(str(keras_path), str(dst), opset=args.opset, scale=ONNX_SCALE)
    except Exception as exc:  # keep the trained models, report the failure
        print(f"warning: ONNX export of {keras_path.name} failed: {exc!r}")
        return {"status": "failed", "error": repr(exc)}
    return {"status": "ok", "path": dst.name, "opset": args.opset, "scale": ONNX_SCALE}


def train_fold(
    i: int,
    split: tuple[np.ndarray, ...],
    arrays: dict[str, np.ndarray],
    args: argparse.Namespace,
    n_classes: int,
) -> dict[str, Any]:
    """Train, save, evaluate and export fold ``i`` (1-based)."""
    import keras

    tr, va = split
    seed = args.seed + i - 1
    keras.utils.set_random_seed(seed)
    model = build_model(args, n_classes)
    compile_model(model, n_classes, args.lr)
    x, y = arrays["x_train"], arrays["y_train"]
    t0 = time.perf_counter()
    history = fit_model(model, (x[tr], y[tr], x[va], y[va]), args, seed)
    seconds = time.perf_counter() - t0
    path = args.out / f"fold{i}.keras"
    save_without_optimizer(model, path)
    result: dict[str, Any] = {
        "fold": i,
        "seed": seed,
        "model": path.name,
        "val_indices": va.tolist(),
        "epochs_run": len(history["loss"]),
        "train_seconds": round(seconds, 2),
        "val": evaluate(model, x[va], y[va], n_classes),
        "history": history,
    }
    if len(arrays["y_test"]):
        result["test"] = evaluate(model, arrays["x_test"], arrays["y_test"], n_classes)
    result["onnx"] = export_onnx(path, args)
    return result


# --------------------------------------------------------------------------- report


def rel(paths: list[Path], root: Path) -> list[str]:
    """Paths relative to the data root (POSIX form) for a portable record."""
    return [p.relative_to(root).as_posix() for p in paths]


def summary(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation of each val/test metric over the folds."""
    out: dict[str, Any] = {}
    for part in ("val", "test"):
        for metric in ("accuracy", "loss", "f1"):
            vals = [f[part][metric] for f in folds if part in f]
            if vals:
                out[f"{part}_{metric}"] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
    return out


def environment() -> dict[str, Any]:
    """Software and machine the run used."""
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "backend": keras.backend.backend(),
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The run's options as JSON-friendly values."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def record(
    args: argparse.Namespace, data: DataSplit, folds: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    """The content of training.json."""
    return {
        "config": config_of(args),
        "classes": data.classes,
        "data_root": str(data.root),
        "input": {
            "shape": [None, args.size, args.size, 3],
            "layout": "NHWC",
            "dtype": "float32",
            "range": [0.0, 1.0],
            "scale": ONNX_SCALE,
            "resize": "bilinear",
            "color": "RGB",
        },
        "split": {
            **data.split,
            "cv": "single_holdout" if args.folds == 1 else "stratified_kfold",
            "folds": args.folds,
            "seed": args.seed,
            "val_split": args.val_split if args.folds == 1 else None,
        },
        "train_files": rel(data.train_files, data.root),
        "train_labels": data.train_labels.tolist(),
        "test_files": rel(data.test_files, data.root),
        "test_labels": data.test_labels.tolist(),
        "folds": folds,
        "summary": summary(folds),
        "total_seconds": round(seconds, 2),
        "environment": environment(),
    }


def write_record(info: dict[str, Any], root: Path, path: Path) -> None:
    """Writes training.json with the data root relative to ``path`` (a checkout can move)."""
    from anan_onnx.training_record import relative_root

    path.write_text(json.dumps({**info, "data_root": relative_root(root, path)}, indent=1))


def setup_tensorflow(args: argparse.Namespace) -> None:
    """Thread count and deterministic ops (TensorFlow backend only)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if args.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.config.experimental.enable_op_determinism()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    setup_tensorflow(args)
    data = resolve_data(args)
    n_classes = len(data.classes)
    print(f"classes {data.classes}: {len(data.train_files)} train, {len(data.test_files)} test")
    arrays = {
        "x_train": load_images(data.train_files, args.size, "train images"),
        "y_train": data.train_labels,
        "x_test": load_images(data.test_files, args.size, "test images"),
        "y_test": data.test_labels,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    folds: list[dict[str, Any]] = []
    for i, split in enumerate(fold_splits(data.train_labels, args), start=1):
        print(f"--- fold {i}/{args.folds}: {len(split[0])} train, {len(split[1])} val")
        folds.append(train_fold(i, split, arrays, args, n_classes))
        print(
            f"fold {i}: {folds[-1]['epochs_run']} epochs, val {folds[-1]['val']}"
            + (f", test {folds[-1]['test']}" if "test" in folds[-1] else "")
        )
    info = record(args, data, folds, time.perf_counter() - t0)
    write_record(info, data.root, args.out / "training.json")
    if args.model_out is not None:
        args.model_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out / "fold1.keras", args.model_out)
        write_record(
            info, data.root, args.model_out.with_name(args.model_out.stem + ".training.json")
        )
    print(
        f"wrote {len(folds)} model(s) and training.json to {args.out}; "
        f"summary {json.dumps(info['summary'])}"
    )
    return 1 if any(f["onnx"]["status"] == "failed" for f in folds) else 0


if __name__ == "__main__":
    sys.exit(main())
