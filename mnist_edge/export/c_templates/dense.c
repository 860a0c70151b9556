#if USE_DSP
/* One group: four columns of x times the four rows' four weights, the way CMSIS-NN multiplies
 * int8: SXTB16 splits four weights into bytes (0, 2) and (1, 3) as two halfword pairs, UXTB16
 * splits four inputs likewise, and each SMLAD does two multiply-adds (23 instructions for 16). */
#define MAC_GROUP \
    "ldr     %[odd], [%[x]], #4\n\t" \
    "uxtb16  %[even], %[odd]\n\t" \
    "uxtb16  %[odd], %[odd], ror #8\n\t" \
    "ldr     %[word], [%[w]], #4\n\t" \
    "sxtb16  %[half], %[word]\n\t" \
    "smlad   %[a0], %[half], %[even], %[a0]\n\t" \
    "sxtb16  %[word], %[word], ror #8\n\t" \
    "smlad   %[a0], %[word], %[odd], %[a0]\n\t" \
    "ldr     %[word], [%[w]], #4\n\t" \
    "sxtb16  %[half], %[word]\n\t" \
    "smlad   %[a1], %[half], %[even], %[a1]\n\t" \
    "sxtb16  %[word], %[word], ror #8\n\t" \
    "smlad   %[a1], %[word], %[odd], %[a1]\n\t" \
    "ldr     %[word], [%[w]], #4\n\t" \
    "sxtb16  %[half], %[word]\n\t" \
    "smlad   %[a2], %[half], %[even], %[a2]\n\t" \
    "sxtb16  %[word], %[word], ror #8\n\t" \
    "smlad   %[a2], %[word], %[odd], %[a2]\n\t" \
    "ldr     %[word], [%[w]], #4\n\t" \
    "sxtb16  %[half], %[word]\n\t" \
    "smlad   %[a3], %[half], %[even], %[a3]\n\t" \
    "sxtb16  %[word], %[word], ror #8\n\t" \
    "smlad   %[a3], %[word], %[odd], %[a3]\n\t"

/* The loop over `groups` groups: two per turn, an odd number entering at the second (one copy of
 * the group less in flash than a lead-in of its own). */
#define TWO_GROUPS_A_TURN(group) \
    "tst     %[groups], #1\n\t" \
    "beq     1f\n\t" \
    "adds    %[groups], %[groups], #1\n\t" \
    "b       2f\n" \
    "1:\n\t" \
    group \
    "2:\n\t" \
    group \
    "subs    %[groups], %[groups], #2\n\t" \
    "bne     1b"

/* acc[r] += sum over `groups` groups of four columns of w * x, for the four rows of a block.
 * Written in assembly because GCC, left to itself, hoists the weight loads and runs out of
 * registers. */
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
        TWO_GROUPS_A_TURN(MAC_GROUP)
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),
          [groups] "+r"(groups), [even] "=&r"(even), [odd] "=&r"(odd), [word] "=&r"(word), [half] "=&r"(half)
        :
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#else
/* The same in plain C, four columns at a time. */
static void mac_block(int32_t acc[4], const uint8_t *x, const int8_t *w, size_t groups) {
    int32_t a0 = acc[0];
    int32_t a1 = acc[1];
    int32_t a2 = acc[2];
    int32_t a3 = acc[3];
    for (; groups != 0; --groups, x += 4, w += 16) {
        const int32_t x0 = x[0];
        const int32_t x1 = x[1];
        const int32_t x2 = x[2];
        const int32_t x3 = x[3];
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

/* y = requantize(bias + W x) for one layer, four rows at a time. The accumulators are indexed
 * by constants only and the requantisation constants are read once, so that the compiler can
 * keep both in registers across the block. */
static void dense(const struct dense *layer, const uint8_t *x, uint8_t *y) {
    const size_t rows = layer->rows;
    const size_t cols = layer->cols;
    const size_t groups = cols / 4;
    const int8_t *w = layer->weights;
    const int32_t *bias = layer->bias;
    const struct output out = output_of(layer);
    size_t row;
    for (row = 0; row < rows; row += 4, bias += 4) {
        int32_t acc[4];
        size_t col;
        acc[0] = bias[0];
        acc[1] = bias[1];
        acc[2] = bias[2];
        acc[3] = bias[3];
        if (groups != 0) {
            mac_block(acc, x, w, groups);
            w += 16 * groups;
        }
        for (col = 4 * groups; col < cols; ++col, w += 4) {
            const int32_t value = x[col];
            acc[0] += w[0] * value;
            acc[1] += w[1] * value;
            acc[2] += w[2] * value;
            acc[3] += w[3] * value;
        }
        y[row] = requantize(acc[0], &out, row);
        if (row + 1 < rows) {
            y[row + 1] = requantize(acc[1], &out, row + 1);
        }
        if (row + 2 < rows) {
            y[row + 2] = requantize(acc[2], &out, row + 2);
        }
        if (row + 3 < rows) {
            y[row + 3] = requantize(acc[3], &out, row + 3);
        }
    }
}
