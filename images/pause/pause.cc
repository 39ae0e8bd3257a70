// pause: holds a pod's namespaces. As PID 1 of the pod it reaps every orphan
// that is re-parented to it, and it sleeps until SIGTERM or SIGINT, like
// Kubernetes' pause container. knetlab sets up the namespaces before exec.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int main() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGTERM || sig == SIGINT) return 0;
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
}
