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
