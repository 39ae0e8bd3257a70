#pragma once
// Named network namespaces (/run/netns/NAME, as `ip netns` keeps them) and
// running code inside one. The calling thread's namespaces never change: work
// inside a namespace runs on one dedicated worker thread that enters the
// namespace at the start of every task and runs nothing else.

#include <functional>
#include <string>

#include "knetlab/kernel/fd.h"

namespace knl {

inline constexpr const char* kNetnsDir = "/run/netns";

std::string netns_path(const std::string& name);

/// Opens /run/netns/NAME; throws SystemError naming the namespace.
Fd open_netns(const std::string& name);

/// Creates /run/netns/NAME holding a fresh network namespace and runs
/// `inside` (if any) in it. Fails with EEXIST if the name is taken; on any
/// failure nothing is left.
void create_named_netns(const std::string& name, const std::function<void()>& inside = {});

/// Unmounts and removes /run/netns/NAME; a missing one is not an error.
void delete_named_netns(const std::string& name);

bool netns_exists(const std::string& name);

/// Runs `work` on the worker thread entered into the namespace `netns_fd`;
/// rethrows what `work` throws. Calls from several threads take turns.
void run_in_netns(int netns_fd, const std::function<void()>& work);

}  // namespace knl
