/* Values under racing threads, and changes nobody saw (issue 12 points 4-5).
 *   race_values [wait] [ROUNDS]
 * Prints "pid P addr A" (A = &the_byte); with "wait", waits for a byte on stdin; calls ready().
 * Then the main thread: stores 0x5a; the kernel writes 0x77 into the byte (read() from a pipe);
 * loads it; stores 0x33; the kernel writes 0 (read() from /dev/zero); loads it twice.
 * Then two threads, started together, each ROUNDS times (default 200) store their own constant
 * (0x11, 0x22) and load the byte.  Prints "main TID" and, per thread, "thread TID CONST V1 V2 ..."
 * (what each of its loads got, hex), then "done". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile unsigned char the_byte;
static int rounds = 200;
static pthread_barrier_t start_together;

struct racer {
    unsigned char mine;
    pid_t tid;
    unsigned char *loads;
};

void ready(void) { __asm__ volatile("" ::: "memory"); }

static void kernel_writes_the_byte(int fd) {
    if (read(fd, (void *)&the_byte, 1) != 1) {
        perror("read");
        exit(1);
    }
}

static void main_thread_part(void) {
    int pipe_fds[2];
    unsigned char loaded;
    if (pipe(pipe_fds) != 0 || write(pipe_fds[1], "\x77", 1) != 1) {
        perror("pipe");
        exit(1);
    }
    int zero = open("/dev/zero", O_RDONLY);
    if (zero < 0) {
        perror("/dev/zero");
        exit(1);
    }
    the_byte = 0x5a;
    kernel_writes_the_byte(pipe_fds[0]);
    loaded = the_byte;
    the_byte = 0x33;
    kernel_writes_the_byte(zero);
    loaded = the_byte;
    loaded = the_byte;
    (void)loaded;
    printf("main %d\n", gettid());
}

static void *race(void *arg) {
    struct racer *me = arg;
    me->tid = gettid();
    pthread_barrier_wait(&start_together);
    for (int i = 0; i < rounds; i++) {
        the_byte = me->mine;
        me->loads[i] = the_byte;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int arg = 1;
    char go;
    printf("pid %d addr %p\n", getpid(), (void *)&the_byte);
    fflush(stdout);
    if (argc > arg && strcmp(argv[arg], "wait") == 0) {
        arg++;
        if (read(0, &go, 1) != 1)
            return 1;
    }
    if (argc > arg)
        rounds = atoi(argv[arg]);
    ready();
    main_thread_part();
    struct racer racers[2] = {{0x11, 0, calloc(rounds, 1)}, {0x22, 0, calloc(rounds, 1)}};
    pthread_t threads[2];
    pthread_barrier_init(&start_together, NULL, 2);
    for (int t = 0; t < 2; t++)
        pthread_create(&threads[t], NULL, race, &racers[t]);
    for (int t = 0; t < 2; t++)
        pthread_join(threads[t], NULL);
    for (int t = 0; t < 2; t++) {
        printf("thread %d %x", racers[t].tid, racers[t].mine);
        for (int i = 0; i < rounds; i++)
            printf(" %x", racers[t].loads[i]);
        printf("\n");
    }
    printf("done\n");
    return 0;
}
