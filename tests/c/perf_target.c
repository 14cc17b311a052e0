/* Target for the perf capture tests: exact numbers of accesses to one byte, from threads that
 * exist before the watch is armed and threads made after it.
 *   perf_target WRITES READS RMWS EARLY LATE [ZERO_READS]
 * Starts EARLY threads, prints "pid P addr 0x...", then waits for a byte on stdin (the go
 * signal: the watch is armed).  Then it starts LATE threads; main and every thread each do
 * WRITES stores, READS loads and RMWS `incb` (one read-modify-write instruction) of `byte`,
 * then ZERO_READS read(2)s of /dev/zero into it: writes made by the kernel.
 * Prints "done" when all have finished; when stdin reaches end of file (the watch is gone),
 * prints "value V", the byte at the end, and exits. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "wait_for_go.h"

_Alignas(8) volatile unsigned char byte;
static long writes, reads, rmws, zero_reads;
static int zero_fd;
static volatile unsigned sink;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;
static int go;

__attribute__((noinline)) void touch_write(long i) { byte = (unsigned char)i; }
__attribute__((noinline)) unsigned char touch_read(void) { return byte; }
__attribute__((noinline)) void touch_rmw(void) { __asm__ volatile("incb %0" : "+m"(byte)); }

static void work(void) {
    unsigned sum = 0;
    for (long i = 0; i < writes; i++)
        touch_write(i);
    for (long i = 0; i < reads; i++)
        sum += touch_read();
    for (long i = 0; i < rmws; i++)
        touch_rmw();
    for (long i = 0; i < zero_reads; i++)
        if (read(zero_fd, (void *)&byte, 1) != 1)
            abort();
    sink = sum;
}

static void *early_worker(void *unused) {
    (void)unused;
    pthread_mutex_lock(&lock);
    while (!go)
        pthread_cond_wait(&go_cond, &lock);
    pthread_mutex_unlock(&lock);
    work();
    return NULL;
}

static void *late_worker(void *unused) {
    (void)unused;
    work();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: perf_target WRITES READS RMWS EARLY LATE [ZERO_READS]\n");
        return 2;
    }
    writes = atol(argv[1]);
    reads = atol(argv[2]);
    rmws = atol(argv[3]);
    zero_reads = argc > 6 ? atol(argv[6]) : 0;
    zero_fd = open("/dev/zero", O_RDONLY);
    int early = atoi(argv[4]), late = atoi(argv[5]);
    pthread_t threads[64];
    if (early + late > 64)
        return 2;
    for (int t = 0; t < early; t++)
        pthread_create(&threads[t], NULL, early_worker, NULL);
    printf("pid %d addr %p\n", getpid(), (void *)&byte);
    fflush(stdout);
    wait_for_stdin(1);
    for (int t = early; t < early + late; t++)
        pthread_create(&threads[t], NULL, late_worker, NULL);
    pthread_mutex_lock(&lock);
    go = 1;
    pthread_cond_broadcast(&go_cond);
    pthread_mutex_unlock(&lock);
    work();
    for (int t = 0; t < early + late; t++)
        pthread_join(threads[t], NULL);
    printf("done\n");
    fflush(stdout);
    wait_for_stdin(0);
    printf("value %u\n", byte);
    return 0;
}
