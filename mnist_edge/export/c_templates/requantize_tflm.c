/* TFLite Micro's reference requantisation (double rounding). */
struct output {
    const int32_t *multiplier;
    const int8_t *shift;
    int32_t zero_point;
    int32_t act_min;
    int32_t act_max;
    int32_t offset;
};

static struct output output_of(const struct dense *layer) {
    struct output out;
    out.multiplier = layer->multiplier;
    out.shift = layer->shift;
    out.zero_point = layer->zero_point;
    out.act_min = layer->act_min;
    out.act_max = layer->act_max;
    out.offset = layer->offset;
    return out;
}

static uint8_t requantize(int32_t acc, const struct output *out, size_t row) {
    int32_t value = multiply_by_quantized_multiplier(acc, out->multiplier[row], out->shift[row]);
    value += out->zero_point;
    value = value < out->act_min ? out->act_min : value;
    value = value > out->act_max ? out->act_max : value;
    return (uint8_t)(value + out->offset);
}
