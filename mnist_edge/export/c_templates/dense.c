#if USE_DSP
/* acc[r] += sum over `groups` groups of four columns of w * x, for the four rows of a block, the
 * way CMSIS-NN multiplies int8: SXTB16 splits four weights into bytes (0, 2) and (1, 3) as two
 * halfword pairs, UXTB16 splits four inputs likewise, and each SMLAD does two multiply-adds.
 * One group (16 multiply-accumulates) is 25 instructions. Written in assembly because GCC, left
 * to itself, hoists the weight loads and runs out of registers. */
static void mac_block(int32_t acc[4], const uint8_t *x, const int8_t *w, size_t groups) {
    int32_t a0 = acc[0];
    int32_t a1 = acc[1];
    int32_t a2 = acc[2];
    int32_t a3 = acc[3];
    uint32_t even;
    uint32_t odd;
    uint32_t word;
    uint32_t half;
    __asm__ volatile(
        "1:\n\t"
        "ldr     %[odd], [%[x]], #4\n\t"
        "uxtb16  %[even], %[odd]\n\t"
        "uxtb16  %[odd], %[odd], ror #8\n\t"
        "ldr     %[word], [%[w]], #4\n\t"
        "sxtb16  %[half], %[word]\n\t"
        "smlad   %[a0], %[half], %[even], %[a0]\n\t"
        "sxtb16  %[word], %[word], ror #8\n\t"
        "smlad   %[a0], %[word], %[odd], %[a0]\n\t"
        "ldr     %[word], [%[w]], #4\n\t"
        "sxtb16  %[half], %[word]\n\t"
        "smlad   %[a1], %[half], %[even], %[a1]\n\t"
        "sxtb16  %[word], %[word], ror #8\n\t"
        "smlad   %[a1], %[word], %[odd], %[a1]\n\t"
        "ldr     %[word], [%[w]], #4\n\t"
        "sxtb16  %[half], %[word]\n\t"
        "smlad   %[a2], %[half], %[even], %[a2]\n\t"
        "sxtb16  %[word], %[word], ror #8\n\t"
        "smlad   %[a2], %[word], %[odd], %[a2]\n\t"
        "ldr     %[word], [%[w]], #4\n\t"
        "sxtb16  %[half], %[word]\n\t"
        "smlad   %[a3], %[half], %[even], %[a3]\n\t"
        "sxtb16  %[word], %[word], ror #8\n\t"
        "smlad   %[a3], %[word], %[odd], %[a3]\n\t"
        "subs    %[groups], %[groups], #1\n\t"
        "bne     1b"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),
          [groups] "+r"(groups), [even] "=&r"(even), [odd] "=&r"(odd), [word] "=&r"(word), [half] "=&r"(half)
        :
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
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
        for (r = 0; r < 4; ++r) {
            acc[r] = layer->bias[row + r];
        }
#if USE_DSP
        if (grouped != 0) {
            mac_block(acc, x, w, grouped / 4);
            w += 4 * grouped;
        }
#else
        {
            int32_t a0 = acc[0];
            int32_t a1 = acc[1];
            int32_t a2 = acc[2];
            int32_t a3 = acc[3];
            for (col = 0; col < grouped; col += 4, w += 16) {
                const int32_t x0 = x[col];
                const int32_t x1 = x[col + 1];
                const int32_t x2 = x[col + 2];
                const int32_t x3 = x[col + 3];
                a0 += w[0] * x0 + w[1] * x1 + w[2] * x2 + w[3] * x3;
                a1 += w[4] * x0 + w[5] * x1 + w[6] * x2 + w[7] * x3;
                a2 += w[8] * x0 + w[9] * x1 + w[10] * x2 + w[11] * x3;
                a3 += w[12] * x0 + w[13] * x1 + w[14] * x2 + w[15] * x3;
            }
            acc[0] = a0;
            acc[1] = a1;
            acc[2] = a2;
            acc[3] = a3;
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
