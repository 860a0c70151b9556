/* TFLite Micro's reference requantisation (double rounding). */
static uint8_t requantize(int32_t acc, const struct dense *layer, size_t row) {
    int32_t value = multiply_by_quantized_multiplier(acc, layer->multiplier[row], layer->shift[row]);
    value += layer->zero_point;
    value = value < layer->act_min ? layer->act_min : value;
    value = value > layer->act_max ? layer->act_max : value;
    return (uint8_t)(value + layer->offset);
}
