/* Touches its byte, forks a child that touches the same address, then execs
 * `argv[1]` (when given) so the watch sees the exec.  Used by the hardening tests. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

volatile unsigned char the_data;

static void touch(unsigned char value) { the_data = value; }

int main(int argc, char **argv) {
    printf("pid %d byte %p\n", (int)getpid(), (void *)&the_data);
    fflush(stdout);
    touch(1);
    pid_t child = fork();
    if (child == 0) {
        touch(2); /* the child's write: not watched */
        _exit(0);
    }
    waitpid(child, NULL, 0);
    touch(3);
    printf("forkexec: parent done, value %d\n", the_data);
    fflush(stdout);
    if (argc > 1) {
        execv(argv[1], argv + 1);
        perror("execv");
        return 1;
    }
    return 0;
}
