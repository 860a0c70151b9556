/* LiteRT's XNNPACK requantisation: the accumulator times a float scale, rounded to the nearest
 * integer, ties to even, then clamped. Adding 1.5 * 2^23 rounds any |x| < 2^22 that way and
 * leaves the integer in the low bits of the sum (the generator checks that every accumulator's
 * product stays below 2^22); rounding before the clamp gives what XNNPACK's clamp-then-round
 * gives, as the bounds are integers. */
struct output {
    const float *scale;
    int32_t lowest; /* the clamp, stored (its top is always 255) */
    int32_t shift; /* output zero point + stored offset, less the rounding constant's bits */
};

static struct output output_of(const struct dense *layer) {
    struct output out;
    out.scale = layer->scale;
    out.lowest = layer->act_min + layer->offset;
    out.shift = layer->zero_point + layer->offset - 0x4B400000;
    return out;
}

static uint8_t requantize(int32_t acc, const struct output *out, size_t row) {
    union {
        float f;
        int32_t i;
    } rounded;
    int32_t value;
    rounded.f = (float)acc * out->scale[row] + 12582912.0f;
    value = rounded.i + out->shift;
    value = value < 0 ? 0 : value; /* a clamp to a byte is one instruction on Arm (USAT) */
    value = value > 255 ? 255 : value;
    return (uint8_t)(value < out->lowest ? out->lowest : value);
}
