/* The first index of the largest byte. */
static int argmax(const uint8_t *values, size_t n) {
    size_t best = 0;
    size_t i;
    for (i = 1; i < n; ++i) {
        if (values[i] > values[best]) {
            best = i;
        }
    }
    return (int)best;
}
