// green_jump_fcontext for x86-64 System V ELF (design note in switch.hpp).
//
//   rdi = the frame to resume, rsi = data; returns {rax = the suspended frame, rdx = data}
//   in the resumed context (a fresh make_fcontext frame gets them in rdi/rsi instead, as with
//   Boost: its trampoline calls the entry function with transfer_t{rdi, rsi}).
#include "switch.hpp"

#if GREEN_OWN_SWITCH
// clang-format off
asm(R"(
    .text
    .globl green_jump_fcontext
    .hidden green_jump_fcontext
    .type green_jump_fcontext,@function
    .p2align 4
green_jump_fcontext:
    leaq    -0x38(%rsp), %rsp
    stmxcsr (%rsp)
    fnstcw  0x4(%rsp)
    movq    %r12, 0x8(%rsp)
    movq    %r13, 0x10(%rsp)
    movq    %r14, 0x18(%rsp)
    movq    %r15, 0x20(%rsp)
    movq    %rbx, 0x28(%rsp)
    movq    %rbp, 0x30(%rsp)
    movq    %rsp, %rax
    movq    %rdi, %rsp
    movl    (%rsp), %ecx
    cmpl    (%rax), %ecx
    jne     1f
2:
    movzwl  0x4(%rsp), %ecx
    cmpw    0x4(%rax), %cx
    jne     3f
4:
    movq    0x8(%rsp), %r12
    movq    0x10(%rsp), %r13
    movq    0x18(%rsp), %r14
    movq    0x20(%rsp), %r15
    movq    0x28(%rsp), %rbx
    movq    0x30(%rsp), %rbp
    leaq    0x38(%rsp), %rsp
    movq    %rsi, %rdx
    movq    %rax, %rdi
    ret
1:
    ldmxcsr (%rsp)
    jmp     2b
3:
    fldcw   0x4(%rsp)
    jmp     4b
    .size green_jump_fcontext,.-green_jump_fcontext
)");
// clang-format on
#endif
