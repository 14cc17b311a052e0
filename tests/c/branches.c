/* Accesses whose instruction is not the one ending at the trap pc: branches through memory,
 * a load right before a rep string op, cache-line flushes and clzero.  x86-64 only.
 *
 * `branches MODE`: prints what to watch ("watch ADDR"), then "pid P", waits for a byte on
 * stdin (the launcher arms meanwhile), runs MODE's accesses and exits.  The expected records
 * are listed beside each access and in tests/branch_runs.py.
 *   pointer  the function pointer `handler` (8 bytes): read by call *(%rax), call
 *            *handler(%rip), call *0x10(%rbx), then by jmp *(%rax) (pc unknown), written by C
 *   slot     the return-address slot of calls from slot_round (8 bytes): read()'s ret, then
 *            twice a call writing it and a ret reading it, then the call to _exit writing it
 *   rep      buf[40]: read by movzbl -1(%rdi) just before a rep stosb that starts after it,
 *            then written by a rep stosb running through it
 *   cache    buf[40]: clflush, clflushopt, clwb (reads as the hardware reports them), then
 *            clzero of its line (a write) unless the second argument is "noclzero"
 *   got      getppid's GOT slot (8 bytes; prints "watch -": the test finds it in the binary):
 *            read three times by the PLT stub's jmp *GOT(%rip), bound before the watch
 * Build: gcc -g -O0 -no-pie (the tests read the instructions' addresses from the binary).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CALLER_SAVED "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc"

void target_fn(void) { __asm__ volatile("" ::: "memory"); }
void other_fn(void) { __asm__ volatile("" ::: "memory"); }
void (*volatile handler)(void) = target_fn;
unsigned char buf[128] __attribute__((aligned(64)));
static volatile unsigned long *return_slot;
static char go;

static void wait_for_go(void) {
    printf("pid %d\n", getpid());
    fflush(stdout);
    if (read(0, &go, 1) != 1)
        _exit(3);
}

/* No locals (the calls push below a leaf's stack pointer) and no inputs: the asm names all. */
void call_through_pointer(void) {
    __asm__ volatile("lea handler(%%rip),%%rax\n\t"
                     "call *(%%rax)" ::: CALLER_SAVED);                /* R by the call */
    __asm__ volatile("call *handler(%%rip)" ::: CALLER_SAVED);         /* R by the call */
    __asm__ volatile("push %%rbx\n\t"
                     "lea handler-0x10(%%rip),%%rbx\n\t"
                     "call *0x10(%%rbx)\n\t"                           /* R by the call */
                     "pop %%rbx" ::: CALLER_SAVED);
}

void jump_through_pointer(void) {
    /* A tail call by hand: the callee returns to the label. */
    __asm__ volatile("lea handler(%%rip),%%rax\n\t"
                     "lea 1f(%%rip),%%rcx\n\t"
                     "push %%rcx\n\t"
                     "jmp *(%%rax)\n"                                   /* R, pc unknown */
                     "1:" ::: CALLER_SAVED);
}

static void pointer_mode(void) {
    printf("watch %p\n", (void *)&handler);
    wait_for_go();
    call_through_pointer();
    jump_through_pointer();
    handler = other_fn;                                                /* W by a mov */
}

void callee(void) { __asm__ volatile("" ::: "memory"); }

/* Every call from here pushes its return address at the same slot: rsp - 8. */
void slot_round(void) {
    unsigned long sp;
    __asm__ volatile("mov %%rsp,%0" : "=r"(sp));
    return_slot = (volatile unsigned long *)(sp - 8);
    printf("watch %p\n", (void *)return_slot);
    printf("pid %d\n", getpid());
    fflush(stdout);
    if (read(0, &go, 1) != 1) /* armed while in read(): R by its ret */
        _exit(3);
    callee();                  /* W by the call, R by callee's ret */
    callee();                  /* W by the call, R by callee's ret */
    _exit(0);                  /* W by the call */
}

void load_before_rep(void) {
    void *dst = &buf[41];
    unsigned long n = 4;
    unsigned char v;
    __asm__ volatile("cld\n\t"
                     "movzbl -1(%%rdi),%%eax\n\t"                      /* R by the movzbl */
                     "rep stosb"                                       /* buf[41..44]: not it */
                     : "+D"(dst), "+c"(n), "=a"(v) : : "memory");
}

void rep_through(void) {
    void *dst = &buf[38];
    unsigned long n = 4;
    __asm__ volatile("cld\n\trep stosb"                                /* W by the rep stosb */
                     : "+D"(dst), "+c"(n) : "a"(0x55) : "memory");
}

static void rep_mode(void) {
    printf("watch %p\n", (void *)&buf[40]);
    wait_for_go();
    load_before_rep();
    rep_through();
}

void flush_line(int with_clzero) {
    unsigned char *byte = &buf[40];
    __asm__ volatile("clflush (%0)" ::"r"(byte) : "memory");           /* R */
    __asm__ volatile("clflushopt (%0)" ::"r"(byte) : "memory");        /* R */
    __asm__ volatile("clwb (%0)" ::"r"(byte) : "memory");              /* R */
    if (!with_clzero)
        return;
    __asm__ volatile("clzero" ::"a"(&buf[72]) : "memory");            /* buf[64..127]: not it */
    __asm__ volatile("clzero" ::"a"(&buf[8]) : "memory");             /* W: buf[0..63] */
}

static void cache_mode(int with_clzero) {
    printf("watch %p\n", (void *)&buf[40]);
    wait_for_go();
    flush_line(with_clzero);
}

static void got_mode(void) {
    getppid(); /* binds the slot (lazy binding writes it) before the watch */
    printf("watch -\n");
    wait_for_go();
    getppid(); /* R by the stub's jmp, three times */
    getppid();
    getppid();
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "pointer") == 0)
        pointer_mode();
    else if (strcmp(mode, "slot") == 0)
        slot_round();
    else if (strcmp(mode, "rep") == 0)
        rep_mode();
    else if (strcmp(mode, "got") == 0)
        got_mode();
    else if (strcmp(mode, "cache") == 0)
        cache_mode(!(argc > 2 && strcmp(argv[2], "noclzero") == 0));
    else {
        fprintf(stderr, "usage: branches pointer|slot|rep|cache|got [noclzero]\n");
        return 2;
    }
    printf("branches done\n");
    return 0;
}
