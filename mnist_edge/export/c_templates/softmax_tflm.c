/* TFLite Micro's reference int8 softmax: the differences from the row's maximum are scaled into
 * fixed point with 5 integer bits, exponentiated in fixed point (gemmlowp's polynomial and barrel
 * shifter), summed with 12 integer bits, and divided by one Newton-Raphson reciprocal. */
static int32_t shift_left_saturating(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)((((int64_t)1) << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), both with 0 integer bits: a Taylor expansion around -1/8. */
static int32_t exp_near_zero(int32_t a) {
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = wrap_add(a, 1 << 28);
    const int32_t x2 = high_mul(x, x);
    const int32_t x3 = high_mul(x2, x);
    const int32_t x4 = high_mul(x2, x2);
    const int32_t x4_over_4 = shift_right_rounding(x4, 2);
    const int32_t tail = shift_right_rounding(wrap_add(high_mul(wrap_add(x4_over_4, x3), one_third), x2), 1);
    return wrap_add(exp_minus_one_eighth, high_mul(exp_minus_one_eighth, wrap_add(x, tail)));
}

/* exp(a) for a <= 0 with 5 integer bits (26 fractional), the result with 0 integer bits. */
static int32_t exp_negative(int32_t a) {
    /* exp(-2^k) with 0 integer bits, for k = -2 .. 4 */
    static const int32_t factors[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t quarter = 1 << 24;
    const int32_t remainder_of_quarter = wrap_add(a & (quarter - 1), -quarter);
    const int32_t rest = wrap_add(remainder_of_quarter, -a);
    int32_t result = exp_near_zero(shift_left_saturating(remainder_of_quarter, 5));
    int k;
    for (k = 0; k < 7; ++k) {
        if (rest & ((int32_t)1 << (24 + k))) {
            result = high_mul(result, factors[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1), 0 integer bits in and out: three Newton-Raphson steps. */
static int32_t reciprocal_of_one_plus(int32_t a) {
    const int32_t half_denominator = (int32_t)(((int64_t)a + INT32_MAX + 1) / 2);
    const int32_t one = 1 << 29; /* 2 integer bits */
    int32_t x = wrap_add(1515870810, high_mul(half_denominator, -1010580540));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t error = wrap_add(one, -high_mul(half_denominator, x));
        x = wrap_add(x, shift_left_saturating(high_mul(x, error), 2));
    }
    return shift_left_saturating(x, 1);
}

static int leading_zeros(uint32_t x) {
    int n = 0;
    while (n < 32 && !(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* multiplier, left_shift: the input scale times beta for 5 integer bits; differences below
 * diff_min give probability 0. Output: scale 1/256, zero point -128. */
static void softmax(int32_t multiplier, int left_shift, int32_t diff_min, const uint8_t *x, uint8_t *y,
                    size_t n) {
    int32_t top = 0;
    int32_t sum = 0;
    int32_t scale;
    int headroom;
    int exponent;
    size_t i;
    for (i = 0; i < n; ++i) {
        top = x[i] > top ? x[i] : top;
    }
    for (i = 0; i < n; ++i) {
        const int32_t diff = (int32_t)x[i] - top;
        if (diff >= diff_min) {
            const int32_t scaled = high_mul(diff * (1 << left_shift), multiplier);
            sum = wrap_add(sum, shift_right_rounding(exp_negative(scaled), 12));
        }
    }
    headroom = leading_zeros((uint32_t)sum);
    scale = reciprocal_of_one_plus((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
    exponent = 12 - headroom + 31 - 8;
    for (i = 0; i < n; ++i) {
        const int32_t diff = (int32_t)x[i] - top;
        int32_t value = -128;
        if (diff >= diff_min) {
            const int32_t scaled = high_mul(diff * (1 << left_shift), multiplier);
            value = shift_right_rounding(high_mul(scale, exp_negative(scaled)), exponent) - 128;
            value = value > 127 ? 127 : value;
            value = value < -128 ? -128 : value;
        }
        y[i] = (uint8_t)(value + 128);
    }
}
