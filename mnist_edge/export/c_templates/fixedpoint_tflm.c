/* gemmlowp's fixed-point primitives as TFLite Micro's reference kernels use them: a rounding
 * doubling high multiply and a rounding right shift, each rounding once (so a requantisation
 * rounds twice). Additions wrap through uint32_t, as the int32 additions they mirror never
 * overflow in these kernels. */
static int32_t wrap_add(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static int32_t high_mul(int32_t a, int32_t b) {
    const int64_t product = (int64_t)a * (int64_t)b;
    const int64_t nudge = product >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)((product + nudge) / ((int64_t)1 << 31)); /* truncates toward zero */
}

static int32_t shift_right_rounding(int32_t x, int exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}
