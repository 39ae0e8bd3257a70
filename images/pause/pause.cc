// pause: holds a pod's namespaces. As PID 1 of the pod it reaps every orphan
// that is re-parented to it, and it sleeps until SIGTERM or SIGINT, like
// Kubernetes' pause container. knetlab sets up the namespaces before exec.
//
// It is built without libc (-nostdlib, raw system calls): every pod starts it
// at least once, and on virtual machines the C library's start-up probes the
// CPU with cpuid, which traps to the hypervisor.
//
// On x86-64 it is linked in the last 2 MB of the address space, below the
// top of the stack by more than the kernel's stack guard gap, and knetlab
// execs it without address randomization: its code and stack then share one
// page-table page at every level, and each page-table entry written or
// cleared traps to the hypervisor on virtual machines (docs/performance.md).
// Run by hand with randomization, the stack could land on its address
// (rarely) and exec would fail.

#include <asm/unistd.h>
#include <signal.h>

namespace {

long sys(long number, long a = 0, long b = 0, long c = 0, long d = 0) {
  long ret;
#if defined(__x86_64__)
  register long r10 asm("r10") = d;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10)
               : "rcx", "r11", "memory");
#elif defined(__aarch64__)
  register long x8 asm("x8") = number;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  register long x3 asm("x3") = d;
  asm volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  ret = x0;
#else
#error "pause: add the system call convention of this architecture"
#endif
  return ret;
}

constexpr long kWaitNoHang = 1;  // WNOHANG
constexpr long kSigsetSize = 8;  // the kernel's sigset_t

}  // namespace

extern "C" [[noreturn]] void _start() {
  unsigned long waited = (1UL << (SIGCHLD - 1)) | (1UL << (SIGTERM - 1)) | (1UL << (SIGINT - 1));
  sys(__NR_rt_sigprocmask, SIG_BLOCK, reinterpret_cast<long>(&waited), 0, kSigsetSize);
  for (;;) {
    long sig = sys(__NR_rt_sigtimedwait, reinterpret_cast<long>(&waited), 0, 0, kSigsetSize);
    if (sig == SIGTERM || sig == SIGINT) sys(__NR_exit_group, 0);
    while (sys(__NR_wait4, -1, 0, kWaitNoHang, 0) > 0) {
    }
  }
}
