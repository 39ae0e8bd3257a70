#include "knetlab/plan/scheduler.h"

#include <fmt/format.h>

#include <algorithm>

#include "knetlab/util/error.h"

namespace knl {

namespace {

// Addresses a pod CIDR hands to pods: all but the network, cni0's .1 and
// the broadcast address.
size_t pod_room(const Ipv4Net& cidr) {
  return cidr.size() > 3 ? static_cast<size_t>(cidr.size() - 3) : 0;
}

}  // namespace

Scheduler::Scheduler(const std::vector<NodePlan>& nodes) {
  for (const auto& n : nodes) nodes_.push_back({n.name, 0, 0, pod_room(n.pod_cidr), {}});
}

Scheduler Scheduler::of(const Plan& plan) {
  Scheduler s(plan.nodes);
  for (const auto& p : plan.pods)
    s.place(p.node, p.host_network, p.deployment.empty() ? "" : p.namespace_ + "/" + p.deployment);
  return s;
}

Scheduler::Load* Scheduler::find(const std::string& node) {
  auto it =
      std::find_if(nodes_.begin(), nodes_.end(), [&](const Load& l) { return l.name == node; });
  return it == nodes_.end() ? nullptr : &*it;
}

bool Scheduler::place(const std::string& node, bool host_network, const std::string& owner) {
  auto* load = find(node);
  if (!load || (!host_network && load->addressed >= load->room)) return false;
  ++load->pods;
  if (!host_network) ++load->addressed;
  if (!owner.empty()) ++load->owners[owner];
  return true;
}

std::optional<std::string> Scheduler::pick(const std::vector<std::string>& eligible,
                                           bool host_network, const std::string& owner) {
  Load* best = nullptr;
  auto mine = [&](const Load& l) {
    auto it = l.owners.find(owner);
    return owner.empty() || it == l.owners.end() ? size_t{0} : it->second;
  };
  for (auto& load : nodes_) {
    if (!eligible.empty() &&
        std::find(eligible.begin(), eligible.end(), load.name) == eligible.end())
      continue;
    if (!host_network && load.addressed >= load.room) continue;
    if (!best || load.pods < best->pods || (load.pods == best->pods && mine(load) < mine(*best)))
      best = &load;
  }
  if (!best) return std::nullopt;
  place(best->name, host_network, owner);
  return best->name;
}

size_t Scheduler::room(const std::string& node) const {
  for (const auto& load : nodes_)
    if (load.name == node) return load.room;
  return 0;
}

PodAddresses::PodAddresses(const std::vector<NodePlan>& nodes,
                           const std::map<std::string, Ipv4>& last) {
  for (const auto& n : nodes) {
    auto& range = ranges_[n.name];
    range.cidr = n.pod_cidr;
    if (auto it = last.find(n.name); it != last.end()) range.last = it->second;
  }
}

PodAddresses PodAddresses::of(const Plan& plan) {
  PodAddresses a(plan.nodes, plan.cursors.last_pod_ip);
  for (const auto& p : plan.pods)
    if (!p.host_network) a.use(p.node, p.ip);
  return a;
}

void PodAddresses::use(const std::string& node, Ipv4 ip) {
  ranges_[node].used.insert(ip);
}

void PodAddresses::release(const std::string& node, Ipv4 ip) {
  ranges_[node].used.erase(ip);
}

Ipv4 PodAddresses::allocate(const std::string& node) {
  auto& r = ranges_.at(node);
  const uint64_t first = 2, count = r.cidr.size() > 3 ? r.cidr.size() - 3 : 0;
  uint64_t start =
      r.last && r.cidr.contains(*r.last) ? r.last->value - r.cidr.network.value + 1 : first;
  for (uint64_t i = 0; i < count; ++i) {
    auto ip = r.cidr.at(first + (start - first + i) % count);
    if (r.used.insert(ip).second) {
      r.last = ip;
      return ip;
    }
  }
  throw SystemError(fmt::format("node {} has no free pod address left in {}", node, r.cidr.str()),
                    ENOSPC);
}

std::map<std::string, Ipv4> PodAddresses::last() const {
  std::map<std::string, Ipv4> out;
  for (const auto& [node, r] : ranges_)
    if (r.last) out[node] = *r.last;
  return out;
}

}  // namespace knl
