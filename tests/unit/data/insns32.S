/* i386 instructions whose gdb 13 text is pasted into tests/unit/test_classify.py. */
	.data
	.globl counter
counter: .byte 0
	.text
	.globl insns32
insns32:
	movb $0x1,(%eax)
	movl $0x1,counter
	mov counter,%eax
	mov counter,%al
	movzbl counter,%eax
	movl %eax,0x4(%esp)
	mov 0x4(%esp),%eax
	cmpb $0x0,(%edi)
	lock incb (%edx)
	addb $0x0,counter
	xchg %al,(%edi)
	push %ebp
	pop %ebp
	push (%edi)
	pushl 0x8(%eax)
	pop (%edi)
	popl 0x8(%eax)
	call insns32
	call *0x8(%eax)
	call *%eax
	ret
	ret $0x8
	leave
	movsb
	movsl
	rep movsl
	rep stosb
	stosl
	lodsb
	repnz scasb
	repz cmpsb
	xlat
	maskmovdqu %xmm1,%xmm0
	nopw 0x0(%eax,%eax,1)
	fldl (%edi)
	fstpl 0x8(%esp)
	mov %gs:0x14,%eax
	sub %gs:0x14,%edx
	movdqu %xmm0,(%edi)
	vmovdqu %ymm0,(%edi)
	movsbl (%edi),%eax
	mov %gs:0x0,%eax
	cmpxchg8b (%edi)
	pusha
	popa
	push %ds
	.byte 0x67,0xa4 /* addr16 movsb */
	.byte 0x66,0xa5 /* movsw */
	.byte 0xf3,0xc3 /* repz ret */
	.byte 0x8d,0x76,0x00 /* lea 0x0(%esi),%esi */
	.byte 0x8d,0xb4,0x26,0,0,0,0 /* lea 0x0(%esi,%eiz,1),%esi */
	.byte 0x2e,0x8d,0xb4,0x26,0,0,0,0
	.byte 0xf0,0x0f,0xb1,0x0d,0,0,0,0
