/*
 * run_at: targets for `qznusnih run --at LOCATION`, stripped programs and a crash.
 *
 * Usage: run_at heap|struct|stack|global|crash [N] [--wait|--go]
 *
 *   heap    three rounds; round r mallocs a buffer (never freed, so each is new) and
 *           fill_buf(buf, r) writes buf[3] r times and reads it once; main reads it once
 *           more: per buffer, r writes and 2 reads.
 *   struct  parse_header(&h) reads h->flags and writes it once (h is main's local);
 *           main reads it once after: 2 reads, 1 write, none of them in h->magic.
 *   stack   use_slot() writes its local slot[2] 3 times and reads it once; then
 *           clobber() writes the same stack bytes with its own locals; then use_slot()
 *           again.
 *   global  writes the_byte N times (default 4) and reads it once; for a stripped copy.
 *   crash   writes the_byte N times (default 3), reads it once, then dies of SIGSEGV.
 *
 * --wait: print "pid PID byte ADDR" (the_byte's address), wait for a tracer, then go on.
 * --go: print the same line, then wait for a byte on stdin (for a watch that does not trace).
 *
 * volatile: every access in the source is one in the binary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct header {
	unsigned int magic;
	unsigned char flags;
	unsigned char pad[3];
};

volatile unsigned char the_byte;

__attribute__((noinline)) static void fill_buf(volatile unsigned char *buf, int round)
{
	for (int i = 1; i <= round; i++)
		buf[3] = (unsigned char)i;
	(void)buf[3];
}

static int heap_rounds(void)
{
	int total = 0;

	for (int round = 1; round <= 3; round++) {
		volatile unsigned char *buf = malloc(16);

		fill_buf(buf, round);
		total += buf[3];
	}
	return total;
}

__attribute__((noinline)) static void parse_header(volatile struct header *h)
{
	unsigned char flags = h->flags;

	h->magic = 0x51a9;
	h->flags = flags | 1;
}

static int struct_field(void)
{
	volatile struct header h = { 0x1234, 2, { 0 } };

	parse_header(&h);
	return h.flags;
}

__attribute__((noinline)) static int use_slot(void)
{
	volatile unsigned char slot[8];

	for (int i = 0; i < 3; i++)
		slot[2] = (unsigned char)i;
	return slot[2];
}

/* The same frame as use_slot's, so other[] lies where slot[] was: a watch on slot[2]
 * that outlived its frame would log these 8 writes' third. */
__attribute__((noinline)) static int clobber(void)
{
	volatile unsigned char other[8];

	for (int i = 0; i < 8; i++)
		other[i] = 0xee;
	return other[0];
}

static int global_byte(int writes)
{
	for (int i = 1; i <= writes; i++)
		the_byte = (unsigned char)i;
	return the_byte;
}

__attribute__((noinline)) static void crash_now(void)
{
	*(volatile int *)0 = 1; /* SIGSEGV */
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int traced(void)
{
	char line[256];
	int found = 0;
	FILE *status = fopen("/proc/self/status", "r");

	while (status && fgets(line, sizeof(line), status))
		if (strncmp(line, "TracerPid:", 10) == 0)
			found = atoi(line + 10) != 0;
	if (status)
		fclose(status);
	return found;
}

static void say_where(void)
{
	printf("pid %d byte %p\n", (int)getpid(), (void *)&the_byte);
	fflush(stdout);
}

/* Up to 30 s for a tracer; the grace covers one that resumes us before arming. */
static void wait_for_tracer(void)
{
	say_where();
	for (int waited = 0; !traced() && waited < 30000; waited += 10)
		sleep_ms(10);
	sleep_ms(100);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "heap";
	int n = argc > 2 ? atoi(argv[2]) : 0;
	int result;

	if (argc > 3 && strcmp(argv[3], "--wait") == 0)
		wait_for_tracer();
	if (argc > 3 && strcmp(argv[3], "--go") == 0) {
		say_where();
		(void)getchar();
	}

	if (strcmp(mode, "heap") == 0)
		result = heap_rounds();
	else if (strcmp(mode, "struct") == 0)
		result = struct_field();
	else if (strcmp(mode, "stack") == 0)
		result = use_slot() + clobber() + use_slot();
	else if (strcmp(mode, "global") == 0)
		result = global_byte(n ? n : 4);
	else if (strcmp(mode, "crash") == 0) {
		result = global_byte(n ? n : 3);
		crash_now();
	} else {
		fprintf(stderr, "usage: run_at heap|struct|stack|global|crash [N]\n");
		return 2;
	}
	printf("run_at %s: %d\n", mode, result);
	return 0;
}
