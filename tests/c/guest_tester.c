/*
 * guest_tester: the program the whole-system (QEMU) tests watch.
 *
 * It prints its PID and the address of its byte, calls qzn_ready() (where the
 * debugger puts a breakpoint, arms its watch and sets qzn_go), waits for qzn_go
 * up to WAIT_SECONDS (argv[1], default 0: a debugger stopped at qzn_ready() has
 * set it already), then touches its byte in a fixed sequence:
 *
 *   user write, user read, user same-value write      (main > user_accesses > poke/peek)
 *   read() from /dev/zero into the byte: KERNEL write (main > kernel_accesses > fill_from_zero)
 *   write() of the byte into a pipe:      KERNEL read (main > kernel_accesses > send_to_pipe)
 *   a forked child writes the same virtual address    (must be filtered out by --pid)
 *
 * With ROUNDS (argv[2]) > 0 it then repeats, ROUNDS times, a user write, a user
 * read, a kernel write and a kernel read (4 hits a round), for measuring the cost
 * per hit, and prints how long that took.
 *
 * Built static and non-PIE so its symbols load at fixed addresses in gdb.
 * Nothing else in this program touches the byte.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

volatile unsigned char qzn_byte __attribute__((aligned(64))) = 0x11;
volatile unsigned char qzn_go __attribute__((aligned(64)));

static int user_writes, user_reads, kernel_writes, kernel_reads, child_writes;

/* The debugger's hook: break here, arm the watch, set qzn_go, continue. */
__attribute__((noinline)) void qzn_ready(void)
{
	__asm__ volatile("" ::: "memory");
}

static void wait_for_go(int seconds)
{
	time_t end = time(NULL) + seconds;

	while (!qzn_go && time(NULL) < end)
		;
}

__attribute__((noinline)) static void poke_byte(unsigned char value)
{
	qzn_byte = value; /* user write */
	user_writes++;
}

__attribute__((noinline)) static unsigned char peek_byte(void)
{
	user_reads++;
	return qzn_byte; /* user read */
}

__attribute__((noinline)) static void user_accesses(void)
{
	unsigned char seen;

	poke_byte(0x5a);
	seen = peek_byte();
	poke_byte(seen); /* same-value write */
}

__attribute__((noinline)) static void fill_from_zero(void)
{
	int fd = open("/dev/zero", O_RDONLY);

	if (fd < 0 || read(fd, (void *)&qzn_byte, 1) != 1) { /* kernel write */
		perror("guest_tester: /dev/zero");
		exit(1);
	}
	kernel_writes++;
	close(fd);
}

__attribute__((noinline)) static void send_to_pipe(void)
{
	int fds[2];
	char sink;

	if (pipe(fds) || write(fds[1], (const void *)&qzn_byte, 1) != 1 /* kernel read */
	    || read(fds[0], &sink, 1) != 1) {
		perror("guest_tester: pipe");
		exit(1);
	}
	kernel_reads++;
	close(fds[0]);
	close(fds[1]);
}

__attribute__((noinline)) static void kernel_accesses(void)
{
	fill_from_zero();
	send_to_pipe();
}

__attribute__((noinline)) static void child_access(void)
{
	int status;
	pid_t child = fork();

	if (child < 0) {
		perror("guest_tester: fork");
		exit(1);
	}
	if (child == 0) {
		poke_byte(0x77); /* same virtual address, another process */
		_exit(0);
	}
	waitpid(child, &status, 0);
	child_writes++;
	printf("guest_tester: child %d wrote the byte\n", (int)child);
}

__attribute__((noinline)) static void bench_rounds(int rounds)
{
	struct timespec start, end;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < rounds; i++) {
		poke_byte((unsigned char)i);
		peek_byte();
		fill_from_zero();
		send_to_pipe();
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	printf("guest_tester: bench: %d rounds, %d hits in %.3f s\n", rounds, rounds * 4,
	       (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9);
}

int main(int argc, char **argv)
{
	int wait_seconds = argc > 1 ? atoi(argv[1]) : 0;
	int rounds = argc > 2 ? atoi(argv[2]) : 0;

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("guest_tester: pid %d byte %p\n", (int)getpid(), (void *)&qzn_byte);
	qzn_ready();
	wait_for_go(wait_seconds);
	user_accesses();
	kernel_accesses();
	child_access();
	printf("guest_tester: done: user writes %d, user reads %d, kernel writes %d, "
	       "kernel reads %d, child writes %d\n",
	       user_writes, user_reads, kernel_writes, kernel_reads, child_writes);
	if (rounds > 0)
		bench_rounds(rounds);
	return 0;
}
