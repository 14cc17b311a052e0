/*
 * busy_threads: THREADS threads (default 3) each write then read the byte every
 * millisecond until the process is killed.  Prints its PID and the byte's address.
 *
 * Usage: busy_threads [THREADS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

volatile unsigned char the_data;

static void *touch_forever(void *arg)
{
	unsigned char mine = (unsigned char)(long)arg;

	for (;;) {
		the_data = mine;
		(void)the_data;
		usleep(1000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 3;
	pthread_t tid;

	for (long i = 0; i < threads; i++)
		pthread_create(&tid, NULL, touch_forever, (void *)(i + 1));
	printf("pid %d byte %p\n", (int)getpid(), (void *)&the_data);
	fflush(stdout);
	for (;;)
		pause();
}
