/* Minimal Cortex-M start-up: vector table, .data copy, .bss zeroing, FPU on, main(), exit.
 * Freestanding: no C library; build with -nostdlib -fno-tree-loop-distribute-patterns (otherwise
 * GCC turns the copy loops below into calls to memcpy/memset, which do not exist here). */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _data_start, _data_end, _data_load, _bss_start, _bss_end, _stack_top;
int main(void);
void reset_handler(void);
void fault_handler(void);

void reset_handler(void) {
    const uint32_t *from = &_data_load;
    uint32_t *to;
    for (to = &_data_start; to < &_data_end;) {
        *to++ = *from++;
    }
    for (to = &_bss_start; to < &_bss_end;) {
        *to++ = 0;
    }
#if defined(__ARM_FP)
    /* CP10 and CP11 full access: without it the first float instruction faults (and QEMU hangs). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    semihost_exit(main());
}

void fault_handler(void) {
    semihost_print("fault\n");
    semihost_exit(3);
}

/* The vector table: initial stack pointer, then reset, NMI, hard fault, memory management, bus
 * and usage fault handlers. */
struct vector_table {
    uint32_t *stack;
    void (*handlers[6])(void);
};

__attribute__((section(".vectors"), used)) static const struct vector_table vectors = {
    &_stack_top, {reset_handler, fault_handler, fault_handler, fault_handler, fault_handler, fault_handler}};
