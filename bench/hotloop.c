/* Benchmark target: ROUNDS rounds of one write and one read of `byte`,
 * three frames deep (main -> round_trip -> touch_*). */
#include <stdio.h>
#include <stdlib.h>

volatile unsigned char byte;

__attribute__((noinline)) void touch_write(int i) { byte = (unsigned char)i; }
__attribute__((noinline)) unsigned char touch_read(void) { return byte; }

__attribute__((noinline)) unsigned round_trip(int i) {
    touch_write(i);
    return touch_read();
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3000;
    unsigned sum = 0;
    for (int i = 0; i < rounds; i++)
        sum += round_trip(i);
    printf("hotloop: %d rounds, sum %u\n", rounds, sum);
    return 0;
}
