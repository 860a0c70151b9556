/* A convolution over an NHWC input (batch 1) as a fully-connected layer applied at each output
 * pixel: the patch under the filter is gathered in the filter's own order (row, column, input
 * channel), taps in the padding read the input's stored zero point (so they add nothing once it
 * is folded into the bias), and the filter's columns are padded with zeros to a multiple of four,
 * so that the patch is multiplied four columns at a time. */
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
    /* Whole words when the length allows (these cores load and store unaligned words). */
    if (n != 0 && n % 4 == 0) {
        uint32_t word;
        __asm__ volatile(
            "1:\n\t"
            "ldr     %[word], [%[from]], #4\n\t"
            "str     %[word], [%[to]], #4\n\t"
            "subs    %[n], %[n], #4\n\t"
            "bne     1b"
            : [word] "=&r"(word), [from] "+r"(from), [to] "+r"(to), [n] "+r"(n)
            :
            : "cc", "memory");
        return to;
    }
#endif
    for (; n != 0; --n) {
        *to++ = *from++;
    }
    return to;
}

static void conv(const struct conv *layer, const uint8_t *x, uint8_t *y, uint8_t *patch) {
    const size_t channels = layer->in_c;
    const size_t row_bytes = (size_t)layer->in_w * channels;
    const size_t used = (size_t)layer->k_h * layer->k_w * channels;
    const int in_h = layer->in_h;
    const int in_w = layer->in_w;
    const int k_w = layer->k_w;
    const uint8_t pad = layer->pad;
    int oy;
    fill(patch + used, 0, layer->filter->cols - used);
    for (oy = 0; oy < layer->out_h; ++oy) {
        const int top = oy * layer->stride_h - layer->pad_top;
        int ox;
        for (ox = 0; ox < layer->out_w; ++ox) {
            /* The filter's columns left..left + k_w - 1 clipped to the input's lo..hi - 1. */
            const int left = ox * layer->stride_w - layer->pad_left;
            const int lo = left < 0 ? 0 : left;
            const int hi = left + k_w > in_w ? in_w : left + k_w;
            uint8_t *p = patch;
            int ky;
            for (ky = top; ky < top + layer->k_h; ++ky) {
                if (ky < 0 || ky >= in_h || hi <= lo) {
                    p = fill(p, pad, (size_t)k_w * channels);
                } else if (hi - lo == k_w) { /* away from the edges: one run of bytes */
                    p = copy(p, x + (size_t)ky * row_bytes + (size_t)lo * channels, (size_t)k_w * channels);
                } else {
                    p = fill(p, pad, (size_t)(lo - left) * channels);
                    p = copy(p, x + (size_t)ky * row_bytes + (size_t)lo * channels, (size_t)(hi - lo) * channels);
                    p = fill(p, pad, (size_t)(left + k_w - hi) * channels);
                }
            }
            dense(layer->filter, patch, y);
            y += layer->filter->rows;
        }
    }
}
