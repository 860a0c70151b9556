/* LiteRT's int8 softmax on x86: a float table of exp(-input_scale * beta * d) for every
 * difference d from the row's maximum (exps[255 - d]), a float sum in input order, one
 * reciprocal, and each probability (scale 1/256, zero point -128) rounded half away from zero. */
static void softmax(const float exps[256], const uint8_t *x, uint8_t *y, size_t n) {
    const float *table;
    float sum = 0.0f;
    float inverse;
    uint8_t top = 0;
    size_t i;
    for (i = 0; i < n; ++i) {
        top = x[i] > top ? x[i] : top;
    }
    table = exps + (255 - top);
    for (i = 0; i < n; ++i) {
        sum += table[x[i]];
    }
    inverse = 1.0f / (sum * 0x1p-8f);
    for (i = 0; i < n; ++i) {
        const float scaled = table[x[i]] * inverse;
        int32_t value = (int32_t)scaled; /* scaled >= 0: truncation is floor */
        if (scaled - (float)value >= 0.5f) {
            ++value;
        }
        value -= 128;
        value = value < -128 ? -128 : value;
        value = value > 127 ? 127 : value;
        y[i] = (uint8_t)(value + 128);
    }
}
