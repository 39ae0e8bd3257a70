#include "knetlab/realize/requirements.h"

#include <fmt/format.h>

#include <filesystem>

#include "knetlab/plan/dns.h"
#include "knetlab/util/error.h"

namespace knl {

void require_machine_support(const Plan& plan, const std::string& file) {
  if (!plan.daemons.empty() && !std::filesystem::exists(plan.daemons.front().argv.front()))
    throw UserError(fmt::format(
        "{}: this lab runs FRRouting ({}), but {} is missing: install it with `apt-get install "
        "frr` (scripts/setup does)",
        file, plan.daemons.front().name, plan.daemons.front().argv.front()));
  for (const auto& pod : plan.pods)
    for (const auto& c : pod.containers)
      if (c.image == kDnsImage && !std::filesystem::exists(c.argv.front()))
        throw UserError(fmt::format(
            "{}: every lab runs the cluster DNS (Knot DNS, pod {}), but {} is missing: install "
            "it with `apt-get install knot` (scripts/setup does)",
            file, pod.key(), c.argv.front()));
  for (const auto& pod : plan.pods)
    if (pod.runs_nginx() && !std::filesystem::exists(pod.containers.front().argv.front()))
      throw UserError(fmt::format(
          "{}: this lab has ingresses or gateways, whose data plane (pod {}) runs nginx, but {} "
          "is missing: "
          "install it with `apt-get install nginx` (scripts/setup does)",
          file, pod.key(), pod.containers.front().argv.front()));
  if (!plan.network_policies.empty() && !std::filesystem::exists("/proc/sys/net/bridge"))
    throw UserError(fmt::format(
        "{}: network policy {} needs the br_netfilter kernel module, so that traffic between "
        "pods of one node passes the node's rules: load it with `modprobe br_netfilter` "
        "(scripts/setup does)",
        file, plan.network_policies.front().key()));
}

}  // namespace knl
