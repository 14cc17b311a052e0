/* Benchmark target: ROUNDS rounds of one write and one read of `byte`,
 * three frames deep (main -> round_trip -> touch_*).  Prints how long the
 * rounds took by its own clock: the hit rate the watched program sees.
 *   hotloop [ROUNDS] [wait]
 * With "wait": prints "pid P addr A" and waits for a byte on stdin first (for tools that
 * arm without ptrace). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile unsigned char byte;

__attribute__((noinline)) void touch_write(int i) { byte = (unsigned char)i; }
__attribute__((noinline)) unsigned char touch_read(void) { return byte; }

__attribute__((noinline)) unsigned round_trip(int i) {
    touch_write(i);
    return touch_read();
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3000;
    unsigned sum = 0;
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        char go;
        printf("pid %d addr %p\n", getpid(), (void *)&byte);
        fflush(stdout);
        if (read(0, &go, 1) != 1)
            return 3;
    }
    double start = now();
    for (int i = 0; i < rounds; i++)
        sum += round_trip(i);
    printf("hotloop: %d rounds, sum %u, %.6f s\n", rounds, sum, now() - start);
    return 0;
}
