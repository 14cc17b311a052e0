/* The same store reached through two callers with identical frames, in turn,
 * so a backtrace cache keyed on registers alone would mix them up. */
#include <stdio.h>

volatile unsigned char the_data;

__attribute__((noinline)) void touch(int i) { the_data = (unsigned char)i; }
__attribute__((noinline)) void via_a(int i) { touch(i); }
__attribute__((noinline)) void via_b(int i) { touch(i); }

int main(void) {
    for (int i = 0; i < 20; i++) {
        if (i % 2)
            via_b(i);
        else
            via_a(i);
    }
    printf("callers done\n");
    return 0;
}
