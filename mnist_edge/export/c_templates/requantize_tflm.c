/* TFLite Micro's reference requantisation (double rounding). */
struct output {
    const int32_t *multiplier;
    const int8_t *shift;
    const int64_t *nudge;
    int32_t lowest; /* the clamp, stored (its top is always 255) */
    int32_t add; /* output zero point + stored offset */
};

static struct output output_of(const struct dense *layer) {
    struct output out;
    out.multiplier = layer->multiplier;
    out.shift = layer->shift;
    out.nudge = layer->nudge;
    out.lowest = layer->act_min + layer->offset;
    out.add = layer->zero_point + layer->offset;
    return out;
}

/* TFLM's MultiplyByQuantizedMultiplier, computed with fewer instructions and the same result for
 * every accumulator. Its doubling high multiply (a nudge of +-2^30, then a division truncating
 * toward zero) is the product p = x * m over 2^31 rounded half up: floor((p + 2^30) / 2^31), as
 * the multiplier is never INT32_MIN (its one saturating case). Its rounding right shift by e
 * rounds ties away from zero: floor((r + h) / 2^e) with h = 2^(e-1), or h - 1 for r < 0. As
 * floor(floor(y) + k) / 2^e) == floor((y + k) / 2^e), both roundings are one floor:
 * floor((p + 2^30 + k * 2^31) / 2^(31 + e)), the layer's nudge (2^30 + 2^(30 + e)) less 2^31 when
 * r < 0; and r < 0 exactly when x < 0 (for a positive m; the one exception, x = -1 and m = 2^30,
 * gives 0 either way). */
static inline uint8_t requantize(int32_t acc, const struct output *out, size_t row) {
    const int shift = out->shift[row];
    const int64_t multiplier = out->multiplier[row];
    int32_t value;
    if (shift >= 0) {
        const int32_t x = (int32_t)((uint32_t)acc << shift);
        value = (int32_t)((x * multiplier + ((int64_t)1 << 30)) >> 31);
    } else {
        const int64_t below_zero = (int64_t)(acc >> 31) * ((int64_t)1 << 31); /* -2^31 or 0 */
        value = (int32_t)((acc * multiplier + out->nudge[row] + below_zero) >> 32) >> (-shift - 1);
    }
    value += out->add;
    value = value < 0 ? 0 : value; /* a clamp to a byte is one instruction on Arm (USAT) */
    value = value > 255 ? 255 : value;
    return (uint8_t)(value < out->lowest ? out->lowest : value);
}
