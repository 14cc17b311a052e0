/* THREADS threads (default 8) each write then read the byte ROUNDS times
 * (default 200), started after ready() so a watch armed there sees threads
 * created after it.  Prints the totals it made. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

volatile unsigned char the_data;
static int rounds = 200;

void ready(void) { __asm__ volatile("" ::: "memory"); }

static void *hammer(void *arg) {
    unsigned char mine = (unsigned char)(long)arg;
    for (int i = 0; i < rounds; i++) {
        the_data = mine;
        (void)the_data;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    pthread_t tid[64];
    if (argc > 2)
        rounds = atoi(argv[2]);
    if (threads > 64)
        threads = 64;
    ready();
    for (long i = 0; i < threads; i++)
        pthread_create(&tid[i], NULL, hammer, (void *)(i + 1));
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    printf("threads: %d threads, %d writes, %d reads\n", threads, threads * rounds,
           threads * rounds);
    return 0;
}
