"""gemmlowp's fixed-point transcendental functions on int32 raw values, as TFLite uses them.

Scalar Python ints: these run at lowering time over at most 256 inputs (lookup tables), so clarity
beats speed. A FixedPoint<int32, I> value is its raw int32; I (integer bits) is passed explicitly.
"""
from __future__ import annotations

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def wrap32(x: int) -> int:
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    s = ab + nudge
    return s >> 31 if s >= 0 else -((-s) >> 31)


def rdbpot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def sat_mul_pot(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT<exponent> on int32."""
    if exponent == 0:
        return x
    if exponent < 0:
        return rdbpot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return wrap32(x << exponent)


def rescale(x: int, src_bits: int, dst_bits: int) -> int:
    return sat_mul_pot(x, src_bits - dst_bits)


def one(bits: int) -> int:
    return INT32_MAX if bits == 0 else 1 << (31 - bits)


def rounding_half_sum(a: int, b: int) -> int:
    s = a + b
    s += 1 if s >= 0 else -1
    return s // 2 if s >= 0 else -((-s) // 2)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    """Input and result with 0 integer bits."""
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = sat_mul_pot(x4, -2)
    inner = sat_mul_pot(wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + inner)))


_BARREL = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401),
           (4, 242)]


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """exp(a) for a <= 0 with `integer_bits` integer bits; result with 0 integer bits."""
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _BARREL:
        if integer_bits > exponent:
            shift = frac_bits + exponent
            if remainder & (1 << shift):
                result = srdhm(result, multiplier)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        if a < clamp:
            result = 0
    if a == 0:
        result = INT32_MAX
    return result


def _newton_reciprocal_half(a: int) -> int:
    """The Newton-Raphson loop shared by 1/(1+x) and (1-x)/(1+x); returns x with 2 integer bits."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap32(one(2) - half_denominator_times_x)
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    x = _newton_reciprocal_half(a)
    return rescale(x, 1, 0)  # ExactMulByPot<-1> turns F2 into F1 with the same raw value


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    x = _newton_reciprocal_half(a)
    return rescale(wrap32(x - one(2)), 2, 0)


def logistic(a: int, integer_bits: int) -> int:
    if a == 0:
        return 1 << 30
    abs_a = a if a > 0 else wrap32(-a)
    positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_a), integer_bits))
    return positive if a > 0 else wrap32(INT32_MAX - positive)


def tanh(a: int, integer_bits: int) -> int:
    if a == 0:
        return 0
    n = a if a < 0 else wrap32(-a)
    # ExactMulByPot<1>: same raw, one more integer bit
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return wrap32(-t) if a < 0 else t


def count_leading_zeros(x: int) -> int:
    x &= 0xFFFFFFFF
    return 32 - x.bit_length()


def inv_sqrt_multiplier_exp(x: int) -> tuple[int, int]:
    """tflite::GetInvSqrtQuantizedMultiplierExp(x, kReverseShift): 1/sqrt(x) as a Q31 multiplier and a left
    shift, by TFLite's five Newton-Raphson steps in FixedPoint<int32, 3>."""
    if x <= 1:
        return INT32_MAX, 0
    shift = 11
    while x >= (1 << 29):
        x //= 4
        shift += 1
    pairs = (count_leading_zeros(x) - 1) // 2 - 1
    shift -= pairs
    x <<= 2 * pairs
    f3_input = x >> 1
    half_input = sat_mul_pot(f3_input, -1)
    half_three = (1 << 28) + (1 << 27)
    v = one(3)
    for _ in range(5):
        cube = rescale(srdhm(srdhm(v, v), v), 9, 3)
        v = rescale(wrap32(srdhm(half_three, v) - srdhm(half_input, cube)), 6, 3)
    v = srdhm(v, 1518500250)
    if shift < 0:
        v, shift = wrap32(v << -shift), 0
    return v, -shift
