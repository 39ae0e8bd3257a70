#include "knetlab/plan/endpoints.h"

#include <algorithm>

namespace knl {

bool selects(const ServicePlan& service, const PodPlan& pod) {
  return pod.namespace_ == service.namespace_ &&
         std::all_of(service.selector.begin(), service.selector.end(), [&](const auto& kv) {
           auto it = pod.labels.find(kv.first);
           return it != pod.labels.end() && it->second == kv.second;
         });
}

ServiceEndpoints service_endpoints(const ServicePlan& service, const std::vector<PodPlan>& pods,
                                   const std::function<bool(const PodPlan&)>& ready) {
  if (!service.fixed_endpoints.empty()) return service.fixed_endpoints;
  ServiceEndpoints out(service.ports.size());
  // A service without a selector has its endpoints written by hand in
  // Kubernetes; the topology has no way to write them, so it has none.
  if (service.selector.empty() || service.type == ServiceType::external_name) return out;
  for (const auto& pod : pods) {
    if (!selects(service, pod) || !ready(pod)) continue;
    for (size_t i = 0; i < service.ports.size(); ++i) {
      const auto& sp = service.ports[i];
      int port = sp.target_port;
      if (!sp.target_port_name.empty()) {
        for (const auto& c : pod.containers)
          for (const auto& cp : c.ports)
            if (cp.name == sp.target_port_name && cp.protocol == sp.protocol)
              port = cp.container_port;
        if (port == 0) continue;
      }
      out[i].push_back({pod.ip, port, pod.node, pod.key()});
    }
  }
  for (auto& list : out) std::sort(list.begin(), list.end());
  return out;
}

namespace {

std::string label_key(const std::string& namespace_, const std::string& key,
                      const std::string& value) {
  return namespace_ + "/" + key + "=" + value;
}

}  // namespace

ServiceIndex::ServiceIndex(const std::vector<ServicePlan>& services) {
  for (size_t i = 0; i < services.size(); ++i) {
    const auto& s = services[i];
    if (s.selector.empty()) continue;  // selects no pod
    const auto& [key, value] = *s.selector.begin();
    by_label_[label_key(s.namespace_, key, value)].push_back(i);
  }
}

std::vector<size_t> ServiceIndex::candidates(const PodPlan& pod) const {
  std::vector<size_t> out;
  for (const auto& [key, value] : pod.labels) {
    auto it = by_label_.find(label_key(pod.namespace_, key, value));
    if (it != by_label_.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace knl
