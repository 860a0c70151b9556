#if USE_DSP
static uint32_t load4(const void *bytes) {
    uint32_t word;
    __builtin_memcpy(&word, bytes, sizeof word); /* one LDR: v7E-M loads unaligned words */
    return word;
}

static uint32_t rotate8(uint32_t word) {
    return (word >> 8) | (word << 24);
}

/* Two multiply-accumulates of four weights with four inputs, SMLAD-style as CMSIS-NN does it:
 * SXTB16 splits the weights into bytes (0, 2) and (1, 3), UXTB16 the inputs likewise. */
#define MAC4(acc, wp, even, odd)                                                           \
    do {                                                                                   \
        const uint32_t w_ = load4(wp);                                                     \
        acc = __smlad(__sxtb16((int32_t)w_), (int32_t)(even), acc);                        \
        acc = __smlad(__sxtb16((int32_t)rotate8(w_)), (int32_t)(odd), acc);                \
    } while (0)
#endif

/* y = requantize(bias + W x) for one layer, four rows at a time. */
static void dense(const struct dense *layer, const uint8_t *x, uint8_t *y) {
    const size_t rows = layer->rows;
    const size_t cols = layer->cols;
    const size_t grouped = cols - cols % 4;
    const int8_t *w = layer->weights;
    size_t row;
    for (row = 0; row < rows; row += 4) {
        int32_t acc[4];
        size_t col;
        size_t r;
#if USE_DSP
        int32_t acc0 = layer->bias[row];
        int32_t acc1 = layer->bias[row + 1];
        int32_t acc2 = layer->bias[row + 2];
        int32_t acc3 = layer->bias[row + 3];
        for (col = 0; col < grouped; col += 4, w += 16) {
            const uint32_t inputs = load4(x + col);
            const uint32_t even = __uxtb16(inputs);
            const uint32_t odd = __uxtb16(rotate8(inputs));
            MAC4(acc0, w, even, odd);
            MAC4(acc1, w + 4, even, odd);
            MAC4(acc2, w + 8, even, odd);
            MAC4(acc3, w + 12, even, odd);
        }
        acc[0] = acc0;
        acc[1] = acc1;
        acc[2] = acc2;
        acc[3] = acc3;
#else
        for (r = 0; r < 4; ++r) {
            acc[r] = layer->bias[row + r];
        }
        for (col = 0; col < grouped; col += 4, w += 16) {
            for (r = 0; r < 4; ++r) {
                acc[r] += (int32_t)w[4 * r] * (int32_t)x[col] + (int32_t)w[4 * r + 1] * (int32_t)x[col + 1] +
                          (int32_t)w[4 * r + 2] * (int32_t)x[col + 2] +
                          (int32_t)w[4 * r + 3] * (int32_t)x[col + 3];
            }
        }
#endif
        for (col = grouped; col < cols; ++col, w += 4) {
            for (r = 0; r < 4; ++r) {
                acc[r] += (int32_t)w[r] * (int32_t)x[col];
            }
        }
        for (r = 0; r < 4 && row + r < rows; ++r) {
            y[row + r] = requantize(acc[r], layer, row + r);
        }
    }
}
