/* Target for the perf engine's fault tests: the byte's watch meets an exit, an exec, a fork,
 * an munmap of its page, a dlopen, a job-control stop.
 *   faults MODE [ARG]
 * Prints "pid P addr 0x...", waits for a byte on stdin (the go signal: the watch is armed),
 * writes the byte once (1), then by MODE:
 *   exit CODE     exits with CODE
 *   signal        raises SIGABRT (default action: dies of it)
 *   fork          forks a child that writes 2 and exits; the parent waits, writes 3, exits 0
 *   exec          execs itself as "faults after-exec": the new program writes the byte at the
 *                 same address (ASLR off) 20,000 times, then exits 0
 *   munmap        the byte lives in its own anonymous page: unmaps it, maps a page there
 *                 again, writes 4 and reads it, exits 0
 *   dlopen LIB    dlopen()s LIB after arming and calls its plugin_touch(&byte), exits 0
 *   phases        "phase" after the write, then waits for a byte, reads the byte 100 times,
 *                 prints "done", exits 0 at the end of stdin */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "wait_for_go.h"

_Alignas(8) volatile unsigned char the_byte;
static volatile unsigned char *byte = &the_byte;
static volatile unsigned sink;

__attribute__((noinline)) void touch(unsigned char value) { *byte = value; }
__attribute__((noinline)) unsigned char look(void) { return *byte; }

static void *own_page(void) {
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        exit(2);
    return page;
}

static int remap_page(void) {
    void *page = (void *)byte;
    if (munmap(page, 4096) != 0)
        return 2;
    void *again = mmap(page, 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (again != page)
        return 2;
    touch(4);
    sink = look();
    return 0;
}

static int call_plugin(const char *path) {
    void *plugin = dlopen(path, RTLD_NOW);
    if (plugin == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    void (*plugin_touch)(volatile unsigned char *) =
        (void (*)(volatile unsigned char *))dlsym(plugin, "plugin_touch");
    plugin_touch(byte);
    return *byte == 2 ? 0 : 4;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "after-exec") == 0) {
        for (int i = 0; i < 20000; i++)
            touch(5);
        return 0;
    }
    if (strcmp(mode, "munmap") == 0)
        byte = own_page();
    printf("pid %d addr %p\n", getpid(), (void *)byte);
    fflush(stdout);
    wait_for_stdin(1);
    touch(1);
    if (strcmp(mode, "exit") == 0 && argc > 2)
        return atoi(argv[2]);
    if (strcmp(mode, "signal") == 0)
        abort();
    if (strcmp(mode, "fork") == 0) {
        pid_t child = fork();
        if (child == 0) {
            touch(2); /* the child's write: not watched */
            _exit(0);
        }
        waitpid(child, NULL, 0);
        touch(3);
        return 0;
    }
    if (strcmp(mode, "exec") == 0) {
        char *args[] = {argv[0], "after-exec", NULL};
        execv("/proc/self/exe", args);
        return 2;
    }
    if (strcmp(mode, "munmap") == 0)
        return remap_page();
    if (strcmp(mode, "dlopen") == 0 && argc > 2)
        return call_plugin(argv[2]);
    if (strcmp(mode, "phases") == 0) {
        printf("phase\n");
        fflush(stdout);
        wait_for_stdin(1);
        unsigned sum = 0;
        for (int i = 0; i < 100; i++)
            sum += look();
        sink = sum;
        printf("done\n");
        fflush(stdout);
        wait_for_stdin(0);
        return 0;
    }
    return 2;
}
