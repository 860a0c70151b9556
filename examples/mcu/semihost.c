#include "semihost.h"

enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE0 = 0x04, SYS_WRITE = 0x05, SYS_READ = 0x06,
       SYS_EXIT_EXTENDED = 0x20 };

static uintptr_t call(uintptr_t operation, const void *argument) {
    register uintptr_t r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihost_print(const char *text) {
    call(SYS_WRITE0, text);
}

void semihost_print_uint(uint32_t value) {
    char digits[11];
    int i = 10;
    digits[i] = '\0';
    do {
        digits[--i] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    semihost_print(&digits[i]);
}

int semihost_open(const char *name, const char *mode) {
    size_t length = 0;
    uintptr_t block[3];
    while (name[length] != '\0') {
        ++length;
    }
    block[0] = (uintptr_t)name;
    block[1] = mode[0] == 'w' ? 5u : 1u; /* "wb" : "rb" */
    block[2] = length;
    return (int)call(SYS_OPEN, block);
}

size_t semihost_read(int handle, void *buffer, size_t size) {
    uintptr_t block[3];
    block[0] = (uintptr_t)handle;
    block[1] = (uintptr_t)buffer;
    block[2] = size;
    return size - call(SYS_READ, block); /* the call returns the bytes NOT read */
}

size_t semihost_write(int handle, const void *buffer, size_t size) {
    uintptr_t block[3];
    block[0] = (uintptr_t)handle;
    block[1] = (uintptr_t)buffer;
    block[2] = size;
    return size - call(SYS_WRITE, block);
}

void semihost_close(int handle) {
    uintptr_t block[1];
    block[0] = (uintptr_t)handle;
    call(SYS_CLOSE, block);
}

void semihost_exit(int status) {
    uintptr_t block[2];
    block[0] = 0x20026u; /* ADP_Stopped_ApplicationExit */
    block[1] = (uintptr_t)status;
    call(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}
