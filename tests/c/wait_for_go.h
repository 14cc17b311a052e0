/* The go signal of the test programs that wait to be watched: a byte on stdin (or its end,
 * unless want_byte).  A header of its own: these programs are each built from one file. */
#ifndef WAIT_FOR_GO_H
#define WAIT_FOR_GO_H

#include <stdlib.h>
#include <unistd.h>

static void wait_for_stdin(int want_byte) {
    char c;
    ssize_t n;
    while ((n = read(0, &c, 1)) < 0)
        ;
    if (want_byte && n != 1)
        exit(3);
}

#endif
