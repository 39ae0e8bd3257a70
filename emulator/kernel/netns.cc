#include "knetlab/kernel/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

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

void create_named_netns(const std::string& name) {
  prepare_netns_dir();
  auto path = netns_path(name);
  Fd file(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!file) throw errno_error("create network namespace", name, "", errno);
  file.reset();
  int err = 0;
  // unshare() changes only the calling thread's namespace; that thread ends here.
  std::thread worker([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      err = errno;
      return;
    }
    auto self = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/ns/net";
    if (::mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) err = errno;
  });
  worker.join();
  if (err) {
    ::unlink(path.c_str());
    throw errno_error("create network namespace", name, "", err);
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
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      if (::setns(netns_fd, CLONE_NEWNET) != 0)
        throw errno_error("enter network namespace", "fd " + std::to_string(netns_fd), "", errno);
      work();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace knl
