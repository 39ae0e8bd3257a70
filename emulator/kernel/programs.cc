#include "knetlab/kernel/programs.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "knetlab/kernel/netns.h"
#include "knetlab/util/error.h"

namespace knl {

ProgramResult run_program(const std::string& netns, const std::vector<std::string>& argv,
                          const std::string& input) {
  Fd ns = open_netns(netns);
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
    throw errno_error("create pipe", argv[0], netns, errno);
  Fd in_read(in[0]), in_write(in[1]), out_read(out[0]), out_write(out[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw errno_error("fork", argv[0], netns, errno);
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::setns(ns.get(), CLONE_NEWNET) != 0) ::_exit(126);
    ::dup2(in_read.get(), 0), ::dup2(out_write.get(), 1), ::dup2(out_write.get(), 2);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  in_read.reset(), out_write.reset();
  std::string output;
  size_t written = 0;
  pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {in_write.get(), POLLOUT, 0}};
  if (input.empty()) in_write.reset();
  while (true) {
    fds[1].fd = in_write ? in_write.get() : -1;
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) {
      auto n = ::write(in_write.get(), input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 || written == input.size()) in_write.reset();
    }
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      char buf[4096];
      auto n = ::read(out_read.get(), buf, sizeof buf);
      if (n <= 0) break;
      output.append(buf, static_cast<size_t>(n));
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

namespace {

class MachinePrograms final : public Programs {
 public:
  ProgramResult run(const ProgramCall& call) override {
    return run_program(call.netns, call.argv, call.input);
  }
};

}  // namespace

std::unique_ptr<Programs> make_programs() {
  return std::make_unique<MachinePrograms>();
}

}  // namespace knl
