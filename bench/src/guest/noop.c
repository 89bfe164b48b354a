/*
 * noop: the smallest static program that exits 0, for the exec benchmark.
 * No libc: `gcc -O2 -static -nostdlib` makes it a few hundred bytes, so the
 * measurement is the exec path itself, not loading a C runtime.
 */
void _start(void) {
#if defined(__x86_64__)
    __asm__ volatile("mov $60, %%eax\n\txor %%edi, %%edi\n\tsyscall" ::: "rax", "rdi", "memory");
#elif defined(__aarch64__)
    __asm__ volatile("mov x8, #93\n\tmov x0, #0\n\tsvc #0" ::: "x0", "x8", "memory");
#else
#error "noop.c: add the exit syscall for this architecture"
#endif
    __builtin_unreachable();
}
