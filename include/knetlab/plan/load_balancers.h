#pragma once
// How a LoadBalancer IP reaches the nodes: the emulated cloud load
// balancer's targets, and the nodes that announce it by BGP (MetalLB's BGP
// mode). Pure: decided from the plan and the endpoints.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "knetlab/plan/plan.h"

namespace knl {

/// The nodes with a ready endpoint of a service.
std::set<std::string> endpoint_nodes(const ServiceEndpoints& endpoints);

/// The nodes the cloud load balancer sends `service`'s LoadBalancer IP to, in
/// node order: those that pass its health check, which is every node under
/// externalTrafficPolicy Cluster and, under Local, the nodes with a ready
/// endpoint (where kube-proxy's healthCheckNodePort answers 200).
std::vector<Ipv4> cloud_load_balancer_targets(const Plan& plan, const ServicePlan& service,
                                              const ServiceEndpoints& endpoints);

/// Under loadBalancerMode "bgp", the nodes that announce the LoadBalancer IP
/// of each externalTrafficPolicy Local service: those with a ready endpoint
/// (Cluster services are announced by every node from frr.conf). Every
/// such service is listed, with no node when it has no endpoint.
std::map<Ipv4, std::set<std::string>> local_announcements(const Plan& plan,
                                                          const EndpointMap& endpoints);

}  // namespace knl
