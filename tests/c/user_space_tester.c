/*
 * user_space_tester: the demo target, as in the original kernel module.
 *
 * It prints its PID and the address of one of its own bytes, waits until a
 * tracer (gdb) is attached, then writes a random value into the byte and reads
 * it back.  Each access is three frames deep: write_byte/read_byte <- do_round
 * <- main.  At the end it prints its own counts, so tests can compare them
 * with the log.
 *
 * With --wait-go it waits for a byte on stdin instead: a watch by perf events never
 * traces it (the demo sends the byte once the watch is armed, whichever the engine).
 *
 * Usage: user_space_tester [--rounds N] [--interval-ms MS] [--timeout S]
 *                          [--grace-ms MS] [--no-wait | --wait-go]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wait_for_go.h"

/* The watched byte.  volatile: every access in the source is one in the binary. */
volatile unsigned char the_data;

static unsigned long writes_done;
static unsigned long reads_done;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The pid of our tracer, from /proc/self/status; 0 when not traced. */
static long tracer_pid(void)
{
	char line[256];
	long pid = 0;
	FILE *status = fopen("/proc/self/status", "r");

	if (!status)
		return 0;
	while (fgets(line, sizeof(line), status)) {
		if (strncmp(line, "TracerPid:", 10) == 0) {
			pid = strtol(line + 10, NULL, 10);
			break;
		}
	}
	fclose(status);
	return pid;
}

/* Wait up to timeout_s for a tracer; 0 once traced, -1 on timeout. */
static int wait_until_traced(int timeout_s, long grace_ms)
{
	long waited_ms = 0;

	while (tracer_pid() == 0) {
		if (waited_ms >= timeout_s * 1000L)
			return -1;
		sleep_ms(10);
		waited_ms += 10;
	}
	/* The tracer stops us at attach and resumes us once the watch is armed;
	 * the grace period covers a tracer that resumes us before arming. */
	sleep_ms(grace_ms);
	return 0;
}

static void write_byte(unsigned char value)
{
	the_data = value;
	writes_done++;
}

static unsigned char read_byte(void)
{
	unsigned char value = the_data;

	reads_done++;
	return value;
}

static unsigned char do_round(int verbose)
{
	unsigned char value = (unsigned char)(1 + rand() % 255);

	write_byte(value);
	value = read_byte();
	if (verbose)
		printf("tester: read 0x%02x\n", value);
	return value;
}

static long number_arg(int argc, char **argv, int *i)
{
	char *end;
	long value;

	if (*i + 1 >= argc) {
		fprintf(stderr, "tester: %s needs a number\n", argv[*i]);
		exit(2);
	}
	value = strtol(argv[++*i], &end, 10);
	if (*end || value < 0) {
		fprintf(stderr, "tester: bad number '%s' for %s\n", argv[*i], argv[*i - 1]);
		exit(2);
	}
	return value;
}

int main(int argc, char **argv)
{
	long rounds = 1, interval_ms = 0, timeout_s = 30, grace_ms = 100;
	int wait_for_tracer = 1, wait_go = 0;
	unsigned char last = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0)
			rounds = number_arg(argc, argv, &i);
		else if (strcmp(argv[i], "--interval-ms") == 0)
			interval_ms = number_arg(argc, argv, &i);
		else if (strcmp(argv[i], "--timeout") == 0)
			timeout_s = number_arg(argc, argv, &i);
		else if (strcmp(argv[i], "--grace-ms") == 0)
			grace_ms = number_arg(argc, argv, &i);
		else if (strcmp(argv[i], "--no-wait") == 0)
			wait_for_tracer = 0;
		else if (strcmp(argv[i], "--wait-go") == 0)
			wait_for_tracer = 0, wait_go = 1;
		else {
			fprintf(stderr, "usage: %s [--rounds N] [--interval-ms MS] [--timeout S]"
				" [--grace-ms MS] [--no-wait | --wait-go]\n", argv[0]);
			return 2;
		}
	}

	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	printf("pid %d byte %p\n", (int)getpid(), (void *)&the_data);
	fflush(stdout);

	if (wait_for_tracer && wait_until_traced((int)timeout_s, grace_ms) != 0) {
		fprintf(stderr, "tester: no tracer after %ld s, giving up\n", timeout_s);
		return 3;
	}
	if (wait_go)
		wait_for_stdin(1);

	for (long round = 0; round < rounds; round++) {
		last = do_round(rounds == 1);
		if (interval_ms)
			sleep_ms(interval_ms);
	}
	/* `last`, not the_data: reading the byte here would be an access nobody counted. */
	printf("tester: %lu writes, %lu reads, value 0x%02x\n", writes_done, reads_done, last);
	return 0;
}
