#pragma once
// FRR at run time: asking an instance through vtysh, and waiting until BGP
// has converged (every session Established, every expected route in every
// kernel), which deploy does before it calls a lab ready.

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "knetlab/kernel/kernel.h"
#include "knetlab/kernel/programs.h"
#include "knetlab/plan/plan.h"

namespace knl {

/// Runs vtysh against `frr`'s daemons, one `-c` per command; returns what it
/// printed. Throws SystemError when vtysh fails (a daemon that is down).
std::string run_vtysh(Programs& programs, const FrrPlan& frr,
                      const std::vector<std::string>& commands);

/// Each configured peer's address and BGP state ("Established", "Active"...).
std::map<std::string, std::string> bgp_sessions(Programs& programs, const FrrPlan& frr);

/// Routes by FrrPlan::target, on top of FrrPlan::expected.
using ExtraRoutes = std::map<std::string, std::vector<std::pair<Ipv4Net, std::string>>>;

/// Returns once every instance's expected routes (and those `extra` returns,
/// asked again every round: what the nodes announce may still change) are
/// in its namespace's kernel and all its sessions are Established. At
/// `deadline` throws SystemError naming the router or node, the missing
/// route or the peer that is not up, and its log.
void wait_for_bgp(Kernel& kernel, Programs& programs, const Plan& plan,
                  const std::function<ExtraRoutes()>& extra,
                  std::chrono::steady_clock::time_point deadline);

}  // namespace knl
