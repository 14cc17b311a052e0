/* Target for the perf engine's kernel mode: the kernel reads and writes one byte on the
 * program's behalf, an exact number of times.
 *   kernel_io ROUNDS [NAME]
 * Prints "pid P addr 0x...", then waits for a byte on stdin (the go signal: the watch is
 * armed).  Then, ROUNDS times: main stores to `byte` (a user write), read(2) of /dev/zero
 * into it (a kernel write: clear_user), write(2) of it into a pipe (a kernel read:
 * copy_from_user), and read(2) of the pipe back into it (a kernel write: copy_to_user).
 * Prints "done", and when stdin reaches end of file (the watch is gone), "value V", the
 * byte at the end, and exits.
 * NAME, if given, becomes the thread's name (prctl PR_SET_NAME), before the go signal. */
#include <fcntl.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "wait_for_go.h"

_Alignas(8) volatile unsigned char byte;
static int zero_fd, pipe_fds[2];

__attribute__((noinline)) void store_byte(long i) { byte = (unsigned char)(i | 1); }

__attribute__((noinline)) void zero_into_byte(void) {
    if (read(zero_fd, (void *)&byte, 1) != 1)
        abort();
}

__attribute__((noinline)) void send_byte(void) {
    if (write(pipe_fds[1], (const void *)&byte, 1) != 1)
        abort();
}

__attribute__((noinline)) void receive_byte(void) {
    if (read(pipe_fds[0], (void *)&byte, 1) != 1)
        abort();
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: kernel_io ROUNDS [NAME]\n");
        return 2;
    }
    long rounds = atol(argv[1]);
    zero_fd = open("/dev/zero", O_RDONLY);
    if (zero_fd < 0 || pipe(pipe_fds) != 0)
        return 2;
    if (argc == 3 && prctl(PR_SET_NAME, argv[2], 0, 0, 0) != 0)
        return 2;
    printf("pid %d addr %p\n", getpid(), (void *)&byte);
    fflush(stdout);
    wait_for_stdin(1);
    for (long i = 0; i < rounds; i++) {
        store_byte(i);
        zero_into_byte();
        send_byte();
        receive_byte();
    }
    printf("done\n");
    fflush(stdout);
    wait_for_stdin(0);
    printf("value %u\n", byte);
    return 0;
}
