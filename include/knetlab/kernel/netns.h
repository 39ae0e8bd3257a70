#pragma once
// Named network namespaces (/run/netns/NAME, as `ip netns` keeps them) and
// running code inside one. The calling thread's namespaces never change: work
// inside a namespace runs on one dedicated worker thread that enters the
// namespace at the start of every task and runs nothing else, and new
// namespaces are made by threads that end with the creation.

#include <functional>
#include <string>
#include <vector>

#include "knetlab/kernel/fd.h"

namespace knl {

inline constexpr const char* kNetnsDir = "/run/netns";

std::string netns_path(const std::string& name);

/// Opens /run/netns/NAME; throws SystemError naming the namespace.
Fd open_netns(const std::string& name);

/// Creates /run/netns/NAME holding a fresh network namespace for every name,
/// several at a time on threads of their own, and runs `inside(i)` on the
/// thread that is inside names[i]. Then `made(i)`, if given, runs on the
/// calling thread as soon as names[i] is made, while the next ones are being
/// made (by one thread fewer than there are cores: the calling thread is the
/// other). `created[i]` says whether names[i] was made. The names' files are
/// hard links to one inode. After the first failure (EEXIST if a name is
/// taken, or `made` throwing) no further one is started, and the failure is
/// thrown once the others are done; what was not made leaves nothing behind.
void create_named_netns(const std::vector<std::string>& names,
                        const std::function<void(size_t)>& inside,
                        const std::function<void(size_t)>& made, std::vector<bool>& created);

/// Runs work(0) ... work(count - 1) on new threads, one per core (or
/// `max_threads`, if not 0), which end afterwards: `work` may move its thread
/// into other namespaces. Each thread first calls on_start(its number, from
/// 0), if given. After the first failure no further item starts, and the
/// failure is thrown once the items under way are done. Items start in order
/// of their index.
void run_on_own_threads(size_t count, const std::function<void(size_t)>& work,
                        const std::function<void(size_t)>& on_start = {}, size_t max_threads = 0);

/// Unmounts and removes /run/netns/NAME; a missing one is not an error.
void delete_named_netns(const std::string& name);

bool netns_exists(const std::string& name);

/// Runs `work` on the worker thread entered into the namespace `netns_fd`;
/// rethrows what `work` throws. Calls from several threads take turns.
void run_in_netns(int netns_fd, const std::function<void()>& work);

}  // namespace knl
