/* Counting with SysTick. Under QEMU with -icount shift=0 every instruction takes 1 ns of virtual
 * time and SysTick ticks at the board's 25 MHz, so ticks are instructions / 40, deterministically;
 * systick_instructions() calibrates that ratio on a loop of known length instead of assuming it.
 * On real silicon the same ticks are CPU cycles. */
#ifndef SYSTICK_H
#define SYSTICK_H

#include <stdint.h>

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static inline void systick_start(void) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 5u; /* enabled, processor clock, no interrupt */
}

/* Ticks since `start` (a SYST_CVR reading); valid below 2^24 ticks. */
static inline uint32_t systick_since(uint32_t start) {
    return (start - SYST_CVR) & 0xFFFFFFu;
}

/* 2 * n instructions: subs + bne per iteration. */
static inline void systick_known_loop(uint32_t n) {
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

/* Instructions per tick, times 1000, measured on the known loop. */
static inline uint32_t systick_milli_instructions_per_tick(void) {
    const uint32_t n = 100000u;
    const uint32_t start = SYST_CVR;
    uint32_t ticks;
    systick_known_loop(n);
    ticks = systick_since(start);
    return ticks ? (uint32_t)((2u * n * 1000ull) / ticks) : 0u;
}

#endif
