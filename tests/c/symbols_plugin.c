/* The shared library tests/c/symbols.c loads with dlopen: a load and a store of the byte,
 * inside an inlined function. */
static inline __attribute__((always_inline)) void bump(volatile unsigned char *p) { *p = *p + 1; }

__attribute__((noinline)) void plugin_touch(volatile unsigned char *p) { bump(p); }
