/* A fully-connected layer. Weights come in blocks of four rows, each block as groups of four
 * columns (row 0's four bytes, row 1's, row 2's, row 3's), then the remaining columns one at a
 * time for the four rows; rows are padded with zeros to a multiple of four. */
struct dense {
    const int8_t *weights;
    const int32_t *bias; /* the model's bias minus the input zero point times the row sum */
${requantization}    uint16_t rows;
    uint16_t cols;
    int16_t zero_point; /* of the output */
    int16_t act_min;    /* clamp of the quantised output */
    int16_t act_max;
    int16_t offset; /* stored byte = quantised value + offset */
};
