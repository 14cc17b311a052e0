/* x86-64 instructions whose gdb 13 text is pasted into tests/unit/test_classify.py. */
	.data
	.globl counter
counter: .byte 0
	.text
	.globl insns64
insns64:
	movb $0x1,(%rax)
	movb (%rax),%al
	mov counter(%rip),%eax
	movl $0x1,counter(%rip)
	cmpb $0x0,(%rdi)
	testb $0x1,(%rdi)
	test %al,(%rdi)
	addb $0x0,(%rax)
	incb (%rdx)
	lock incb (%rdx)
	lock addl $0x1,counter(%rip)
	xchg %al,(%rdi)
	xchg (%rdi),%al
	xchgb (%rdi),%al
	lock xadd %eax,(%rdi)
	xadd %al,(%rdi)
	lock cmpxchg %cl,(%rdi)
	cmpxchg8b (%rdi)
	lock cmpxchg16b (%rdi)
	bts %eax,(%rdi)
	btsl $0x3,(%rdi)
	bt %eax,(%rdi)
	btl $0x3,(%rdi)
	sete (%rdi)
	setne 0x10(%rsp)
	cmove (%rdi),%eax
	cmovne 0x8(%rsp),%rax
	mov %rax,(%rdi)
	mov (%rdi),%rax
	movq %xmm0,(%rdi)
	movq (%rdi),%xmm0
	movdqu %xmm0,(%rdi)
	movdqu (%rdi),%xmm0
	movaps %xmm1,0x10(%rsp)
	movaps 0x10(%rsp),%xmm1
	pcmpeqb (%rdi),%xmm0
	vmovdqu %ymm0,(%rdi)
	vmovdqu (%rdi),%ymm0
	vpcmpeqb (%rdi),%ymm1,%ymm0
	vpcmpeqb (%rdi),%xmm1,%xmm0
	vmovdqu64 %zmm0,(%rdi)
	movzbl (%rdi),%eax
	movsbl (%rdi),%eax
	movzbl counter(%rip),%eax
	movsbq (%rdi),%rax
	movslq (%rdi),%rax
	pextrb $0x0,%xmm0,(%rdi)
	vextracti128 $0x1,%ymm0,(%rdi)
	movntdq %xmm0,(%rdi)
	movnti %eax,(%rdi)
	push %rbp
	pop %rbp
	push (%rdi)
	pushq 0x8(%rax)
	pop (%rdi)
	popq 0x8(%rax)
	push $0x1
	call insns64
	call *0x8(%rax)
	call *%rax
	call *counter(%rip)
	jmp *0x8(%rax)
	jmp *%rax
	notrack jmp *%rax
	ret
	ret $0x10
	leave
	movsb
	movsw
	movsl
	movsq
	rep movsb
	rep movsq
	stosb
	rep stosb
	rep stosq
	stosl
	lodsb
	rep lodsb
	lodsq
	scasb
	repne scasb
	repz scasb
	cmpsb
	repz cmpsb
	repnz cmpsq
	insb
	rep insb
	outsb
	rep outsb
	movsb %ds:(%rsi),%es:(%rdi)
	stos %al,%es:(%rdi)
	lods %ds:(%rsi),%al
	scas %es:(%rdi),%al
	cmpsb %es:(%rdi),%ds:(%rsi)
	xlat
	maskmovdqu %xmm1,%xmm0
	nopw 0x0(%rax,%rax,1)
	nopl 0x0(%rax)
	nopw %cs:0x0(%rax,%rax,1)
	.byte 0x66,0x66,0x2e,0x0f,0x1f,0x84,0x00,0x00,0x00,0x00,0x00  /* data16 nopw %cs:... */
	nop
	lea 0x8(%rdi),%rax
	lea counter(%rip),%rax
	prefetcht0 (%rdi)
	prefetchnta (%rdi)
	prefetchw (%rdi)
	clflush (%rdi)
	clflushopt (%rdi)
	fldl (%rdi)
	flds (%rdi)
	fstpl (%rdi)
	fstps (%rdi)
	fstl (%rdi)
	fistpl (%rdi)
	fildl (%rdi)
	fadds (%rdi)
	fnstcw (%rdi)
	fldcw (%rdi)
	fnstsw (%rdi)
	stmxcsr (%rdi)
	ldmxcsr (%rdi)
	fxsave (%rdi)
	fxrstor (%rdi)
	mov %fs:0x28,%rax
	sub %fs:0x28,%rdx
	mov %rax,%fs:0x0
	mov %fs:(%rax),%al
	mov %gs:0x10,%rax
	negb (%rdi)
	notb (%rdi)
	shlb (%rdi)
	shlb $0x3,(%rdi)
	sarl %cl,(%rdi)
	rolb (%rdi)
	rcrb $0x2,(%rdi)
	adc %al,(%rdi)
	sbb %al,(%rdi)
	and %al,(%rdi)
	or %al,(%rdi)
	xor %al,(%rdi)
	or (%rdi),%al
	add (%rdi),%al
	sub (%rdi),%al
	andn (%rdi),%eax,%ecx
	shld $0x3,%eax,(%rdi)
	shrd %cl,%eax,(%rdi)
	decw (%rdi)
	imul (%rdi),%eax
	imul $0x3,(%rdi),%eax
	mulb (%rdi)
	divb (%rdi)
	idivl (%rdi)
	crc32b (%rdi),%eax
	popcnt (%rdi),%eax
	bsf (%rdi),%eax
	cmpw $0x1,(%rdi,%rcx,2)
	movb $0x1,0x10(%rdi,%rcx,1)
	movb $0x1,-0x10(%rbp)
	movb %al,0x1234
	movabs %al,0x1122334455667788
	movabs 0x1122334455667788,%al
	movups %xmm0,(%rdi)
	vmovups %xmm0,(%rdi)
	movhps %xmm0,(%rdi)
	movhps (%rdi),%xmm0
	movlpd %xmm0,(%rdi)
	movd %xmm0,(%rdi)
	movd (%rdi),%xmm0
	vpbroadcastb (%rdi),%ymm0
	vpmaskmovd %ymm0,%ymm1,(%rdi)
	vmaskmovps %ymm0,%ymm1,(%rdi)
	vpmaskmovd (%rdi),%ymm1,%ymm0
	cvtsi2sdl (%rdi),%xmm0
	addsd (%rdi),%xmm0
	vaddps (%rdi),%ymm1,%ymm0
	vfmadd231ps (%rdi),%ymm1,%ymm0
	ucomisd (%rdi),%xmm0
	comiss (%rdi),%xmm0
	ptest (%rdi),%xmm0
	movbe (%rdi),%eax
	movbe %eax,(%rdi)
	cmpxchg %rcx,(%rdi)
	xchg %rax,(%rdi)
	incl counter(%rip)
	incq 0x8(%rsp)

	enter $0x10,$0x0
	pushf
	popf
	lgdt (%rdi)
	sgdt (%rdi)
	verr (%rdi)
	str (%rdi)
	sldt (%rdi)
	bndmk (%rdi),%bnd0
	bnd jmp *%rax
	bnd ret
	xbegin .
	invlpg (%rdi)
	cmpxchgl %eax,counter
	.byte 0x40,0xa4  /* rex movsb */
	.byte 0x67,0xa4  /* addr32 movsb */
	.byte 0xf3,0x67,0xaa  /* rep addr32 stos */
	.byte 0x66,0xf3,0xa5  /* data16 rep movs */
	.byte 0x64,0xa4  /* fs movsb */
	.byte 0x3e,0xff,0xe0  /* notrack jmp */
	.byte 0xf0,0x48,0x0f,0xb1,0x0f  /* lock cmpxchg */
	.byte 0x40,0x88,0x07  /* rex mov */
	.byte 0x06  /* bad in 64-bit */
	endbr64
	syscall
	hlt
