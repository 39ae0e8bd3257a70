#include "knetlab/plan/services.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "knetlab/plan/plan.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

// Hands out values in order, skipping those taken; throws when none is left.
template <typename T, typename Next>
T next_free(T& cursor, T last, const std::set<T>& taken, Next next, const std::string& what) {
  while (cursor <= last && taken.count(cursor)) cursor = next(cursor);
  if (cursor > last) throw UserError(what);
  T out = cursor;
  cursor = next(cursor);
  return out;
}

}  // namespace

std::vector<ServicePlan> plan_services(const Topology& t) {
  const auto& net = t.network;
  std::set<Ipv4> taken_ips{net.service_subnet.at(1), net.service_subnet.at(10)};
  std::set<int> taken_ports;
  for (const auto& s : t.services) {
    if (auto ip = Ipv4::parse(s.cluster_ip)) taken_ips.insert(*ip);
    for (const auto& p : s.ports)
      if (p.node_port) taken_ports.insert(*p.node_port);
  }
  auto next_ip = [](Ipv4 ip) { return Ipv4{ip.value + 1}; };
  Ipv4 ip_cursor = net.service_subnet.at(11);
  Ipv4 ip_last = net.service_subnet.at(net.service_subnet.size() - 2);
  int port_cursor = net.node_port_min;
  Ipv4 lb_cursor = net.lb_pool_first;

  std::vector<ServicePlan> out;
  for (const auto& s : t.services) {
    ServicePlan sp;
    sp.name = s.name, sp.namespace_ = s.namespace_, sp.type = s.type, sp.selector = s.selector;
    sp.affinity = s.session_affinity == SessionAffinity::client_ip;
    sp.external_local = s.external_traffic_policy == TrafficPolicy::local;
    sp.internal_local = s.internal_traffic_policy == TrafficPolicy::local;
    sp.source_ranges = s.load_balancer_source_ranges;
    sp.external_name = s.external_name;
    if (s.type != ServiceType::external_name) {
      if (s.cluster_ip == "None") {
        sp.headless = true;
      } else if (auto ip = Ipv4::parse(s.cluster_ip)) {
        sp.cluster_ip = *ip;
      } else {
        sp.cluster_ip = next_free(ip_cursor, ip_last, taken_ips, next_ip,
                                  fmt::format("{}: serviceSubnet {} has no address left for "
                                              "service \"{}\"; widen it",
                                              s.where.str(), net.service_subnet.str(), s.name));
      }
    }
    if (s.type == ServiceType::load_balancer)
      sp.load_balancer_ip = next_free(
          lb_cursor, net.lb_pool_last, {}, next_ip,
          fmt::format("{}: loadBalancerPool {}-{} has no address left for service \"{}\"; "
                      "widen it",
                      s.where.str(), net.lb_pool_first.str(), net.lb_pool_last.str(), s.name));
    for (const auto& p : s.ports) {
      ServicePortPlan pp{p.name, p.port, p.target_port, p.target_port_name, 0, p.protocol};
      if (sp.node_ports() && !sp.headless) {
        pp.node_port =
            p.node_port
                ? *p.node_port
                : next_free(
                      port_cursor, net.node_port_max, taken_ports, [](int n) { return n + 1; },
                      fmt::format("{}: nodePortRange {}-{} has no port left for "
                                  "service \"{}\"; widen it",
                                  s.where.str(), net.node_port_min, net.node_port_max, s.name));
      }
      sp.ports.push_back(pp);
    }
    out.push_back(std::move(sp));
  }
  return out;
}

}  // namespace knl
