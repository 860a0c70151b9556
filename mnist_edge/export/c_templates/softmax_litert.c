/* LiteRT's int8 softmax on x86: a float table of exp(-input_scale * beta * d) for every
 * difference d from the row's maximum, a float sum in input order, one reciprocal, and each
 * probability rounded half away from zero. softmax_table[255 - d] holds the entry for d. */
static void softmax(const uint8_t *x, uint8_t *y, size_t n) {
    const float *table;
    float sum = 0.0f;
    float inverse;
    uint8_t top = 0;
    size_t i;
    for (i = 0; i < n; ++i) {
        top = x[i] > top ? x[i] : top;
    }
    table = softmax_table + (255 - top);
    for (i = 0; i < n; ++i) {
        sum += table[x[i]];
    }
    inverse = 1.0f / (sum * ${output_scale});
    for (i = 0; i < n; ++i) {
        const float scaled = table[x[i]] * inverse;
        int32_t value = (int32_t)scaled; /* scaled >= 0: truncation is floor */
        if (scaled - (float)value >= 0.5f) {
            ++value;
        }
        value += ${output_zero_point};
        value = value < -128 ? -128 : value;
        value = value > 127 ? 127 : value;
        y[i] = (uint8_t)(value + ${output_offset});
    }
}
