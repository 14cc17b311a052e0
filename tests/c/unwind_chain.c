/* Call chains for the offline unwinder's tests, each 4-6 frames deep and ending in libc:
 * main (1 KiB of locals) -> level1 -> level2 -> level3 -> qsort calling back into
 * compare_ints, then memset on its vector path, then raise() into a signal handler.
 * With an argument it first waits for a byte on stdin (for tests of a live module map). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))

volatile int sink;
unsigned char fill_target[4096]; /* the memset's destination; the test watches a byte of it */

NOINLINE void at_bottom(int value) { sink += value; }

NOINLINE int compare_ints(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    at_bottom(x);
    return (x > y) - (x < y);
}

static void on_signal(int signo) { at_bottom(signo); }

NOINLINE int level3(int mode, int *values, int n)
{
    if (mode == 0)
        qsort(values, n, sizeof *values, compare_ints);
    else if (mode == 1)
        memset(fill_target, mode + n, (size_t)n * 240); /* 1920 B, under glibc's rep-stosb
                                                           threshold: its vector loop */
    else
        raise(SIGUSR1);
    return values[0] + fill_target[100];
}

NOINLINE int level2(int mode, int *values, int n)
{
    int result = level3(mode, values, n);
    sink += result;
    return result + 1;
}

NOINLINE int level1(int mode, int n)
{
    int values[8];
    for (int i = 0; i < 8; i++)
        values[i] = (i * 5) % 8;
    int result = level2(mode, values, n);
    sink += values[n - 1];
    return result;
}

int main(int argc, char **argv)
{
    volatile char big[1024]; /* large locals: the stack copy has to reach past them */
    struct sigaction action = {0};
    action.sa_handler = on_signal;
    sigaction(SIGUSR1, &action, NULL);
    for (int i = 0; i < (int)sizeof big; i++)
        big[i] = (char)(argv[0][i % 4] + i);
    char go;
    if (argc > 1 && read(0, &go, 1) < 0)
        return 2;
    int total = 0;
    for (int mode = 0; mode < 3; mode++)
        total += level1(mode, 8);
    return (total + big[argc * 7]) & 1;
}
