/* A fully-connected layer. Weights come in blocks of four rows, each block as groups of four
 * columns (row 0's four bytes, row 1's, row 2's, row 3's), then the remaining columns one at a
 * time for the four rows; rows are padded with zeros to a multiple of four. */
struct dense {
    const int8_t *weights;
    const int32_t *bias; /* the model's bias minus the input zero point times the row sum */
    const float *scale;  /* input_scale * filter_scale / output_scale, in float */
    uint16_t rows;
    uint16_t cols;
    int16_t zero_point; /* of the output */
    int16_t act_min;    /* clamp of the quantised output */
    int16_t act_max;
    int16_t offset; /* stored byte = quantised value + offset */
};

/* LiteRT's XNNPACK requantisation: the accumulator times a float scale, clamped, then rounded to
 * the nearest integer, ties to even (adding 1.5 * 2^23 rounds any |x| < 2^22 that way). */
static uint8_t requantize(int32_t acc, const struct dense *layer, size_t row) {
    const float lowest = (float)(layer->act_min - layer->zero_point);
    const float highest = (float)(layer->act_max - layer->zero_point);
    float scaled = (float)acc * layer->scale[row];
    scaled = scaled < lowest ? lowest : scaled;
    scaled = scaled > highest ? highest : scaled;
    scaled = (scaled + 12582912.0f) - 12582912.0f;
    return (uint8_t)((int32_t)scaled + layer->zero_point + layer->offset);
}
