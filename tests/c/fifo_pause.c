/* N writes and N reads of `byte`, then a wait on a fifo, then one more write: for checking
 * that records appear while the program still runs (it is blocked in open(2) of the fifo).
 *   fifo_pause FIFO N
 * Exits 0 once a byte has been read from FIFO and `byte` holds the last value written. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

volatile unsigned char byte;
static volatile unsigned sink;

__attribute__((noinline)) void touch_write(unsigned char v) { byte = v; }
__attribute__((noinline)) unsigned char touch_read(void) { return byte; }

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    long n = atol(argv[2]);
    for (long i = 0; i < n; i++) {
        touch_write((unsigned char)i);
        sink += touch_read();
    }
    char c;
    int fd = open(argv[1], O_RDONLY); /* blocks until the test opens it for writing */
    if (fd < 0 || read(fd, &c, 1) != 1)
        return 3;
    touch_write(0xaa);
    return byte == 0xaa ? 0 : 4;
}
