/* SPDX-License-Identifier: BSD-3-Clause */
/* x86-64 context switch for blocking events: callee-saved registers and
 * the FP control words go on the stack; one store and one load of rsp. */

	.text

/* Push the callee-saved registers and the FP control words, then store
 * rsp in *rdi. ebb_ctx_switch's restore path pops them in reverse. */
.macro SAVE_TO_RDI
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
.endm

/* void ebb_ctx_switch(void **save_sp, void *new_sp) */
	.globl	ebb_ctx_switch
	.type	ebb_ctx_switch, @function
ebb_ctx_switch:
	.cfi_startproc
	SAVE_TO_RDI
	movq	%rsi, %rsp
.Lrestore:
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	ebb_ctx_switch, .-ebb_ctx_switch

/* void ebb_ctx_start(void **save_sp, void *stack_top,
 *                    void (*fn)(void *), void *arg)
 * Saves like ebb_ctx_switch, then calls fn(arg) on the 16-byte aligned
 * stack_top. fn never returns. */
	.globl	ebb_ctx_start
	.type	ebb_ctx_start, @function
ebb_ctx_start:
	.cfi_startproc
	SAVE_TO_RDI
	movq	%rsi, %rsp
	xorl	%ebp, %ebp	/* end of the frame chain for debuggers */
	movq	%rcx, %rdi
	callq	*%rdx
	ud2
	.cfi_endproc
	.size	ebb_ctx_start, .-ebb_ctx_start

	.section .note.GNU-stack,"",@progbits
