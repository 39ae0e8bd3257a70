#include "knetlab/plan/load_balancers.h"

namespace knl {

std::set<std::string> endpoint_nodes(const ServiceEndpoints& endpoints) {
  std::set<std::string> nodes;
  for (const auto& list : endpoints)
    for (const auto& e : list) nodes.insert(e.node);
  return nodes;
}

std::vector<Ipv4> cloud_load_balancer_targets(const Plan& plan, const ServicePlan& service,
                                              const ServiceEndpoints& endpoints) {
  auto local = endpoint_nodes(endpoints);
  std::vector<Ipv4> targets;
  for (const auto& node : plan.nodes)
    if (!service.external_local || local.count(node.name)) targets.push_back(node.ip);
  return targets;
}

std::map<Ipv4, std::set<std::string>> local_announcements(const Plan& plan,
                                                          const EndpointMap& endpoints) {
  std::map<Ipv4, std::set<std::string>> out;
  if (plan.network.load_balancer_mode != LoadBalancerMode::bgp) return out;
  for (const auto& s : plan.services) {
    if (!s.load_balancer_ip || !s.external_local) continue;
    auto it = endpoints.find(s.key());
    out[*s.load_balancer_ip] =
        it == endpoints.end() ? std::set<std::string>{} : endpoint_nodes(it->second);
  }
  return out;
}

}  // namespace knl
