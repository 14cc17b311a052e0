/*
 * idle: a target whose memory does not change once it has started, so a test can
 * compare all of it before and after gdb.  It prints its PID and the address of buf,
 * then sleeps in pause() until killed.
 */
#include <stdio.h>
#include <unistd.h>

struct pair {
	int a;
	char field[8];
};

char buf[16] = "hello";
struct pair s = { 1, "field" };
char *p = buf;

int main(void)
{
	printf("pid %d buf %p\n", (int)getpid(), (void *)buf);
	fflush(stdout);
	for (;;)
		pause();
}
