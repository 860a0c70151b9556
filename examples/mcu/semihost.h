/* Arm semihosting: the debugger (here QEMU, -semihosting-config enable=on) does the I/O. */
#ifndef SEMIHOST_H
#define SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

void semihost_print(const char *text);
void semihost_print_uint(uint32_t value);
/* Host files: mode "rb" or "wb". open returns -1 on failure; read/write return bytes moved. */
int semihost_open(const char *name, const char *mode);
size_t semihost_read(int handle, void *buffer, size_t size);
size_t semihost_write(int handle, const void *buffer, size_t size);
void semihost_close(int handle);
void semihost_exit(int status) __attribute__((noreturn));

#endif
