// Entry points of hook_block.cpp (calls that would block a worker) used by other hook files.
#pragma once

namespace green::shim {

// fcntl(F_SETLKW / F_OFD_SETLKW): on a fiber, fn(fd, cmd, arg) runs on the offload pool while
// the fiber parks (errno copied back); elsewhere it is called directly.
int block_fcntl_lock(int (*fn)(int, int, ...), int fd, int cmd, void* arg);

// syscall(SYS_futex, a1..a6) from anyone (the syscall hook forwards it): see hook_block.cpp.
long block_futex(long a1, long a2, long a3, long a4, long a5, long a6);

}  // namespace green::shim
