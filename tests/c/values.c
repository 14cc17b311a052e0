/* Target for the value derivation test: each op_* function makes one kind of access to the
 * watched word (area[1]) with one exactly chosen instruction, and peek() reads the whole word
 * with a plain load before and after every op, so the output says what each op found and left.
 *   values
 * Prints "pid P addr A" (A = &area[1]), then for each byte on stdin runs every op once and
 * prints "op NAME BEFORE AFTER GOT" per op (hex; GOT is what the op's register received, or 0),
 * "peek V" per peek in order, then "done".  Exits 0 at the end of stdin.
 * area[0] and area[2] are there so the word can be a stack slot (push/pop with %rsp pointed into
 * area) and half of a 16-byte operand. */
#include <stdio.h>
#include <unistd.h>

_Alignas(16) volatile unsigned long area[4];
#define WORD area[1]
#define PTR ((volatile unsigned char *)&area[1])

static unsigned long peeks[256];
static int npeeks;
static unsigned long source[2] = {0x1122334455667788UL, 0};
static unsigned long dest[2];

__attribute__((noinline)) unsigned long peek(void) {
    unsigned long v;
    __asm__ volatile("mov %1,%0" : "=r"(v) : "m"(WORD));
    peeks[npeeks++] = v;
    return v;
}

typedef unsigned long (*op_fn)(void);
typedef __int128 __attribute__((may_alias)) wide;

/* -- stores ------------------------------------------------------------------------------ */
#define STORE(name, body, ...)                                                                 \
    __attribute__((noinline)) unsigned long name(void) {                                     \
        __asm__ volatile(body : "+m"(WORD) : __VA_ARGS__ : "memory");                        \
        return 0;                                                                             \
    }
STORE(op_store_imm8, "movb $0x5a,%0", "i"(0))
STORE(op_store_reg8, "mov %b1,%0", "q"(0xa5UL))
STORE(op_store_ah, "mov %h1,%0", "Q"(0xc3d4UL))
STORE(op_store_imm8_at3, "movb $0x77,3(%1)", "r"(PTR))
STORE(op_store_imm16, "movw $0x1234,%0", "i"(0))
STORE(op_store_reg16, "mov %w1,%0", "r"(0xbeefUL))
STORE(op_store_reg16_at2, "mov %w1,2(%2)", "r"(0xcafeUL), "r"(PTR))
STORE(op_store_imm32, "movl $0x89abcdef,%0", "i"(0))
STORE(op_store_reg32, "mov %k1,%0", "r"(0xfeedf00dUL))
STORE(op_store_reg32_at4, "mov %k1,4(%2)", "r"(0x13572468UL), "r"(PTR))
STORE(op_store_imm64, "movq $-2,%0", "i"(0))
STORE(op_store_reg64, "mov %1,%0", "r"(0x0123456789abcdefUL))
STORE(op_store_indexed, "mov %1,(%2,%3,8)", "r"(0x0fedcba987654321UL), "r"(&area[0]), "r"(1UL))
STORE(op_movnti, "movnti %1,%0", "r"(0x5555aaaa5555aaaaUL))
STORE(op_sete, "cmp %1,%1\n\tsete %0", "r"(7UL))

/* -- the word as a stack slot -------------------------------------------------------------- */
__attribute__((noinline)) unsigned long op_push_reg(void) {
    __asm__ volatile("mov %%rsp,%%r11\n\tmov %1,%%rsp\n\tpush %2\n\tmov %%r11,%%rsp"
                     : "+m"(WORD)
                     : "r"(&area[2]), "r"(0x7777666655554444UL)
                     : "r11", "memory");
    return 0;
}

__attribute__((noinline)) unsigned long op_push_imm(void) {
    __asm__ volatile("mov %%rsp,%%r11\n\tmov %1,%%rsp\n\tpush $-3\n\tmov %%r11,%%rsp"
                     : "+m"(WORD)
                     : "r"(&area[2])
                     : "r11", "memory");
    return 0;
}

__attribute__((noinline)) unsigned long op_pop_reg(void) {
    unsigned long got;
    __asm__ volatile("mov %%rsp,%%r11\n\tmov %1,%%rsp\n\tpop %0\n\tmov %%r11,%%rsp"
                     : "=&r"(got)
                     : "r"(&area[1]), "m"(WORD)
                     : "r11", "memory");
    return got;
}

/* -- string instructions ------------------------------------------------------------------- */
__attribute__((noinline)) unsigned long op_stosq(void) {
    void *p = (void *)&area[1];
    __asm__ volatile("stosq" : "+D"(p), "+m"(WORD) : "a"(0x2468ace013579bdfUL) : "memory");
    return 0;
}

__attribute__((noinline)) unsigned long op_rep_stosb(void) { /* 16 bytes from area[0] + 4 */
    void *p = (char *)&area[0] + 4;
    unsigned long n = 16;
    __asm__ volatile("rep stosb" : "+D"(p), "+c"(n), "+m"(WORD) : "a"(0x3cUL) : "memory");
    return 0;
}

__attribute__((noinline)) unsigned long op_rep_stosl(void) { /* 2 elements at area[1] */
    void *p = (void *)&area[1];
    unsigned long n = 2;
    __asm__ volatile("rep stosl" : "+D"(p), "+c"(n), "+m"(WORD) : "a"(0x600dcafeUL) : "memory");
    return 0;
}

__attribute__((noinline)) unsigned long op_movsq_store(void) {
    void *d = (void *)&area[1], *s = source;
    __asm__ volatile("movsq" : "+D"(d), "+S"(s), "+m"(WORD) : : "memory");
    return 0;
}

__attribute__((noinline)) unsigned long op_movsq_load(void) {
    void *d = dest, *s = (void *)&area[1];
    __asm__ volatile("movsq" : "+D"(d), "+S"(s) : "m"(WORD) : "memory");
    return 0;
}

__attribute__((noinline)) unsigned long op_lodsq(void) {
    void *s = (void *)&area[1];
    unsigned long got;
    __asm__ volatile("lodsq" : "=a"(got), "+S"(s) : "m"(WORD) : "memory");
    return got;
}

/* -- read-modify-write and atomics -------------------------------------------------------- */
__attribute__((noinline)) unsigned long op_cmpxchg_ok(void) { /* expects what is there */
    unsigned long expected = peeks[npeeks - 1];
    __asm__ volatile("lock cmpxchg %2,%0"
                     : "+m"(WORD), "+a"(expected)
                     : "r"(0x00c0ffee00c0ffeeUL)
                     : "memory", "cc");
    return expected;
}

__attribute__((noinline)) unsigned long op_cmpxchg_fail32(void) {
    unsigned long expected = ~peeks[npeeks - 1] & 0xffffffffUL;
    __asm__ volatile("lock cmpxchg %k2,%0"
                     : "+m"(WORD), "+a"(expected)
                     : "r"(0x11111111UL)
                     : "memory", "cc");
    return expected;
}

__attribute__((noinline)) unsigned long op_cmpxchg16b(void) { /* area[0..1], expects them */
    unsigned long lo = area[0], hi = peeks[npeeks - 1];
    __asm__ volatile("lock cmpxchg16b %0"
                     : "+m"(*(volatile wide *)area), "+a"(lo), "+d"(hi)
                     : "b"(0x0bUL), "c"(0x0c0c0c0c0c0c0c0cUL)
                     : "memory", "cc");
    return hi;
}

__attribute__((noinline)) unsigned long op_xchg(void) {
    unsigned long v = 0x9999888877776666UL;
    __asm__ volatile("xchg %1,%0" : "+m"(WORD), "+r"(v) : : "memory");
    return v;
}

__attribute__((noinline)) unsigned long op_xadd32(void) {
    unsigned long v = 0x10;
    __asm__ volatile("lock xadd %k1,%0" : "+m"(WORD), "+r"(v) : : "memory", "cc");
    return v & 0xffffffffUL;
}

STORE(op_store_pattern, "mov %1,%0", "r"(0xf1e2d3c4b5a69788UL)) /* sign bits set in each part */
STORE(op_addb, "addb $3,%0", "i"(0))
STORE(op_lock_addq, "lock addq %1,%0", "r"(0x100UL))

/* -- SIMD ---------------------------------------------------------------------------------- */
__attribute__((noinline)) unsigned long op_sse_store(void) {
    __asm__ volatile("pcmpeqd %%xmm0,%%xmm0\n\tmovq %%xmm0,%0" : "+m"(WORD) : : "xmm0", "memory");
    return 0;
}

__attribute__((noinline)) unsigned long op_sse_load(void) {
    __asm__ volatile("movq %0,%%xmm1" : : "m"(WORD) : "xmm1");
    return 0;
}

/* -- loads --------------------------------------------------------------------------------- */
#define LOAD(name, body, ...)                                                                  \
    __attribute__((noinline)) unsigned long name(void) {                                     \
        unsigned long got = 0;                                                                \
        __asm__ volatile(body : "+Q"(got) : "m"(WORD), ##__VA_ARGS__ : "memory", "cc");       \
        return got;                                                                           \
    }
LOAD(op_movzbl, "movzbl %1,%k0")
LOAD(op_movsbl, "movsbl %1,%k0")
LOAD(op_movzwl, "movzwl %1,%k0")
LOAD(op_movswl, "movswl %1,%k0")
LOAD(op_movslq, "movslq %1,%0")
LOAD(op_load32, "mov %1,%k0")
LOAD(op_load64, "mov %1,%0")
LOAD(op_load_ah, "mov %1,%h0")
LOAD(op_load_at4, "mov 4(%2),%k0", "r"(PTR))
LOAD(op_cmove, "cmp %0,%0\n\tcmove %1,%0")
LOAD(op_cmovne, "cmp %0,%0\n\tcmovne %1,%0")

__attribute__((noinline)) unsigned long op_load_own_base(void) { /* mov (%reg),%reg */
    unsigned long got;
    __asm__ volatile("mov (%0),%0" : "=r"(got) : "0"(&area[1]), "m"(WORD) : "memory");
    return got;
}

__attribute__((noinline)) unsigned long op_cmp_equal(void) { /* ZF=1: the word equals %1 */
    unsigned long v = peeks[npeeks - 1];
    __asm__ volatile("cmp %1,%0" : : "m"(WORD), "r"(v) : "cc");
    return v;
}

__attribute__((noinline)) unsigned long op_cmp_differ(void) {
    __asm__ volatile("cmpq $0x2a,%0" : : "m"(WORD) : "cc");
    return 0;
}

#define OP(name) {#name + 3, name}
static const struct {
    const char *name;
    op_fn fn;
} ops[] = {
    OP(op_store_imm8), OP(op_store_reg8), OP(op_store_ah), OP(op_store_imm8_at3),
    OP(op_store_imm16), OP(op_store_reg16), OP(op_store_reg16_at2), OP(op_store_imm32),
    OP(op_store_reg32), OP(op_store_reg32_at4), OP(op_store_imm64), OP(op_store_reg64),
    OP(op_store_indexed), OP(op_movnti), OP(op_sete), OP(op_push_reg), OP(op_push_imm),
    OP(op_pop_reg), OP(op_stosq), OP(op_rep_stosb), OP(op_rep_stosl), OP(op_movsq_store),
    OP(op_movsq_load), OP(op_lodsq), OP(op_cmpxchg_ok), OP(op_cmpxchg_fail32),
    OP(op_cmpxchg16b), OP(op_xchg), OP(op_xadd32), OP(op_addb), OP(op_lock_addq),
    OP(op_sse_store), OP(op_sse_load), OP(op_store_pattern), OP(op_movzbl), OP(op_movsbl), OP(op_movzwl),
    OP(op_movswl), OP(op_movslq), OP(op_load32), OP(op_load64), OP(op_load_ah), OP(op_load_at4),
    OP(op_cmove), OP(op_cmovne), OP(op_load_own_base), OP(op_cmp_equal), OP(op_cmp_differ),
};
#define NOPS (sizeof ops / sizeof ops[0])

static void run_ops(void) {
    unsigned long before[NOPS], after[NOPS], got[NOPS];
    npeeks = 0;
    for (unsigned i = 0; i < NOPS; i++) {
        before[i] = peek();
        got[i] = ops[i].fn();
        after[i] = peek();
    }
    for (unsigned i = 0; i < NOPS; i++)
        printf("op %s %lx %lx %lx\n", ops[i].name, before[i], after[i], got[i]);
    for (int i = 0; i < npeeks; i++)
        printf("peek %lx\n", peeks[i]);
    printf("done\n");
    fflush(stdout);
}

int main(void) {
    char c;
    printf("pid %d addr %p\n", getpid(), (void *)&area[1]);
    fflush(stdout);
    while (read(0, &c, 1) == 1)
        run_ops();
    return 0;
}
