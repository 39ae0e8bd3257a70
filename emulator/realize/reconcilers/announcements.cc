#include <fmt/format.h>

#include "knetlab/plan/load_balancers.h"
#include "knetlab/realize/reconcilers.h"
#include "knetlab/realize/routing.h"

namespace knl {

namespace {

// The service whose LoadBalancer IP `ip` is.
std::string service_of(const Plan& plan, Ipv4 ip) {
  for (const auto& s : plan.services)
    if (s.load_balancer_ip == ip) return s.key();
  return "?";
}

}  // namespace

void AnnouncementsReconciler::reconcile(LabState& lab, Changes& changes) {
  // A restarted bgpd knows only frr.conf: its node announces nothing else.
  for (const auto& target : changes.bgpds)
    for (const auto& f : lab.plan.frr)
      if (f.target == target)
        for (auto& [ip, nodes] : announced_) nodes.erase(f.name);
  pending_ = false;
  for (auto& [ip, wanted] : local_announcements(lab.plan, lab.endpoints)) {
    auto& announced = announced_[ip];
    if (announced == wanted) continue;
    for (const auto& f : lab.plan.frr) {
      if (!f.announces_local) continue;
      bool want = wanted.count(f.name) > 0, has = announced.count(f.name) > 0;
      if (want == has) continue;
      try {
        run_vtysh(effects_.programs, f,
                  {"configure terminal", fmt::format("router bgp {}", f.asn),
                   "address-family ipv4 unicast",
                   fmt::format("{}network {}/32", want ? "" : "no ", ip.str())});
        effects_.event(
            fmt::format("BGP: node {} {} {}/32 (service {}, externalTrafficPolicy Local)", f.name,
                        want ? "announces" : "withdraws", ip.str(), service_of(lab.plan, ip)));
        if (want)
          announced.insert(f.name);
        else
          announced.erase(f.name);
      } catch (const std::exception& e) {
        // Kept as FRR has it, so that a tick tries again.
        effects_.event(fmt::format("BGP: node {} could not {} {}/32: {}", f.name,
                                   want ? "announce" : "withdraw", ip.str(), e.what()));
        pending_ = true;
      }
    }
  }
}

void AnnouncementsReconciler::tick(LabState&, Changes& changes) {
  if (pending_) changes.retry = true;
}

}  // namespace knl
