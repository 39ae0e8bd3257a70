#pragma once
// What kube-proxy's two rule writers share: kubeproxy_nft.cc and
// kubeproxy_iptables.cc. Private to emulator/plan/.

#include <string>
#include <vector>

#include "knetlab/plan/kubeproxy.h"

namespace knl::kube_proxy {

inline constexpr const char* kTable = "ip kube-proxy";

/// "tcp", "udp" or "sctp", as kube-proxy writes a protocol in names and rules.
std::string lower(Protocol protocol);

// How one service port's endpoints divide on one node (kube-proxy's
// CategorizeEndpoints, without terminating endpoints).
struct Categories {
  std::vector<Endpoint> cluster, local, reachable;  // reachable: cluster ∪ local
  bool externally = false, ext_local = false, int_local = false;
  bool has_endpoints = false, has_internal = false, has_external = false;
  bool uses_external = false;  // the external- / KUBE-EXT- chain exists
};

Categories categorize(const ProxyNode& node, const ServicePlan& s,
                      const std::vector<Endpoint>& all);

/// Whether categorize() can divide `s`'s endpoints differently on two nodes:
/// only a Local traffic policy that applies looks at where endpoints run.
bool node_dependent(const ServicePlan& s);

}  // namespace knl::kube_proxy
