/* Classifies a few MNIST test digits with the generated model and prints them over semihosting.
 * model.int8.c/.h come from `mnist-edge export --format c`; digits.h from make_digits.py.
 * All the model needs is the one call: mnist_edge_infer(pixels, probabilities). */
#include <stdint.h>

#include "digits.h"
#include "model.int8.h"
#include "semihost.h"
#include "systick.h"

int main(void) {
    uint8_t probabilities[MNIST_EDGE_CLASSES];
    uint32_t correct = 0;
    uint32_t ticks = 0;
    uint32_t i;
    systick_start();
    for (i = 0; i < DIGITS; ++i) {
        const uint32_t start = SYST_CVR;
        const int top = mnist_edge_infer(digit_pixels[i], probabilities);
        ticks += systick_since(start);
        correct += (uint32_t)(top == digit_labels[i]);
        semihost_print("digit ");
        semihost_print_uint(i);
        semihost_print(": label ");
        semihost_print_uint(digit_labels[i]);
        semihost_print(", predicted ");
        semihost_print_uint((uint32_t)top);
        semihost_print(" with probability ");
        semihost_print_uint(probabilities[top]);
        semihost_print("/256\n");
    }
    semihost_print_uint(correct);
    semihost_print("/");
    semihost_print_uint(DIGITS);
    semihost_print(" correct; about ");
    semihost_print_uint((uint32_t)((uint64_t)ticks * systick_milli_instructions_per_tick() / 1000u / DIGITS));
    semihost_print(" instructions per digit (SysTick under qemu -icount shift=0)\n");
    return 0;
}
