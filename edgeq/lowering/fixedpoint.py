"""TFLite's integer arithmetic in numpy, bit for bit (tflite/kernels/internal/common.h, gemmlowp).

Every function takes and returns int64 arrays holding int32 values, so intermediate products
never overflow; int32 wrap-around is applied explicitly where TFLite's C++ would wrap.
runtime_c/ref/eq_fixedpoint.h is the C twin of this module.
"""
from __future__ import annotations

import math

import numpy as np

from edgeq.errors import EdgeqError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def wrap32(x):
    """Two's complement int32 wrap-around of int64 values."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: real = m * 2^(shift - 31), m in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    frac, shift = math.frexp(real)
    q = int(round_half_away(frac * (1 << 31)))
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        shift, q = 0, 0
    if shift > 31:  # TFLite's kernels would shift an int32 left by more than its width: undefined behaviour
        raise EdgeqError(
            f"its quantization scales ask for a rescale factor of {real:.3g}, beyond 2^31, which TFLite's integer "
            "arithmetic cannot represent (TFLite Micro's result is undefined). A quantization scale in the model is "
            "damaged or absurd; convert the model again.")
    return q, shift


def round_half_away(x: float) -> float:
    """std::round: halves away from zero (Python's round() goes to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplierSmallerThanOneExp: real < 1, returns (m, left_shift <= 0)."""
    assert 0.0 < real < 1.0, real
    return quantize_multiplier(real)


def saturating_rounding_doubling_high_mul(a, b):
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero.
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where(overflow, INT32_MAX, q)


def rounding_divide_by_pot(x, exponent):
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """tflite::MultiplyByQuantizedMultiplier (double rounding, TFLM's default build)."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap32(np.asarray(x, dtype=np.int64) * (np.int64(1) << left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def multiply_by_quantized_multiplier_int64(x, multiplier, shift):
    """tflite::MultiplyByQuantizedMultiplier(int64_t x, ...) of 16x8 layers: the multiplier rounded to 16 bits,
    then one rounding right shift by 15 - shift. C twin: eq_mbqm64."""
    m = np.asarray(multiplier, dtype=np.int64)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - np.asarray(shift, dtype=np.int64)
    return (np.asarray(x, dtype=np.int64) * reduced + (np.int64(1) << (total - 1))) >> total


def multiply_by_quantized_multiplier_smaller_than_one_exp(x, multiplier, left_shift):
    """tflite::MultiplyByQuantizedMultiplierSmallerThanOneExp (left_shift <= 0)."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -np.asarray(left_shift))


def multiply_by_quantized_multiplier_greater_than_one(x, multiplier, left_shift):
    """tflite::MultiplyByQuantizedMultiplierGreaterThanOne (left_shift >= 0)."""
    return saturating_rounding_doubling_high_mul(wrap32(np.asarray(x, dtype=np.int64) << left_shift), multiplier)


# --- power-of-two ("shift") arithmetic: edgeq's own, for graphs quantized with --quant pot ------------

SHIFT_LIMIT = 62  # shifts are applied to int64 values


def _shift_by_magnitude(x, shift, nudge):
    """x * 2^-shift: for shift > 0 the magnitude plus nudge(x, shift) shifted right (no negative value is
    ever right-shifted), otherwise a multiply; saturated to int32."""
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    right = np.clip(shift, 1, SHIFT_LIMIT)
    magnitude = (np.abs(x) + nudge(x, right)) >> right
    down = np.where(x < 0, -magnitude, magnitude)
    up = x * (np.int64(1) << np.clip(-shift, 0, 31))
    return np.clip(np.where(shift > 0, down, up), INT32_MIN, INT32_MAX)


def rounding_shift(x, shift):
    """x * 2^-shift rounded half away from zero, as TFLite's RoundingDivideByPOT rounds (ADD's one
    rounding). C twin: eq_rounding_shift."""
    return _shift_by_magnitude(x, shift, lambda x, right: np.int64(1) << (right - 1))


def tflite_rounding_shift(x, shift):
    """x * 2^-shift rounded exactly as tflite::MultiplyByQuantizedMultiplier rounds a multiplier of 2^-shift
    (0.5 in Q31, then a rounding divide), so an exported power-of-two model runs bit-exact in TFLite's
    reference kernels. Its two roundings collapse into one shift of the magnitude with a sign-dependent
    nudge: half, plus one for positive values when shift >= 2, minus one for negative ones when shift == 1.
    C twin: eq_tflite_rounding_shift."""
    def nudge(x, right):
        half = np.int64(1) << (right - 1)
        return np.where(x >= 0, half + (right >= 2), half - (right == 1))
    return _shift_by_magnitude(x, shift, nudge)
