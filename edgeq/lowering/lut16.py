"""16x8 LOGISTIC, TANH and SOFTMAX: TFLite's int16 arithmetic, interpolated tables instead of gemmlowp.

LOGISTIC and TANH rescale the input to 1/(3 * 4096) (a 15-bit multiplier and a right shift, from the
input scale alone) and interpolate TFLite's 256-entry sigmoid table. SOFTMAX looks up exp and 1/(1 + x) in
two 513-entry tables built in float32 by TFLite's gen_lut. C twins: runtime_c/ref/eq_logistic_s16.c,
eq_tanh_s16.c, eq_softmax_s16.c.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from edgeq.lowering.fixedpoint import multiply_by_quantized_multiplier

# sigmoid(i / 24) in unsigned 0.16 (tflite/kernels/internal/common.h, Apache-2.0; CMSIS-NN holds the same
# table). Not a plain rounding of sigmoid: 44 entries sit one above it, so the table is data, not a formula.
SIGMOID_TABLE = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
], dtype=np.uint16)

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1


def checked_log2(scale: float) -> tuple[bool, int]:
    """tflite::CheckedLog2 in float32: (whether scale is a power of two within 1e-3 in log2, rounded log2)."""
    x_log2 = np.float32(np.log(np.float32(scale)) * (np.float32(1.0) / np.log(np.float32(2.0))))
    rounded = np.float32(math.floor(abs(float(x_log2)) + 0.5) * (1 if x_log2 >= 0 else -1))
    return bool(abs(x_log2 - rounded) < np.float32(1e-3)), int(rounded)


def sigmoid_tanh_rescale(scale: float, pot_shifts: tuple[int, ...]) -> tuple[int, int] | None:
    """TFLM's int16 Logistic/Tanh Prepare: the (multiplier, right shift) taking the input to 1/(3 * 4096).
    A power-of-two scale whose shift is in pot_shifts multiplies by 3 << shift with no shift, as TFLite's
    kernel turns its multiplier 0. None when the multiplier would not fit 15 bits (TFLite only asserts)."""
    pot, log2 = checked_log2(scale)
    shift = 12 + log2
    if pot and shift in pot_shifts:
        return 3 << shift, 0
    multiplier, shift = float(np.float32(scale)) * 4096.0 * 3.0, 0
    while multiplier <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        multiplier *= 2.0
    return (int(multiplier), shift) if int(multiplier) <= INT16_MAX else None


def sigmoid_tanh_s16(x: np.ndarray, multiplier: int, shift: int, tanh: bool) -> np.ndarray:
    """reference_integer_ops::Logistic / Tanh on int16: output in 1/32768, zero point 0."""
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    v = (x.astype(np.int64) * multiplier + rnd) >> shift
    a = np.abs(v)
    frac_bits = 8 if tanh else 9  # tanh(x) = 2 sigmoid(2x) - 1: twice the input step
    uh = a >> frac_bits
    table = SIGMOID_TABLE.astype(np.int64)
    lo, hi = table[np.minimum(uh, 254)], table[np.minimum(uh + 1, 255)]
    interp = (lo << frac_bits) + (a & ((1 << frac_bits) - 1)) * (hi - lo)
    if tanh:
        r = np.where(uh >= 255, 0xFFFF << 8, interp)
        r = np.where(v >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
        return (r >> 8).astype(np.int16)
    r = np.where(uh >= 255, 0x7FFF << 10, interp)
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return (r >> 10).astype(np.int16)


def gen_lut(func, input_min: float, input_max: float) -> np.ndarray:
    """TFLite's gen_lut<float, int16_t, int16_t> with output range [-1, 1]: 512 samples of func over
    [input_min, input_max], each nudged by half its midpoint interpolation error, plus one for the last
    slope; float32 arithmetic throughout, as TFLite Micro computes it."""
    f32 = np.float32
    lo, hi = f32(input_min), f32(input_max)
    steps = 512
    step = (hi - lo) / f32(steps)
    half_step = step / f32(2)
    inv = f32(65536) / (f32(1) - f32(-1))

    def rnd(v):
        return f32(math.floor(abs(float(v)) + 0.5) * (1 if v >= 0 else -1))

    lut = np.empty(steps + 1, dtype=np.int16)
    for i in range(steps):
        x = lo + f32(i) * step
        val, val_mid, val_next = func(x), func(x + half_step), func(lo + f32(i + 1) * step)
        sample = rnd(val * inv)
        interp = rnd((val_next * inv + rnd(val * inv)) / f32(2))
        bias = rnd((interp - rnd(val_mid * inv)) / f32(2))
        lut[i] = int(min(max(sample - bias, f32(INT16_MIN)), f32(INT16_MAX)))
    lut[steps] = int(min(max(rnd(func(hi) * inv), f32(INT16_MIN)), f32(INT16_MAX)))
    return lut


def _expf(x: np.float32) -> np.float32:
    # std::exp(float) rounded correctly; glibc's expf differs on one of the 1,539 arguments, not in the table
    return np.float32(math.exp(float(x)))


@functools.cache
def softmax_luts() -> tuple[np.ndarray, np.ndarray]:
    """TFLM's SoftmaxPrepare tables: exp over [-10, 0] and 1 / (1 + x) over [0, 1], both Q0.15."""
    return (gen_lut(_expf, -10.0, 0.0),
            gen_lut(lambda x: np.float32(1) / (np.float32(1) + x), 0.0, 1.0))


def lut_lookup(value: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """TFLite's lut_lookup for int16 inputs: base entry plus the rounded slope times the low 7 bits."""
    value = value.astype(np.int64)
    index = 256 + (value >> 7)
    base = lut[index].astype(np.int64)
    slope = ((lut[index + 1].astype(np.int64) - base + 2**15) & 0xFFFF) - 2**15  # int16 arithmetic
    return ((base + ((slope * (value & 0x7F) + 64) >> 7) + 2**15) & 0xFFFF) - 2**15


def softmax_s16(x: np.ndarray, multiplier: int, shift: int, exp_lut: np.ndarray, recip_lut: np.ndarray) -> np.ndarray:
    """reference_ops::SoftmaxInt16 over the last axis of x ([rows, depth]): output in 1/32768, zero point 0."""
    x = x.astype(np.int64)
    diff = x - x.max(axis=1, keepdims=True)
    scaled = multiply_by_quantized_multiplier(diff, multiplier, shift)  # [-65535, 0] is [-10, 0]
    exps = lut_lookup(np.clip(scaled + 32767, INT16_MIN, INT16_MAX), exp_lut)
    total = exps.sum(axis=1, keepdims=True)  # Q16.15
    headroom = np.array([[32 - int(t).bit_length()] for t in total[:, 0]], dtype=np.int64)
    shifted = ((total << (headroom - 1)) + (1 << 13)) >> 14
    recip = lut_lookup(np.clip(shifted - ((1 << 15) + (1 << 16)), INT16_MIN, INT16_MAX), recip_lut)
    right = 31 - headroom
    return np.clip((exps * recip + (np.int64(1) << (right - 1))) >> right, 0, INT16_MAX).astype(np.int16)
