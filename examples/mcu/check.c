/* Runs the model over every image in images.bin (N x 784 bytes) and writes outputs.bin (N x 11
 * bytes: the ten probability bytes, then the digit the call returned). Used to prove the C gives
 * the same bytes on the target as on the host; the same file builds for Linux (stdio) and for
 * the bare-metal boards (semihosting, where it also prints the stack high-water mark and the
 * instructions of one inference of the first image). */
#include <stddef.h>
#include <stdint.h>

#include "model.int8.h"

#define CHUNK 64u
#define ROW (MNIST_EDGE_CLASSES + 1u)

#if defined(__linux__)
#include <stdio.h>
typedef FILE *handle_t;
static handle_t open_file(const char *name, const char *mode) { return fopen(name, mode); }
static int is_open(handle_t file) { return file != NULL; }
static size_t read_file(handle_t file, void *data, size_t size) { return fread(data, 1, size, file); }
static size_t write_file(handle_t file, const void *data, size_t size) { return fwrite(data, 1, size, file); }
static void close_file(handle_t file) { fclose(file); }
static void print(const char *text) { fputs(text, stdout); }
#else
#include "semihost.h"
#include "systick.h"
typedef int handle_t;
static handle_t open_file(const char *name, const char *mode) { return semihost_open(name, mode); }
static int is_open(handle_t file) { return file >= 0; }
static size_t read_file(handle_t file, void *data, size_t size) { return semihost_read(file, data, size); }
static size_t write_file(handle_t file, const void *data, size_t size) { return semihost_write(file, data, size); }
static void close_file(handle_t file) { semihost_close(file); }
static void print(const char *text) { semihost_print(text); }

#define PAINT (MNIST_EDGE_STACK_BYTES + 2048u)
#define PATTERN 0xA5u

/* Bytes of stack one inference touches: paint the stack below us, run, find the deepest change. */
static uint32_t stack_high_water(const uint8_t *pixels, uint8_t *probabilities) {
    uint8_t *sp;
    volatile uint8_t *byte;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (byte = sp - PAINT; byte < sp - 64; ++byte) {
        *byte = PATTERN;
    }
    (void)mnist_edge_infer(pixels, probabilities);
    for (byte = sp - PAINT; byte < sp - 64 && *byte == PATTERN; ++byte) {
    }
    return (uint32_t)(sp - (uint8_t *)(uintptr_t)byte);
}

static void measure(const uint8_t *pixels) {
    enum { RUNS = 8 };
    uint8_t probabilities[MNIST_EDGE_CLASSES];
    uint32_t start;
    uint32_t ticks;
    uint32_t per_tick;
    int run;
    print("stack_bytes ");
    semihost_print_uint(stack_high_water(pixels, probabilities));
    systick_start();
    per_tick = systick_milli_instructions_per_tick();
    start = SYST_CVR;
    for (run = 0; run < RUNS; ++run) {
        (void)mnist_edge_infer(pixels, probabilities);
    }
    ticks = systick_since(start);
    print("\nticks_per_inference ");
    semihost_print_uint(ticks / RUNS);
    print("\nmilli_instructions_per_tick ");
    semihost_print_uint(per_tick);
    print("\ninstructions_per_inference ");
    semihost_print_uint((uint32_t)((uint64_t)ticks * per_tick / 1000u / RUNS));
    print("\n");
}
#endif

static uint8_t pixels[CHUNK][MNIST_EDGE_PIXELS];
static uint8_t outputs[CHUNK][ROW];
static uint8_t first[MNIST_EDGE_PIXELS]; /* the image the measurements run on */

int main(void) {
    const handle_t in = open_file("images.bin", "rb");
    const handle_t out = open_file("outputs.bin", "wb");
    size_t count;
    size_t total = 0;
    size_t i;
    if (!is_open(in) || !is_open(out)) {
        print("cannot open images.bin or outputs.bin\n");
        return 2;
    }
    while ((count = read_file(in, pixels, sizeof pixels) / MNIST_EDGE_PIXELS) > 0) {
        for (i = 0; i < count; ++i) {
            outputs[i][MNIST_EDGE_CLASSES] = (uint8_t)mnist_edge_infer(pixels[i], outputs[i]);
        }
        if (total == 0) {
            for (i = 0; i < MNIST_EDGE_PIXELS; ++i) {
                first[i] = pixels[0][i];
            }
        }
        if (write_file(out, outputs, count * ROW) != count * ROW) {
            print("cannot write outputs.bin\n");
            return 2;
        }
        total += count;
    }
    close_file(in);
    close_file(out);
#if !defined(__linux__)
    if (total > 0) {
        measure(first);
    }
#endif
    return total > 0 ? 0 : 2;
}
