/* A convolution over an NHWC input (batch 1) as a fully-connected layer applied at each output
 * pixel: the patch under the filter is gathered in the filter's own order (row, column, input
 * channel), taps in the padding read the input's stored zero point (so they add nothing once it
 * is folded into the bias), and the filter's columns are padded with zeros to a multiple of four,
 * so that the patch is multiplied four columns at a time. Output pixels are computed two at a
 * time: the second one's patch is gathered PATCH_STRIDE bytes after the first's, and each weight
 * word is loaded and split once for both, as CMSIS-NN's convolutions do. */
struct conv {
    const struct dense *filter; /* rows: output channels; cols: the padded patch */
    uint16_t in_c;
    uint8_t in_h;
    uint8_t in_w;
    uint8_t out_h;
    uint8_t out_w;
    uint8_t k_h;
    uint8_t k_w;
    uint8_t stride_h;
    uint8_t stride_w;
    uint8_t pad_top;
    uint8_t pad_left;
    uint8_t pad; /* the input's zero point, stored */
};

static uint8_t *fill(uint8_t *to, uint8_t value, size_t n) {
    for (; n != 0; --n) {
        *to++ = value;
    }
    return to;
}

static uint8_t *copy(uint8_t *to, const uint8_t *from, size_t n) {
#if USE_DSP
    /* Whole words first (these cores load and store unaligned words), then the odd bytes. */
    size_t words = n / 4;
    if (words != 0) {
        uint32_t word;
        __asm__ volatile(
            "1:\n\t"
            "ldr     %[word], [%[from]], #4\n\t"
            "str     %[word], [%[to]], #4\n\t"
            "subs    %[words], %[words], #1\n\t"
            "bne     1b"
            : [word] "=&r"(word), [from] "+r"(from), [to] "+r"(to), [words] "+r"(words)
            :
            : "cc", "memory");
        n %= 4;
    }
#endif
    for (; n != 0; --n) {
        *to++ = *from++;
    }
    return to;
}

#if USE_DSP && PATCH_STRIDE <= 4095
/* One group: four columns of two patches (the second PATCH_STRIDE bytes on, an immediate offset,
 * which spares a register) times two rows' four weights: each weight word is split once and used
 * for both pixels (20 instructions for 16 multiply-adds; dense.c's MAC_GROUP has the splits). */
#define MAC_PAIR_GROUP \
    "ldr     %[b_odd], [%[x], %[stride]]\n\t" \
    "uxtb16  %[b_even], %[b_odd]\n\t" \
    "uxtb16  %[b_odd], %[b_odd], ror #8\n\t" \
    "ldr     %[a_odd], [%[x]], #4\n\t" \
    "uxtb16  %[a_even], %[a_odd]\n\t" \
    "uxtb16  %[a_odd], %[a_odd], ror #8\n\t" \
    "ldr     %[word], [%[w], #4]\n\t" \
    "sxtb16  %[half], %[word]\n\t" \
    "smlad   %[a1], %[half], %[a_even], %[a1]\n\t" \
    "smlad   %[b1], %[half], %[b_even], %[b1]\n\t" \
    "sxtb16  %[word], %[word], ror #8\n\t" \
    "smlad   %[a1], %[word], %[a_odd], %[a1]\n\t" \
    "smlad   %[b1], %[word], %[b_odd], %[b1]\n\t" \
    "ldr     %[word], [%[w]], #16\n\t" \
    "sxtb16  %[half], %[word]\n\t" \
    "smlad   %[a0], %[half], %[a_even], %[a0]\n\t" \
    "smlad   %[b0], %[half], %[b_even], %[b0]\n\t" \
    "sxtb16  %[word], %[word], ror #8\n\t" \
    "smlad   %[a0], %[word], %[a_odd], %[a0]\n\t" \
    "smlad   %[b0], %[word], %[b_odd], %[b0]\n\t"

/* acc[0..1] += rows r, r + 1 of w times the patch at x, acc[2..3] += the same rows times the
 * patch at x + PATCH_STRIDE, over `groups` groups of four columns; w points at row r's first
 * four weights in its block of four rows. The loop is mac_block's; the thirteen registers it
 * needs are as many as GCC can hand out when it keeps a frame pointer. */
static void mac_pair(int32_t acc[4], const uint8_t *x, const int8_t *w, size_t groups) {
    int32_t a0 = acc[0];
    int32_t a1 = acc[1];
    int32_t b0 = acc[2];
    int32_t b1 = acc[3];
    uint32_t a_even;
    uint32_t a_odd;
    uint32_t b_even;
    uint32_t b_odd;
    uint32_t word;
    uint32_t half;
    __asm__ volatile(
        TWO_GROUPS_A_TURN(MAC_PAIR_GROUP)
        : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [x] "+r"(x), [w] "+r"(w),
          [groups] "+r"(groups), [a_even] "=&r"(a_even), [a_odd] "=&r"(a_odd), [b_even] "=&r"(b_even),
          [b_odd] "=&r"(b_odd), [word] "=&r"(word), [half] "=&r"(half)
        : [stride] "i"(PATCH_STRIDE)
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}
#else
/* The same in plain C. */
static void mac_pair(int32_t acc[4], const uint8_t *x, const int8_t *w, size_t groups) {
    int32_t a0 = acc[0];
    int32_t a1 = acc[1];
    int32_t b0 = acc[2];
    int32_t b1 = acc[3];
    for (; groups != 0; --groups, x += 4, w += 16) {
        const uint8_t *z = x + PATCH_STRIDE;
        a0 += w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3];
        a1 += w[4] * x[0] + w[5] * x[1] + w[6] * x[2] + w[7] * x[3];
        b0 += w[0] * z[0] + w[1] * z[1] + w[2] * z[2] + w[3] * z[3];
        b1 += w[4] * z[0] + w[5] * z[1] + w[6] * z[2] + w[7] * z[3];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}
#endif

/* The filter (a dense layer whose columns are a multiple of four) at two output pixels, whose
 * patches are at x and x + PATCH_STRIDE: rows two at a time, each pair read from its block of
 * four rows. The outputs go to y (the first pixel) and y + rows (the second). */
static void dense_pair(const struct dense *layer, const uint8_t *x, uint8_t *y) {
    const size_t rows = layer->rows;
    const size_t groups = layer->cols / 4;
    const int32_t *bias = layer->bias; /* padded to whole blocks of four, as the weights */
    const struct output out = output_of(layer);
    size_t row;
    for (row = 0; row < rows; row += 2) {
        int32_t acc[4];
        size_t k;
        acc[0] = bias[row];
        acc[1] = bias[row + 1];
        acc[2] = bias[row];
        acc[3] = bias[row + 1];
        mac_pair(acc, x, layer->weights + (row / 4) * 16 * groups + (row % 4) * 4, groups);
        /* A loop over the two pixels: two inlined requantisations in flash rather than four. */
        for (k = 0; k < 2; ++k) {
            y[k * rows + row] = requantize(acc[2 * k], &out, row);
            if (row + 1 < rows) {
                y[k * rows + row + 1] = requantize(acc[2 * k + 1], &out, row + 1);
            }
        }
    }
}

/* Gathers the patch under the filter at output pixel (oy, ox) into p. */
static void gather(const struct conv *layer, const uint8_t *x, int oy, int ox, uint8_t *p) {
    const size_t channels = layer->in_c;
    const size_t row_bytes = (size_t)layer->in_w * channels;
    const int in_h = layer->in_h;
    const int in_w = layer->in_w;
    const int k_w = layer->k_w;
    const uint8_t pad = layer->pad;
    const int top = oy * layer->stride_h - layer->pad_top;
    /* The filter's columns left..left + k_w - 1 clipped to the input's lo..hi - 1. */
    const int left = ox * layer->stride_w - layer->pad_left;
    const int lo = left < 0 ? 0 : left;
    const int hi = left + k_w > in_w ? in_w : left + k_w;
    int ky;
    for (ky = top; ky < top + layer->k_h; ++ky) {
        /* Each filter row: the padding left of the input, the input, the padding right of it. */
        const int inside = ky >= 0 && ky < in_h && hi > lo;
        const int before = inside ? lo - left : k_w;
        const int taken = inside ? hi - lo : 0;
        const size_t from = inside ? (size_t)ky * row_bytes + (size_t)lo * channels : 0;
        p = fill(p, pad, (size_t)before * channels);
        p = copy(p, x + from, (size_t)taken * channels);
        p = fill(p, pad, (size_t)(k_w - before - taken) * channels);
    }
}

/* patch holds two patches, PATCH_STRIDE bytes apart; an odd last pixel goes through dense. */
static void conv(const struct conv *layer, const uint8_t *x, uint8_t *y, uint8_t *patch) {
    const struct dense *filter = layer->filter;
    const size_t used = (size_t)layer->k_h * layer->k_w * layer->in_c;
    size_t pixels = (size_t)layer->out_h * layer->out_w;
    int oy = 0;
    int ox = 0;
    fill(patch + used, 0, filter->cols - used);
    fill(patch + PATCH_STRIDE + used, 0, filter->cols - used);
    for (; pixels >= 2; pixels -= 2, y += 2 * filter->rows) {
        gather(layer, x, oy, ox, patch);
        if (++ox == layer->out_w) {
            ox = 0;
            ++oy;
        }
        gather(layer, x, oy, ox, patch + PATCH_STRIDE);
        if (++ox == layer->out_w) {
            ox = 0;
            ++oy;
        }
        dense_pair(filter, patch, y);
    }
    if (pixels != 0) {
        gather(layer, x, oy, ox, patch);
        dense(filter, patch, y);
    }
}
