#include <fmt/format.h>

#include "knetlab/plan/load_balancers.h"
#include "knetlab/realize/reconcilers.h"

namespace knl {

void CloudLoadBalancerReconciler::reconcile(LabState& lab, Changes&) {
  if (lab.plan.lb_netns.empty()) return;
  for (const auto& s : lab.plan.services) {
    if (!s.load_balancer_ip) continue;
    auto eps = lab.endpoints.find(s.key());
    auto targets = cloud_load_balancer_targets(
        lab.plan, s, eps == lab.endpoints.end() ? ServiceEndpoints{} : eps->second);
    auto it = routes_.find(*s.load_balancer_ip);
    if (it != routes_.end() && it->second == targets) continue;
    Ipv4Net dst{*s.load_balancer_ip, 32};
    if (targets.empty()) {
      effects_.kernel.delete_route(lab.plan.lb_netns, dst);
    } else {
      RouteSpec route{lab.plan.lb_netns, dst, targets.front(), "eth0", false};
      route.nexthops = targets;
      route.replace = true;
      effects_.kernel.add_route(route);
    }
    routes_[*s.load_balancer_ip] = targets;
    std::vector<std::string> names;
    for (const auto& t : targets) names.push_back(t.str());
    effects_.event(fmt::format("cloud load balancer: {} -> [{}]", s.load_balancer_ip->str(),
                               fmt::join(names, ", ")));
  }
}

}  // namespace knl
