/* Access sites for the perf engine's symbolizer tests: a store inside an inlined function
 * (with more of that function after it), one called from inlined code, a plain load, a
 * load and a store of a volatile `+=`, libc's memset, and a dlopen'ed library's accesses.
 * Usage: symbols PLUGIN.so [EXEC_MAPPED_FILE]: loads PLUGIN (and maps the file PROT_EXEC),
 * prints the byte's address, waits for one byte on stdin, makes the accesses, exits 0. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

volatile unsigned char watched;
volatile unsigned char beside;

static inline __attribute__((always_inline)) void store_inline(unsigned char v) {
    watched = v;
    beside = v;
}

__attribute__((noinline)) void through_inline(unsigned char v) { store_inline(v); }

static inline __attribute__((always_inline)) void call_from_inline(unsigned char v) {
    through_inline(v);
    beside = 0;
}

__attribute__((noinline)) unsigned char load_plain(void) { return watched; }

__attribute__((noinline)) void add_three(void) { watched += 3; }

volatile size_t one = 1; /* read at run time: gcc cannot make memset a plain store */

__attribute__((noinline)) void clear_with_memset(void) { memset((void *)&watched, 7, one); }

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    void *plugin = dlopen(argv[1], RTLD_NOW);
    if (plugin == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    void (*plugin_touch)(volatile unsigned char *) =
        (void (*)(volatile unsigned char *))dlsym(plugin, "plugin_touch");
    if (argc > 2) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0 || mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED)
            return 2;
    }
    printf("%p\n", (void *)&watched);
    fflush(stdout);
    char go;
    if (read(0, &go, 1) != 1)
        return 3;
    call_from_inline(1);
    unsigned char seen = load_plain();
    add_three();
    clear_with_memset();
    plugin_touch(&watched);
    return seen == 1 && watched == 8 ? 0 : 4;
}
