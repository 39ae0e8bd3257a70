#include "knetlab/realize/reconcilers.h"

#include <numeric>

namespace knl {

void EndpointsReconciler::reconcile(LabState& lab, Changes& changes) {
  const auto& services = lab.plan.services;
  // The services change only with a pass over everything (the first, apply).
  if (changes.all || !index_) index_.emplace(services);
  std::vector<size_t> candidates;
  if (changes.all) {
    candidates.resize(services.size());
    std::iota(candidates.begin(), candidates.end(), size_t{0});
  } else {
    for (const auto& pod : lab.plan.pods) {
      if (!changes.pods.count(pod.key())) continue;
      auto more = index_->candidates(pod);
      candidates.insert(candidates.end(), more.begin(), more.end());
    }
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  }
  auto ready = [&](const PodPlan& p) { return lab.ready(p); };
  for (size_t i : candidates) {
    const auto& s = services[i];
    auto now = service_endpoints(s, lab.plan.pods, ready);
    auto [it, fresh] = lab.endpoints.try_emplace(s.key());
    if (!fresh && it->second == now) continue;
    auto before = std::exchange(it->second, std::move(now));
    changes.services.emplace(i, std::move(before));
  }
}

}  // namespace knl
