#include "knetlab/realize/controller.h"

#include <fmt/format.h>

#include "knetlab/plan/load_balancers.h"
#include "knetlab/realize/routing.h"
#include "knetlab/util/error.h"

namespace knl {

bool LabState::ready(const PodPlan& pod) const {
  auto it = health.find(pod.key());
  return it != health.end() && it->second.ready();
}

std::set<std::string> LabState::ready_pods() const {
  std::set<std::string> out;
  for (const auto& p : plan.pods)
    if (ready(p)) out.insert(p.key());
  return out;
}

Controller::Controller(LabState lab, Kernel& kernel, Runtime& runtime, Programs& programs,
                       Journal& journal, ControllerOptions options)
    : lab_(std::move(lab)),
      effects_{kernel, runtime, programs, journal,
               [this](const std::string& text) {
                 if (options_.event) options_.event(text);
               }},
      options_(std::move(options)) {
  for (const auto& e : journal.entries())
    if (e.kind == JournalEntry::Kind::process && e.name == kMountTemplateEntry)
      lab_.mount_template = e.process;
  for (const auto& [key, procs] : lab_.processes) lab_.health[key];
  auto lifecycle = std::make_unique<LifecycleReconciler>(effects_, options_.restart_backoff);
  auto daemons = std::make_unique<DaemonsReconciler>(effects_, options_.restart_backoff);
  auto announcements = std::make_unique<AnnouncementsReconciler>(effects_);
  lifecycle_ = lifecycle.get(), daemons_ = daemons.get(), announcements_ = announcements.get();
  reconcilers_.push_back(std::move(lifecycle));
  reconcilers_.push_back(std::move(daemons));
  reconcilers_.push_back(std::make_unique<PolicyReconciler>(effects_));
  reconcilers_.push_back(std::make_unique<EndpointsReconciler>());
  reconcilers_.push_back(std::make_unique<KubeProxyReconciler>(effects_));
  reconcilers_.push_back(std::make_unique<DnsReconciler>(effects_));
  reconcilers_.push_back(std::make_unique<NginxReconciler>(effects_, NginxRole::ingress));
  reconcilers_.push_back(std::make_unique<NginxReconciler>(effects_, NginxRole::gateway));
  reconcilers_.push_back(std::make_unique<CloudLoadBalancerReconciler>(effects_));
  reconcilers_.push_back(std::move(announcements));
}

Controller::~Controller() = default;

void Controller::pass(Changes changes) {
  auto start = Clock::now();
  std::exception_ptr first;
  for (auto& r : reconcilers_) {
    try {
      r->reconcile(lab_, changes);
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  last_pass_seconds_ = std::chrono::duration<double>(Clock::now() - start).count();
  last_pass_services_ = changes.services.size();
  if (options_.publish) options_.publish(lab_);
  if (first) std::rethrow_exception(first);
}

void Controller::start() {
  pass(Changes{.all = true});
}

void Controller::exited(int pid, int status) {
  if (daemons_->exited(pid, status)) return;
  lifecycle_->exited(lab_, pid, status, exited_pods_);
}

void Controller::settle() {
  if (exited_pods_.empty()) return;
  pass(Changes{.pods = std::exchange(exited_pods_, {})});
}

void Controller::tick() {
  Changes changes;
  for (auto& r : reconcilers_) {
    try {
      r->tick(lab_, changes);
    } catch (const std::exception& e) {
      effects_.event(fmt::format("{}: {}", r->name(), e.what()));
    }
  }
  if (changes.empty()) return;
  try {
    pass(std::move(changes));
  } catch (const std::exception& e) {
    effects_.event(fmt::format("control loop: {}", e.what()));
  }
}

nlohmann::json Controller::request(const Request& request) {
  return std::visit(
      [this](const auto& r) -> nlohmann::json {
        using R = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<R, ScaleRequest>) return scale(r.deployment, r.replicas);
        if constexpr (std::is_same_v<R, DeleteRequest>) return remove(r.pod);
        if constexpr (std::is_same_v<R, ApplyRequest>) return apply(r.file);
        if constexpr (std::is_same_v<R, SyncRequest>)
          return SyncResult{last_pass_seconds_, last_pass_services_};
        if constexpr (std::is_same_v<R, QuiesceRequest>)
          throw UserError("quiesce is the supervisor's own request");
      },
      request);
}

void Controller::wait_for_bgp(Clock::time_point deadline) {
  // A bgpd that does not answer vtysh yet (it was started while the pods
  // were) refused its node's first announcement: it is tried again meanwhile.
  auto wanted = [this] {
    if (announcements_->pending()) pass(Changes{.retry = true});
    ExtraRoutes routes;
    for (const auto& [ip, nodes] : local_announcements(lab_.plan, lab_.endpoints)) {
      if (nodes.empty()) continue;
      auto why =
          fmt::format("LoadBalancer IP {}, announced by {}", ip.str(), fmt::join(nodes, ", "));
      for (const auto& f : lab_.plan.frr)
        if (f.target.rfind("router/", 0) == 0) routes[f.target].emplace_back(Ipv4Net{ip, 32}, why);
    }
    return routes;
  };
  knl::wait_for_bgp(effects_.kernel, effects_.programs, lab_.plan, wanted, deadline);
}

}  // namespace knl
