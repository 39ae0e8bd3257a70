#include "knetlab/kernel/programs.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <thread>
#include <tuple>

#include "knetlab/kernel/netns.h"
#include "knetlab/util/error.h"

extern char** environ;

namespace knl {

namespace {

// A program's child, made by clone(CLONE_VM | CLONE_VFORK): it shares our
// memory until it execs, and we wait meanwhile. It makes system calls only,
// with every string prepared before the clone.
struct ProgramChild {
  int netns_fd = -1, in_fd = -1, out_fd = -1, err_fd = -1;
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  std::vector<std::pair<const char*, const char*>> binds;
};

int program_child(void* arg) {
  auto* c = static_cast<ProgramChild*>(arg);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);  // knetlab ignores it; the program should not
  if (c->netns_fd >= 0 && ::setns(c->netns_fd, CLONE_NEWNET) != 0) ::_exit(126);
  if (!c->binds.empty()) {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      ::_exit(126);
    for (const auto& [from, to] : c->binds)
      if (::mount(from, to, nullptr, MS_BIND, nullptr) != 0) ::_exit(126);
  }
  // dup2 onto itself keeps close-on-exec: a process with 0-2 closed gets
  // its pipes there.
  for (auto [from, to] : {std::pair{c->in_fd, 0}, std::pair{c->out_fd, 1}, std::pair{c->err_fd, 2}})
    if (from == to ? ::fcntl(from, F_SETFD, 0) != 0 : ::dup2(from, to) < 0) ::_exit(126);
  ::execve(c->path, c->argv, c->envp);
  ::_exit(127);
}

// `program` looked up in PATH as execvp would; itself when it has a '/' or
// is nowhere (execve then fails with 127).
std::string on_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    auto end = std::min(dirs.find(':', start), dirs.size());
    auto candidate = dirs.substr(start, end - start) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return program;
}

}  // namespace

ProgramResult run_program(const std::string& netns, const std::vector<std::string>& argv,
                          const std::string& input) {
  return run_program(ProgramCall{netns, argv, input});
}

ProgramResult run_program(const ProgramCall& call) {
  const auto& argv = call.argv;
  const auto& netns = call.netns;
  Fd ns = netns.empty() ? Fd() : open_netns(netns);
  int in[2], out[2], err[2] = {-1, -1};
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
      (call.split_stderr && ::pipe2(err, O_CLOEXEC) != 0))
    throw errno_error("create pipe", argv[0], netns, errno);
  Fd in_read(in[0]), in_write(in[1]), out_read(out[0]), out_write(out[1]), err_read(err[0]),
      err_write(err[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e; ++e) env.push_back(*e);
  for (const auto& e : call.env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);
  const auto path = on_path(argv[0]);
  ProgramChild child{ns.get(),        in_read.get(),
                     out_write.get(), call.split_stderr ? err_write.get() : out_write.get(),
                     path.c_str(),    args.data(),
                     env.data(),      {}};
  for (const auto& [from, to] : call.binds) child.binds.emplace_back(from.c_str(), to.c_str());
  // A child of a large process (the supervisor of a big lab) made by fork()
  // would copy its page tables first.
  constexpr size_t kStack = 64 * 1024;
  thread_local std::vector<char> stack(kStack);
  auto top = reinterpret_cast<uintptr_t>(stack.data() + kStack) & ~uintptr_t{15};
  pid_t pid = ::clone(program_child, reinterpret_cast<void*>(top), CLONE_VM | CLONE_VFORK | SIGCHLD,
                      &child);
  if (pid < 0) throw errno_error("clone", argv[0], netns, errno);
  in_read.reset(), out_write.reset(), err_write.reset();
  ProgramResult result;
  const auto deadline = std::chrono::steady_clock::now() + call.timeout;
  size_t written = 0;
  pollfd fds[3] = {{out_read.get(), POLLIN, 0}, {in_write.get(), POLLOUT, 0}, {-1, POLLIN, 0}};
  if (call.input.empty()) in_write.reset();
  while (out_read || err_read) {
    fds[0].fd = out_read ? out_read.get() : -1;
    fds[1].fd = in_write ? in_write.get() : -1;
    fds[2].fd = err_read ? err_read.get() : -1;
    int wait_ms = -1;
    if (call.timeout.count() > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ::kill(pid, SIGKILL);
        result.timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(left.count());
    }
    if (::poll(fds, 3, wait_ms) < 0 && errno != EINTR) break;
    if (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) {
      // A program that stopped reading: EPIPE (knetlab ignores SIGPIPE).
      auto n = ::write(in_write.get(), call.input.data() + written, call.input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 || written == call.input.size()) in_write.reset();
    }
    for (auto [i, fd, to] :
         {std::tuple{0, &out_read, &result.output}, std::tuple{2, &err_read, &result.errors}}) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      auto n = ::read(fd->get(), buf, sizeof buf);
      if (n <= 0)
        fd->reset();
      else
        to->append(buf, static_cast<size_t>(n));
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

namespace {

class MachinePrograms final : public Programs {
 public:
  ProgramResult run(const ProgramCall& call) override { return run_program(call); }
  std::vector<ProgramResult> run_all(const std::vector<ProgramCall>& calls) override {
    std::vector<ProgramResult> results(calls.size());
    std::vector<std::exception_ptr> failures(calls.size());
    {
      std::vector<std::jthread> threads;
      for (size_t i = 0; i < calls.size(); ++i)
        threads.emplace_back([&, i] {
          try {
            results[i] = run(calls[i]);
          } catch (...) {
            failures[i] = std::current_exception();
          }
        });
    }
    for (const auto& f : failures)
      if (f) std::rethrow_exception(f);
    return results;
  }
};

}  // namespace

std::unique_ptr<Programs> make_programs() {
  return std::make_unique<MachinePrograms>();
}

}  // namespace knl
