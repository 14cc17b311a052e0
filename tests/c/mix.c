/* Mixed accesses to one byte, each by a known instruction, for exact checks.
 *
 * The watched byte is area[11]; area[8..15] is the 8-byte word covering it.
 * main() waits at ready() (gdb arms the watch there), then performs the
 * sequence below; the expected kinds are listed beside each access and in
 * tests/gdb/test_mix.py.  Build: gcc -g -O0 -pthread (x86-64) or -m32.
 * `mix wait`: also prints "pid P", then waits for a byte on stdin before ready() (for the
 * launcher, which attaches, or arms perf events, while it waits).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

volatile unsigned char area[64] __attribute__((aligned(64)));
static unsigned char copy_dst[32];

#define BYTE ((unsigned char *)&area[11])
#define WORD ((unsigned char *)&area[8])

void ready(void) { __asm__ volatile("" ::: "memory"); }

static void store_new(void) { __asm__ volatile("movb $1,(%0)" ::"r"(BYTE) : "memory"); }   /* W */
static void store_same(void) { __asm__ volatile("movb $1,(%0)" ::"r"(BYTE) : "memory"); }  /* W */

static unsigned char load(void) {                                                     /* R */
    unsigned char v;
    __asm__ volatile("movb (%1),%0" : "=q"(v) : "r"(BYTE) : "memory");
    return v;
}

static void compare(void) { __asm__ volatile("cmpb $0,(%0)" ::"r"(BYTE) : "memory", "cc"); } /* R */
static void add_zero(void) { __asm__ volatile("addb $0,(%0)" ::"r"(BYTE) : "memory", "cc"); } /* RW */
static void increment(void) { __asm__ volatile("incb (%0)" ::"r"(BYTE) : "memory", "cc"); }  /* RW */
static void locked_increment(void) {                                                   /* RW */
    __asm__ volatile("lock incb (%0)" ::"r"(BYTE) : "memory", "cc");
}

static void exchange(void) {                                                           /* RW */
    unsigned char v = 7;
    __asm__ volatile("xchgb %0,(%1)" : "+q"(v) : "r"(BYTE) : "memory");
}

static void wide_store(void) {                                                         /* W */
#ifdef __x86_64__
    unsigned long long v = 0x0102030405060708ULL;
    __asm__ volatile("movq %0,(%1)" ::"r"(v), "r"(WORD) : "memory");
#else
    __asm__ volatile("movq %%xmm0,(%0)" ::"r"(WORD) : "memory");
#endif
}

static void wide_load(void) {                                                          /* R */
#ifdef __x86_64__
    unsigned long long v;
    __asm__ volatile("movq (%1),%0" : "=r"(v) : "r"(WORD) : "memory");
#else
    __asm__ volatile("movq (%0),%%xmm0" ::"r"(WORD) : "memory", "xmm0");
#endif
}

static void sse_load(void) {                                                           /* R */
    __asm__ volatile("movdqu (%0),%%xmm1" ::"r"(WORD) : "memory", "xmm1");
}

static void string_copy_from(void) {                                                   /* R */
    void *src = (void *)WORD, *dst = copy_dst;
    unsigned long n = 16;
    __asm__ volatile("cld; rep movsb" : "+S"(src), "+D"(dst), "+c"(n) : : "memory");
}

static void string_fill(void) {                                                        /* W */
    void *dst = (void *)WORD;
    unsigned long n = 8;
    __asm__ volatile("cld; rep stosb" : "+D"(dst), "+c"(n) : "a"(0x55) : "memory");
}

static void *second_thread(void *arg) {                                                /* W, R */
    (void)arg;
    store_new();
    load();
    return NULL;
}

/* Three frames deep: main -> run_sequence -> each access function. */
static void run_sequence(void) {
    store_new();
    store_same();
    load();
    compare();
    add_zero();
    increment();
    locked_increment();
    exchange();
    wide_store();
    wide_load();
    sse_load();
    string_copy_from();
    string_fill();
}

int main(int argc, char **argv) {
    pthread_t thread;
    char go;
    printf("byte %p\n", (void *)BYTE);
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        printf("pid %d\n", getpid());
        fflush(stdout);
        if (read(0, &go, 1) != 1)
            return 3;
    }
    fflush(stdout);
    ready();
    run_sequence();
    pthread_create(&thread, NULL, second_thread, NULL);
    pthread_join(thread, NULL);
    printf("mix done\n");
    return 0;
}
