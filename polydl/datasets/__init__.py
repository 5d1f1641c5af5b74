"""Datasets: the bundled 8×8 digits, seeded synthetic sets, published image sets (MNIST,
Fashion-MNIST, CIFAR-10: downloaded once, see :mod:`polydl.datasets.download`), and loaders by name.

``load(name, seed=0, **params)`` returns a :class:`Dataset` with train / validation / test splits
as NumPy arrays (features float32, labels int64). Loaders are registered through the
``polydl_register_datasets`` hook, like every other plugin kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from .. import memory
from ..checks import check_number, check_whole, shown
from ..hookspecs import hookimpl
from ..registry import RegistrationError, Registry
from . import images
from .download import DatasetFileError
from .shapes import as_images, input_shape_of

__all__ = ["Dataset", "digits", "moons", "spirals", "blobs", "load", "names", "registry", "split",
           "split_indices", "check_labels", "mnist", "fashion_mnist", "cifar10", "as_images", "DatasetFileError"]


@dataclass
class Dataset:
    """Features ``X_*`` (float32, shape (m, n)) and integer labels ``y_*`` for three splits.

    ``input_shape``: the shape of one sample, e.g. (1, 8, 8) for images kept flat as 64
    features (:func:`as_images` views the rows as images); by default X's own, (n,)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple | None = field(default=None, kw_only=True)

    def __post_init__(self):
        self.input_shape = input_shape_of(self.X_train, self.input_shape, f"dataset {self.name}")

    @property
    def num_features(self) -> int:
        return int(math.prod(self.X_train.shape[1:]))

    def sizes(self) -> dict:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def split_indices(m: int, seed=0, val_fraction=0.1, test_fraction=0.2):
    """(train, val, test) index arrays of a seeded permutation of ``range(m)``: the first
    round(m·test_fraction) indices are the test split, the next round(m·val_fraction) validation."""
    check_number("val_fraction", val_fraction, 0, 1, high_open=True)
    check_number("test_fraction", test_fraction, 0, 1, high_open=True)
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must leave some training data (< 1), not "
                         f"{val_fraction} + {test_fraction}")
    perm = np.random.default_rng(seed).permutation(m)
    n_test = int(round(m * test_fraction))
    n_val = int(round(m * val_fraction))
    return perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test]


_INT64_MAX = np.iinfo(np.int64).max


def check_labels(y, what: str = "labels", error=ValueError, names: bool = False) -> np.ndarray:
    """Class labels as an int64 array (m,): integers, booleans or whole floats, one per sample
    (shape (m,) or (m, 1)); with ``names``, class names (strings) pass as they are. Anything else
    raises ``error`` naming the problem: a single value or a table (not one label per sample),
    fractions, numbers no class index can be, other types."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        got = f"a single value {shown(y)}" if y.ndim == 0 else f"an array of shape {y.shape}"
        raise error(f"{what}: labels must be a 1-D array of class numbers or names, one per sample "
                    f"(shape (m,)), not {got}")
    kind = y.dtype.kind
    if names and kind in "US":
        return y
    if kind == "b":
        return y.astype(np.int64)
    if kind not in "iuf":
        raise error(f"{what}: labels must be integer class numbers 0, 1, 2, ..., not {y.dtype}")
    if kind == "f":
        finite = np.isfinite(y)
        whole = finite & (y == np.round(np.where(finite, y, 0)))
        if not whole.all():
            i = int(np.flatnonzero(~whole)[0])
            raise error(f"{what}: labels must be integers (class numbers 0, 1, 2, ...), found {shown(y[i])} "
                        f"(sample {i + 1}); number the classes, or round the labels if they are classes")
    if kind == "u":
        over = y > np.uint64(_INT64_MAX)
    elif kind == "f":
        over = np.abs(y) >= 2.0 ** 63
    else:
        over = None
    if over is not None and over.any():
        i = int(np.flatnonzero(over)[0])
        value = int(y[i]) if kind == "u" else shown(y[i])
        raise error(f"{what}: the label value {value} (sample {i + 1}) is not a class index: labels are class "
                    "numbers 0, 1, 2, ..., one per class")
    return y.astype(np.int64)


def split(X, y, seed=0, val_fraction=0.1, test_fraction=0.2, name="data", num_classes=None,
          input_shape=None) -> Dataset:
    """A seeded random split of (X, y) into train / validation / test (see :func:`split_indices`);
    ``y`` is checked with :func:`check_labels` (a ``ValueError`` names the problem)."""
    y = check_labels(y, f"dataset {name}")
    X = np.asarray(X, dtype=np.float32)
    if len(X) != len(y):
        raise ValueError(f"dataset {name}: X has {len(X)} samples but y has {len(y)}; they must have the same length")
    train, val, test = split_indices(len(y), seed, val_fraction, test_fraction)
    k = int(num_classes if num_classes is not None else (y.max() + 1 if len(y) else 0))
    return Dataset(name, X[train], y[train], X[val], y[val], X[test], y[test], k, input_shape=input_shape)


def _size(name, value, low):
    return check_whole(f"dataset parameter {name}", value, low)


def _scale(name, value):
    return check_number(f"dataset parameter {name}", value, 0)


def _check_memory(dataset, rows, features, params="n_samples"):
    """Refuse ``rows`` × ``features`` float64 values that this machine cannot hold, before drawing them."""
    memory.check_bytes(f"dataset {dataset}: {rows:,} × {features:,} float64 values", rows * features * 8,
                       f"use a smaller {params}")


def digits(seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Dataset:
    """The 8×8 handwritten digits (UCI optdigits, as distributed with scikit-learn; CC BY 4.0):
    1,797 images, 64 pixel features scaled to [0, 1] (row by row: input_shape (1, 8, 8)), 10 classes;
    a fixed seeded split."""
    with resources.files(__package__).joinpath("data/digits.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as z:
            X, y = z["X"].astype(np.float32) / 16.0, z["y"].astype(np.int64)
    return split(X, y, seed, val_fraction, test_fraction, name="digits", num_classes=10, input_shape=(1, 8, 8))


def moons(n_samples: int = 1000, noise: float = 0.2, seed: int = 0, val_fraction=0.1, test_fraction=0.2) -> Dataset:
    """Two interleaving half circles (2 features, 2 classes), with Gaussian noise of std ``noise``."""
    n_samples, noise = _size("n_samples", n_samples, 2), _scale("noise", noise)
    _check_memory("moons", n_samples, 2)
    rng = np.random.default_rng(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = rng.uniform(0, np.pi, n_out)
    t_in = rng.uniform(0, np.pi, n_in)
    X = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)])
    X += rng.normal(0, noise, X.shape)
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)]).astype(np.int64)
    return split(X, y, seed, val_fraction, test_fraction, name="moons", num_classes=2)


def spirals(n_samples: int = 1500, classes: int = 3, noise: float = 0.2, seed: int = 0,
            val_fraction=0.1, test_fraction=0.2) -> Dataset:
    """Interleaved spiral arms, one per class c (2 features): x = (r sin θ, r cos θ) with r from 0.05
    to 1 and θ from 2πc/classes to 2πc/classes + 4 along the arm, plus noise N(0, ``noise``²) on θ."""
    classes = _size("classes", classes, 2)
    n_samples, noise = _size("n_samples", n_samples, classes), _scale("noise", noise)
    _check_memory("spirals", n_samples, 2)
    rng = np.random.default_rng(seed)
    per = n_samples // classes
    Xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, per)
        t = np.linspace(c * 2 * np.pi / classes, c * 2 * np.pi / classes + 4.0, per) + rng.normal(0, noise, per)
        Xs.append(np.stack([r * np.sin(t), r * np.cos(t)], 1))
        ys.append(np.full(per, c))
    return split(np.concatenate(Xs), np.concatenate(ys), seed, val_fraction, test_fraction, name="spirals",
                 num_classes=classes)


def blobs(n_samples: int = 1000, centers: int = 4, features: int = 2, spread: float = 1.0, seed: int = 0,
          val_fraction=0.1, test_fraction=0.2) -> Dataset:
    """Gaussian clusters (std ``spread``) around ``centers`` uniform random centres in [−8, 8]^features,
    one class each."""
    centers, features = _size("centers", centers, 1), _size("features", features, 1)
    n_samples, spread = _size("n_samples", n_samples, 1), _scale("spread", spread)
    _check_memory("blobs", n_samples, features, "n_samples or features")
    _check_memory("blobs", centers, features, "centers or features")
    rng = np.random.default_rng(seed)
    C = rng.uniform(-8, 8, (centers, features))
    y = rng.integers(0, centers, n_samples)
    X = C[y] + rng.normal(0, spread, (n_samples, features))
    return split(X, y, seed, val_fraction, test_fraction, name="blobs", num_classes=centers)


def _image_dataset(name, seed, val_fraction, path, mirror) -> Dataset:
    """The official training and test images of ``name`` (see :mod:`polydl.datasets.images`) as
    float32 in [0, 1], flat rows; the validation split a seeded ``val_fraction`` of the training images."""
    a = images.load(name, path, mirror)
    train, val, _ = split_indices(len(a.y_train), seed, val_fraction, 0)

    def scaled(X):
        return X.astype(np.float32) / np.float32(255)

    return Dataset(name, scaled(a.X_train[train]), a.y_train[train], scaled(a.X_train[val]), a.y_train[val],
                   scaled(a.X_test), a.y_test, a.num_classes, input_shape=a.input_shape)


def mnist(seed: int = 0, val_fraction: float = 0.1, path=None, mirror=None) -> Dataset:
    """MNIST handwritten digits (LeCun, Cortes & Burges): 60,000 training and 10,000 test images,
    input_shape (1, 28, 28), 10 classes; downloaded once (``mirror``: a URL to fetch them from), or
    read from the folder ``path`` that has the four IDX files."""
    return _image_dataset("mnist", seed, val_fraction, path, mirror)


def fashion_mnist(seed: int = 0, val_fraction: float = 0.1, path=None, mirror=None) -> Dataset:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf; Zalando, MIT licence): 28×28 grey images of 10 kinds of
    clothing in MNIST's format and sizes; ``path`` and ``mirror`` as for :func:`mnist`."""
    return _image_dataset("fashion_mnist", seed, val_fraction, path, mirror)


def cifar10(seed: int = 0, val_fraction: float = 0.1, path=None, mirror=None) -> Dataset:
    """CIFAR-10 (Krizhevsky, 2009): 50,000 training and 10,000 test colour images, input_shape
    (3, 32, 32), 10 classes, from its binary version; ``path`` and ``mirror`` as for :func:`mnist`."""
    return _image_dataset("cifar10", seed, val_fraction, path, mirror)


def _validate(name, loader):
    if not callable(loader):
        raise RegistrationError(f"dataset '{name}' must be a callable loader(seed=0, **params) -> Dataset")


registry = Registry("datasets", _validate, singular="dataset")


def load(name: str, seed: int = 0, **params) -> Dataset:
    """The dataset ``name`` (``digits``, ``moons``, ``spirals``, ``blobs``, ``mnist``,
    ``fashion_mnist``, ``cifar10`` or a plugin's)."""
    ds = registry.build(name, seed=seed, **params)
    if not isinstance(ds, Dataset):
        raise TypeError(f"dataset loader '{name}' returned {type(ds).__name__}, not polydl.datasets.Dataset")
    return ds


def names():
    return registry.names()


@hookimpl
def polydl_register_datasets(register):
    for fn in (digits, moons, spirals, blobs, mnist, fashion_mnist, cifar10):
        register(fn.__name__, fn)
