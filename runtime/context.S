/* SPDX-License-Identifier: BSD-3-Clause */
/* x86-64 context switch for blocking events: the callee-saved registers
 * go on the stack; one store and one load of rsp.
 *
 * The MXCSR and x87 control words are not switched: saving them alone
 * (stmxcsr, fnstcw) cost half of a save + activate pair here (~25 of
 * ~75 ns). They are per core, not per event: an event that changes the
 * rounding mode or exception masks restores them before it blocks or
 * returns (docs/runtime.md). */

	.text

/* Push the callee-saved registers, then store rsp in *rdi.
 * ebb_ctx_switch's restore path pops them in reverse. */
.macro SAVE_TO_RDI
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)
.endm

/* void ebb_ctx_switch(void **save_sp, void *new_sp) */
	.globl	ebb_ctx_switch
	.type	ebb_ctx_switch, @function
ebb_ctx_switch:
	.cfi_startproc
	SAVE_TO_RDI
	movq	%rsi, %rsp
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
