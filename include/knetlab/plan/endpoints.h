#pragma once
// The endpoints controller: which ready pods stand behind each service port,
// and which services a changed pod may concern. Pure: no kernel, no clock.

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "knetlab/plan/plan.h"

namespace knl {

/// True when `pod` is in the service's namespace and carries its selector.
bool selects(const ServicePlan& service, const PodPlan& pod);

/// The endpoints of `service`: pods of its namespace whose labels include
/// the selector and that `ready` accepts; a named targetPort resolves per pod
/// through its containers' ports (a pod without it is left out). Sorted by
/// address, as EndpointSlices list them. A service without a selector, or an
/// ExternalName one, has none.
ServiceEndpoints service_endpoints(const ServicePlan& service, const std::vector<PodPlan>& pods,
                                   const std::function<bool(const PodPlan&)>& ready);

/// The services (indexes into the list it was built from) that may select a
/// pod, found from the pod's labels alone: each service is filed under the
/// first pair of its selector, so a lab of thousands of services need not
/// look at every one when one pod changes.
class ServiceIndex {
 public:
  explicit ServiceIndex(const std::vector<ServicePlan>& services);
  /// Sorted, without repeats; may hold services that do not select `pod`.
  std::vector<size_t> candidates(const PodPlan& pod) const;

 private:
  std::unordered_map<std::string, std::vector<size_t>> by_label_;  // "ns/key=value"
};

}  // namespace knl
