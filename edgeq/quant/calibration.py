"""Calibration data and activation statistics from running the float graph on it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeq.errors import EdgeqError
from edgeq.ir import Graph
from edgeq.quant.executor import run_float_batch

SAMPLE_VALUES = 8192  # values kept per tensor and per sample for the threshold search


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def load_calibration(path: str | Path, graph: Graph, input_range: tuple[float, float] = (0.0, 1.0),
                     resize: str = "stretch") -> np.ndarray:
    """[N, *input_shape] float32 from a .npz (key x) or .npy in the model's input layout, or from a folder
    of images: resized to the input's size, pixels 0..255 mapped linearly onto input_range."""
    path = Path(path)
    if path.is_dir():
        return load_image_folder(path, graph, input_range, resize)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data:
                    raise EdgeqError(f"{path} has no array 'x' (it has {', '.join(data.files)}).")
                x = data["x"]
        else:
            x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EdgeqError(f"Cannot read calibration data {path}: {e}.") from None
    shape = graph.t(graph.inputs[0]).shape
    if x.ndim == 0 or len(x) == 0:
        raise EdgeqError(f"Calibration data {path} holds no samples; give [N, {', '.join(map(str, shape))}] "
                         "with N of a few dozen to a few hundred real inputs.")
    if not np.issubdtype(x.dtype, np.floating):
        hint = (" Integer data is usually raw pixels or samples: convert it to float32 in the scaling the model was "
                "trained on (for example x.astype(np.float32) / 255 for a model trained on 0..1, or "
                "x.astype(np.float32) if the model takes 0..255)." if np.issubdtype(x.dtype, np.integer) else "")
        raise EdgeqError(f"Calibration data {path} is {x.dtype}; a float model calibrates on float32 inputs in the "
                         f"model's input layout and scaling.{hint}")
    check_finite(x, f"Calibration data {path}")
    if tuple(x.shape[1:]) != shape:
        if shape and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
            x = x.reshape((x.shape[0], *shape))
        else:
            raise EdgeqError(f"Calibration data {path} has shape {tuple(x.shape)}; the model's input is {shape}, "
                             f"so it must be [N, {', '.join(map(str, shape))}].")
    if len(x) > 1 and np.all(x == x[:1]):
        raise EdgeqError(f"Calibration data {path}: all {len(x)} samples are the same (every value "
                         f"{float(x.reshape(-1)[0]):.4g} in the first); quantization ranges need varied real inputs. "
                         "Give a few dozen to a few hundred real samples.")
    return x.astype(np.float32)


def check_finite(x: np.ndarray, what: str) -> None:
    """Refuses NaN and infinite values, naming the first by sample and position."""
    bad = ~np.isfinite(x)
    if bad.any():
        k, *pos = (int(i) for i in np.argwhere(bad)[0])
        raise EdgeqError(f"{what} has {int(bad.sum())} NaN or infinite value(s), the first in sample {k} at "
                         f"position {tuple(pos)} ({x[(k, *pos)]}); they have no int8 value. Clean or drop those "
                         "samples and try again.")


def check_outcome(name: str, x: np.ndarray, reference: np.ndarray, outputs: np.ndarray | None = None,
                  output_step: float = 0.0) -> bool:
    """After quantizing on calibration data x: refuses a float model whose outputs on x are not finite (data far
    beyond its scaling), and returns whether the quantized outputs collapsed (one output for every sample
    while the float model's differ by more than two output steps) for the caller to refuse."""
    if not np.all(np.isfinite(reference)):
        k = int(np.argwhere(~np.isfinite(reference))[0][0])
        raise EdgeqError(f"The float model {name} gives NaN or infinite outputs on calibration sample {k} (inputs "
                         f"in [{float(x.min()):.4g}, {float(x.max()):.4g}]): the data is far outside the scaling "
                         "the model was trained on. Give calibration data in the model's own input scaling.")
    if outputs is None or len(x) < 2:
        return False
    # float outputs closer than a couple of int8 steps (an untrained model, near-constant data) may round alike
    return bool(np.ptp(outputs, axis=0).max() == 0 and np.ptp(reference, axis=0).max() > 2 * output_step)


def collapse_error(name: str, x: np.ndarray) -> EdgeqError:
    return EdgeqError(
        f"The quantized {name} gives the same output for all {len(x)} calibration samples while the float model's "
        f"differ: quantization lost the inputs. The calibration data spans [{float(x.min()):.4g}, "
        f"{float(x.max()):.4g}] (mean {float(x.mean()):.4g}); that is usually the wrong scaling (0..255 pixels for "
        "a model trained on 0..1, a constant, a wrong unit). Give calibration data in the model's own input "
        "scaling.")


@dataclass
class TensorStats:
    max_abs: float = 0.0
    min: float = np.inf
    max: float = -np.inf
    samples: list[np.ndarray] = field(default_factory=list)
    channel_sum: np.ndarray | None = None  # per last-axis channel, for bias correction
    channel_min: np.ndarray | None = None  # per last-axis channel, for high-bias absorption
    row_max_min: float = np.inf  # the smallest maximum along the last axis (a softmax's top logit)
    count: int = 0
    channel_max: np.ndarray | None = None
    sample_channels: list[np.ndarray] = field(default_factory=list)  # each sampled value's channel

    def add(self, v: np.ndarray, rng: np.random.Generator) -> None:
        per_channel = v.reshape(-1, v.shape[-1]) if v.ndim else v.reshape(1, 1)
        sums = per_channel.astype(np.float64).sum(axis=0)
        self.channel_sum = sums if self.channel_sum is None else self.channel_sum + sums
        self.row_max_min = min(self.row_max_min, float(per_channel.max(axis=1).min()))
        mins = per_channel.min(axis=0).astype(np.float64)
        self.channel_min = mins if self.channel_min is None else np.minimum(self.channel_min, mins)
        maxs = per_channel.max(axis=0).astype(np.float64)
        self.channel_max = maxs if self.channel_max is None else np.maximum(self.channel_max, maxs)
        self.count += per_channel.shape[0]
        flat = v.reshape(-1)
        self.max_abs = max(self.max_abs, float(np.abs(flat).max(initial=0.0)))
        self.min, self.max = min(self.min, float(flat.min())), max(self.max, float(flat.max()))
        idx = rng.choice(flat.size, SAMPLE_VALUES, replace=False) if flat.size > SAMPLE_VALUES else np.arange(flat.size)
        self.samples.append(flat[idx].astype(np.float32))
        self.sample_channels.append((idx % per_channel.shape[1]).astype(np.int32))

    def shifted(self, c: np.ndarray) -> "TensorStats":
        """The statistics of the values minus c per channel (c no larger than any channel's smallest value, as
        high-bias absorption moves), without running the model again."""
        c = np.asarray(c, np.float64)
        lo, hi = self.channel_min - c, self.channel_max - c
        return TensorStats(
            max_abs=float(max(np.abs(lo).max(), np.abs(hi).max())), min=float(lo.min()), max=float(hi.max()),
            samples=[(v - c[ch]).astype(np.float32) for v, ch in zip(self.samples, self.sample_channels)],
            channel_sum=self.channel_sum - c * self.count, channel_min=lo,
            row_max_min=self.row_max_min - float(c.max(initial=0.0)), count=self.count, channel_max=hi,
            sample_channels=list(self.sample_channels))

    @property
    def channel_mean(self) -> np.ndarray:
        return self.channel_sum / max(self.count, 1)

    @property
    def values(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.zeros(1, np.float32)


def collect_stats(graph: Graph, x: np.ndarray, progress=None, keep_outputs: bool = False):
    """Statistics of every float activation over the calibration samples (run in batches, added sample by
    sample, so the sampled values do not depend on the batching); with keep_outputs also the graph's first
    output for every sample, [N, *shape[1:]]."""
    rng = np.random.default_rng(0)
    stats: dict[str, TensorStats] = {}
    outputs: list[np.ndarray] = []

    def add(start: int, values: dict[str, np.ndarray]) -> None:
        n = len(next(iter(values.values())))
        for k in range(n):
            for name, v in values.items():
                stats.setdefault(name, TensorStats()).add(v[k:k + 1], rng)
            if progress:
                progress(start + k + 1, len(x))
        outputs.append(values[graph.outputs[0]])

    run_float_batch(graph, x, keep_all=True, each=add)
    return (stats, np.concatenate(outputs)) if keep_outputs else stats


def _image_layout(shape: tuple[int, ...]) -> tuple[str, int, int, int]:
    """(layout, height, width, channels) of a 4-D image input, NHWC or NCHW."""
    if len(shape) == 4 and shape[-1] in (1, 3):
        return "nhwc", shape[1], shape[2], shape[3]
    if len(shape) == 4 and shape[1] in (1, 3):
        return "nchw", shape[2], shape[3], shape[1]
    raise EdgeqError(f"The model's input has shape {shape}, not an image of 1 or 3 channels (NHWC or NCHW); "
                     "give calibration data as .npz/.npy instead of an image folder.")


def load_image_folder(folder: Path, graph: Graph, input_range: tuple[float, float], resize: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    shape = graph.t(graph.inputs[0]).shape
    layout, h, w, c = _image_layout(shape)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EdgeqError(f"Calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    lo, hi = input_range
    samples = []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L" if c == 1 else "RGB")
                if resize == "center-crop":  # keep the aspect ratio: crop the middle square-ish region first
                    side_w, side_h = (im.width, im.width * h // w) if im.width * h <= im.height * w \
                        else (im.height * w // h, im.height)
                    left, top = (im.width - side_w) // 2, (im.height - side_h) // 2
                    im = im.crop((left, top, left + side_w, top + side_h))
                a = np.asarray(im.resize((w, h), Image.BILINEAR), np.float32).reshape(h, w, c)
        except (OSError, UnidentifiedImageError) as e:
            raise EdgeqError(f"Cannot read calibration image {f}: {e}. Remove it from {folder} or fix it.") from None
        a = lo + a * ((hi - lo) / 255.0)
        samples.append(a[None] if layout == "nhwc" else a.transpose(2, 0, 1)[None])
    return np.stack(samples).reshape((len(samples), *shape)).astype(np.float32)
