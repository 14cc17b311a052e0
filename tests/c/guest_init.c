/*
 * guest_init: /init of the default QEMU guest (both x86_64 and i386, where no
 * 32-bit busybox exists).  Mounts proc, sys and devtmpfs, runs
 * /bin/guest_tester, then reboots; QEMU runs with -no-reboot, so a reboot ends
 * it (a tinyconfig kernel has no ACPI, so a real power-off would only halt).
 *
 * Kernel command line (unknown parameters reach init as environment):
 *   qzn_wait=N   passed to the tester: wait up to N s for the debugger's go flag
 *   qzn_rounds=N passed to the tester: N more rounds of accesses, timed
 *   qzn_shell=1  run /bin/sh (busybox, x86_64 only) after the tester
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void run(const char *path, char *const argv[])
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execv(path, argv);
		perror(path);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
}

int main(void)
{
	const char *wait = getenv("qzn_wait");
	const char *rounds = getenv("qzn_rounds");
	const char *shell = getenv("qzn_shell");
	char *tester[] = { "/bin/guest_tester", (char *)(wait ? wait : "0"),
			   (char *)(rounds ? rounds : "0"), NULL };
	char *sh[] = { "/bin/sh", NULL };

	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	printf("guest_init: starting guest_tester\n");
	run(tester[0], tester);
	if (shell && strcmp(shell, "1") == 0 && access(sh[0], X_OK) == 0)
		run(sh[0], sh);
	printf("guest_init: done, rebooting\n");
	fflush(stdout);
	sync();
	reboot(RB_AUTOBOOT);
	return 0;
}
