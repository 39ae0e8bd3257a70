#include "knetlab/kernel/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "knetlab/util/error.h"

namespace knl {

std::string netns_path(const std::string& name) {
  return std::string(kNetnsDir) + "/" + name;
}

Fd open_netns(const std::string& name) {
  Fd fd(::open(netns_path(name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw errno_error("open network namespace", netns_path(name), "", errno);
  return fd;
}

bool netns_exists(const std::string& name) {
  struct stat st;
  return ::stat(netns_path(name).c_str(), &st) == 0;
}

namespace {

// /run/netns must be a shared mount point so that bind mounts made here are
// seen by every mount namespace that shares it, as `ip netns add` sets it up.
void prepare_netns_dir() {
  static std::once_flag once;
  static int error = 0;
  std::call_once(once, [] {
    if (::mkdir(kNetnsDir, 0755) != 0 && errno != EEXIST) {
      error = errno;
      return;
    }
    if (::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return;
    if (errno != EINVAL) {
      error = errno;
      return;
    }
    // Not a mount point yet: bind it onto itself, then share it.
    if (::mount(kNetnsDir, kNetnsDir, "none", MS_BIND | MS_REC, nullptr) != 0 ||
        ::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) != 0)
      error = errno;
  });
  if (error) throw errno_error("prepare", kNetnsDir, "", error);
}

}  // namespace

namespace {

// The one thread that does namespace work: every task first enters the
// namespace it needs, so the thread's own namespace never matters and no
// other code ever runs on it. Reusing it saves a thread creation per call.
class NamespaceWorker {
 public:
  static NamespaceWorker& instance() {
    static NamespaceWorker worker;
    return worker;
  }

  void run(const std::function<void()>& task) {
    std::unique_lock lock(call_);
    std::exception_ptr failure;
    {
      std::unique_lock state(mutex_);
      task_ = &task;
      failure_ = &failure;
      wake_.notify_one();
      done_.wait(state, [&] { return task_ == nullptr; });
    }
    if (failure) std::rethrow_exception(failure);
  }

  ~NamespaceWorker() {
    {
      std::lock_guard state(mutex_);
      stop_ = true;
      wake_.notify_one();
    }
    thread_.join();
  }

 private:
  NamespaceWorker() : thread_([this] { loop(); }) {}

  void loop() {
    std::unique_lock state(mutex_);
    for (;;) {
      wake_.wait(state, [&] { return stop_ || task_ != nullptr; });
      if (stop_) return;
      try {
        (*task_)();
      } catch (...) {
        *failure_ = std::current_exception();
      }
      task_ = nullptr;
      done_.notify_one();
    }
  }

  std::mutex call_, mutex_;
  std::condition_variable wake_, done_;
  const std::function<void()>* task_ = nullptr;
  std::exception_ptr* failure_ = nullptr;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

void create_named_netns(const std::string& name, const std::function<void()>& inside) {
  prepare_netns_dir();
  auto path = netns_path(name);
  Fd file(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!file) throw errno_error("create network namespace", name, "", errno);
  file.reset();
  // unshare() moves only the worker thread into the new namespace.
  try {
    NamespaceWorker::instance().run([&] {
      if (::unshare(CLONE_NEWNET) != 0)
        throw errno_error("create network namespace", name, "", errno);
      if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0)
        throw errno_error("bind-mount network namespace", path, "", errno);
      if (inside) inside();
    });
  } catch (...) {
    ::umount2(path.c_str(), MNT_DETACH);
    ::unlink(path.c_str());
    throw;
  }
}

void delete_named_netns(const std::string& name) {
  auto path = netns_path(name);
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != ENOENT && errno != EINVAL)
    throw errno_error("unmount network namespace", path, "", errno);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw errno_error("remove network namespace", path, "", errno);
}

void run_in_netns(int netns_fd, const std::function<void()>& work) {
  NamespaceWorker::instance().run([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0)
      throw errno_error("enter network namespace", "fd " + std::to_string(netns_fd), "", errno);
    work();
  });
}

}  // namespace knl
