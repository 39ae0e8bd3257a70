#include "knetlab/kernel/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <algorithm>
#include <atomic>
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

namespace {

// Makes the files that namespaces are bound to: the first is created, the
// others are hard links to it, since a link only adds a name to /run/netns
// where a new file would cost an inode (slow to find on some file systems
// right after a lab was destroyed). `file[i]` says whether names[i]'s was
// made. EEXIST if a name is taken.
void make_mount_points(const std::vector<std::string>& names, std::vector<char>& file) {
  std::string anchor;
  for (size_t i = 0; i < names.size(); ++i) {
    auto path = netns_path(names[i]);
    if (!anchor.empty() && ::link(anchor.c_str(), path.c_str()) != 0) {
      if (errno == EEXIST) throw errno_error("create network namespace", names[i], "", errno);
      anchor.clear();  // EMLINK, or a file system without hard links: a file of its own
    }
    if (anchor.empty()) {
      Fd created(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
      if (!created) throw errno_error("create network namespace", names[i], "", errno);
      anchor = path;
    }
    file[i] = 1;
  }
}

// Moves the calling thread into a new network namespace and binds it to its
// name's file: only for threads that are thrown away afterwards.
void create_one(const std::string& name, const std::function<void()>& inside) {
  auto path = netns_path(name);
  try {
    if (::unshare(CLONE_NEWNET) != 0)
      throw errno_error("create network namespace", name, "", errno);
    if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0)
      throw errno_error("bind-mount network namespace", path, "", errno);
    inside();
  } catch (...) {
    ::umount2(path.c_str(), MNT_DETACH);
    throw;
  }
}

}  // namespace

void run_on_own_threads(size_t count, const std::function<void(size_t)>& work,
                        const std::function<void(size_t)>& on_start, size_t max_threads) {
  const size_t threads = std::min<size_t>(
      count, max_threads ? max_threads : std::max(1U, std::thread::hardware_concurrency()));
  std::atomic<size_t> next = 0;
  std::atomic<bool> stop = false;
  std::mutex failure_mutex;
  std::exception_ptr failure;
  auto loop = [&](size_t thread) {
    if (on_start) on_start(thread);
    for (size_t i = 0; !stop && (i = next++) < count;) {
      try {
        work(i);
      } catch (...) {
        std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        stop = true;
      }
    }
  };
  {
    std::vector<std::jthread> pool;
    for (size_t t = 0; t < threads; ++t) pool.emplace_back(loop, t);
  }
  if (failure) std::rethrow_exception(failure);
}

void create_named_netns(const std::vector<std::string>& names,
                        const std::function<void(size_t)>& inside,
                        const std::function<void(size_t)>& made, std::vector<bool>& created) {
  prepare_netns_dir();
  std::vector<char> file(names.size(), 0), done(names.size(), 0);
  std::exception_ptr failure;
  try {
    // Every file exists before a namespace is bound to one: a link to a
    // file that has a namespace bound to it would cross into nsfs (EXDEV).
    make_mount_points(names, file);
    auto make = [&](size_t i) {
      create_one(names[i], [&] { inside(i); });
      done[i] = 1;
    };
    if (!made) {
      run_on_own_threads(names.size(), make);
    } else {
      // What `made` does for a pod (its links) holds the kernel's rtnl lock
      // most of the time; most of making a namespace does not: so threads
      // make namespaces while this one wires them, rather than each thread
      // making and wiring in turn and spinning on the lock the other holds.
      std::mutex mutex;
      std::condition_variable ready_or_over;
      std::vector<size_t> ready;
      bool over = false;
      std::atomic<bool> stop = false;
      std::exception_ptr makers_failure;
      std::jthread makers([&] {
        try {
          const size_t cores = std::max(1U, std::thread::hardware_concurrency());
          run_on_own_threads(
              names.size(),
              [&](size_t i) {
                if (stop) throw SystemError("create network namespace: stopped", ECANCELED);
                make(i);
                std::lock_guard lock(mutex);
                ready.push_back(i);
                ready_or_over.notify_one();
              },
              {}, std::max<size_t>(1, cores - 1));
        } catch (...) {
          makers_failure = std::current_exception();
        }
        std::lock_guard lock(mutex);
        over = true;
        ready_or_over.notify_one();
      });
      try {
        for (size_t next = 0;;) {
          size_t i = 0;
          {
            std::unique_lock lock(mutex);
            ready_or_over.wait(lock, [&] { return next < ready.size() || over; });
            if (next == ready.size()) break;
            i = ready[next++];
          }
          made(i);
        }
      } catch (...) {
        stop = true;
        makers.join();
        throw;
      }
      makers.join();
      if (makers_failure) std::rethrow_exception(makers_failure);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  for (size_t i = 0; i < names.size(); ++i)
    if (file[i] && !done[i]) ::unlink(netns_path(names[i]).c_str());
  created.assign(done.begin(), done.end());
  if (failure) std::rethrow_exception(failure);
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
