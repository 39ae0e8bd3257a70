#include "knetlab/plan/apply_diff.h"

#include <fmt/format.h>

#include <algorithm>

namespace knl {

namespace {

// What of `after` is not in `before`.
template <typename T>
std::vector<T> added(const std::vector<T>& before, const std::vector<T>& after) {
  std::vector<T> out;
  for (const auto& x : after)
    if (std::find(before.begin(), before.end(), x) == before.end()) out.push_back(x);
  return out;
}

template <typename T, typename Key>
const T* find_by(const std::vector<T>& list, const Key& key, auto&& key_of) {
  auto it = std::find_if(list.begin(), list.end(), [&](const T& x) { return key_of(x) == key; });
  return it == list.end() ? nullptr : &*it;
}

bool same_network(const Network& a, const Network& b) {
  return a.cni == b.cni && a.kube_proxy_mode == b.kube_proxy_mode &&
         a.nftables_picker == b.nftables_picker && a.pod_subnet == b.pod_subnet &&
         a.service_subnet == b.service_subnet && a.node_subnet == b.node_subnet &&
         a.node_mask_size == b.node_mask_size && a.node_port_min == b.node_port_min &&
         a.node_port_max == b.node_port_max && a.lb_pool_first == b.lb_pool_first &&
         a.lb_pool_last == b.lb_pool_last && a.load_balancer_mode == b.load_balancer_mode &&
         a.mtu == b.mtu && a.dns_domain == b.dns_domain && a.bgp_or_default() == b.bgp_or_default();
}

// Why `after` is not `before` plus what apply can add; empty when it is.
std::vector<std::string> refusals(const Plan& before, const Plan& after) {
  std::vector<std::string> why;
  if (!same_network(before.network, after.network)) why.push_back("[network]");
  for (const auto& n : before.nodes) {
    auto* m = find_by(after.nodes, n.name, [](const NodePlan& x) { return x.name; });
    if (!m)
      why.push_back("node " + n.name + " is removed");
    else if (m->role != n.role || m->rack != n.rack || m->pod_cidr != n.pod_cidr)
      why.push_back("node " + n.name + " is changed");
  }
  for (const auto& h : before.hosts) {
    auto* m = find_by(after.hosts, h.name, [](const HostPlan& x) { return x.name; });
    if (!m || m->rack != h.rack) why.push_back("host " + h.name + " is removed or moved");
  }
  for (const auto& r : before.routers) {
    auto* m = find_by(after.routers, r.name, [](const RouterPlan& x) { return x.name; });
    if (!m || m->asn != r.asn || m->subnet != r.subnet || m->runs_frr != r.runs_frr)
      why.push_back("rack " + r.name + " is removed or changed");
  }
  for (const auto& p : before.pods) {
    auto* m = find_by(after.pods, p.key(), [](const PodPlan& x) { return x.key(); });
    if (!m) {
      why.push_back("pod " + p.key() + " is not in the file (also when `knetlab scale` added it)");
      continue;
    }
    bool same = m->node == p.node && m->ip == p.ip && m->containers.size() == p.containers.size();
    for (size_t i = 0; same && i < p.containers.size(); ++i)
      same = m->containers[i].argv == p.containers[i].argv;
    if (!same) why.push_back("pod " + p.key() + " is changed");
  }
  if (before.services != after.services)
    why.push_back(before.ingresses.empty() != after.ingresses.empty()
                      ? "[[services]] (the ingress controller's comes and goes with the ingresses)"
                      : "[[services]]");
  // A safety net: whatever else moves a running object (an inserted rack
  // renumbers the spine's links, say).
  auto gone = [&](const auto& b, const auto& a, const char* what) {
    for (const auto& x : b)
      if (std::find(a.begin(), a.end(), x) == a.end()) {
        why.push_back(fmt::format(
            "{} in {} would change (add racks, nodes and hosts after the others)", what, x.netns));
        return;
      }
  };
  gone(before.links, after.links, "a link");
  gone(before.addresses, after.addresses, "an address");
  gone(before.routes, after.routes, "a route");
  gone(before.neighbours, after.neighbours, "a neighbour entry");
  gone(before.fdb, after.fdb, "a forwarding entry");
  if (before.lb_netns != after.lb_netns) why.push_back("the cloud load balancer");
  return why;
}

}  // namespace

Allocations running_allocations(const Plan& running) {
  Allocations kept;
  for (const auto& n : running.nodes) {
    kept.machines["node/" + n.name] = n.ip;
    kept.pod_cidrs[n.name] = n.pod_cidr;
  }
  for (const auto& h : running.hosts) kept.machines["host/" + h.name] = h.ip;
  for (const auto& p : running.pods) kept.pods[p.key()] = {p.node, p.ip};
  kept.cursors = running.cursors;
  return kept;
}

ApplyDiff diff_for_apply(const Plan& running, const Plan& next) {
  ApplyDiff d;
  d.refused = refusals(running, next);
  auto& f = d.fragment;
  f.lab = next.lab, f.file = next.file, f.network = next.network;
  f.run_dir = next.run_dir, f.bin_dir = next.bin_dir;
  f.namespaces = added(running.namespaces, next.namespaces);
  f.links = added(running.links, next.links);
  f.addresses = added(running.addresses, next.addresses);
  f.routes = added(running.routes, next.routes);
  f.neighbours = added(running.neighbours, next.neighbours);
  f.fdb = added(running.fdb, next.fdb);
  f.sysctls = added(running.sysctls, next.sysctls);
  f.files = added(running.files, next.files);  // frr.conf of instances with new peers, too
  f.daemons = added(running.daemons, next.daemons);
  for (const auto& frr : next.frr) {
    const auto* was = find_by(running.frr, frr.target, [](const FrrPlan& x) { return x.target; });
    if (!was) {
      f.frr.push_back(frr);
      continue;
    }
    FrrAdditions more{&frr, added(was->networks, frr.networks), added(was->peers, frr.peers)};
    if (!more.networks.empty() || !more.peers.empty()) d.frr.push_back(std::move(more));
  }
  for (const auto& p : next.pods) {
    const auto* was = find_by(running.pods, p.key(), [](const PodPlan& x) { return x.key(); });
    if (!was) {
      f.pods.push_back(p);
      d.pods.push_back(p.key());
    } else if (was->labels != p.labels) {
      d.relabelled.push_back(p.key());
    }
  }
  d.ingresses = running.ingresses != next.ingresses;
  d.policies = running.network_policies != next.network_policies ||
               running.namespace_labels != next.namespace_labels;
  for (const auto& n : next.nodes)
    if (!find_by(running.nodes, n.name, [](const NodePlan& x) { return x.name; }))
      d.nodes.push_back(n.name);
  for (const auto& h : next.hosts)
    if (!find_by(running.hosts, h.name, [](const HostPlan& x) { return x.name; }))
      d.hosts.push_back(h.name);
  for (const auto& r : next.routers)
    if (!find_by(running.routers, r.name, [](const RouterPlan& x) { return x.name; }))
      d.routers.push_back(r.name);
  return d;
}

}  // namespace knl
