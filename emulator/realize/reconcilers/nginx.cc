#include <csignal>
#include <thread>

#include <fmt/format.h>

#include "knetlab/plan/gateway.h"
#include "knetlab/realize/reconcilers.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

// Whether a route sends to `service` (its backendRefs or mirrors).
bool routed_to_by_route(const Plan& plan, const ServicePlan& service) {
  for (const auto& r : plan.http_routes) {
    if (r.namespace_ != service.namespace_) continue;
    for (const auto& rule : r.rules) {
      for (const auto& b : rule.backends)
        if (b.name == service.name) return true;
      for (const auto& f : rule.filters)
        if (f.mirror && f.mirror->name == service.name) return true;
    }
  }
  return false;
}

// Whether a served ingress sends to `service` (its rules, or a defaultBackend).
bool routed_to_by_ingress(const Plan& plan, const ServicePlan& service) {
  for (const auto& in : plan.ingresses) {
    if (!in.served() || in.namespace_ != service.namespace_) continue;
    if (in.default_backend && in.default_backend->service == service.name) return true;
    for (const auto& rule : in.rules)
      for (const auto& p : rule.paths)
        if (p.backend.service == service.name) return true;
  }
  return false;
}

// Whether pod `key` ("NS/NAME") is named as a gateway's data-plane pod.
bool data_plane_name(const Plan& plan, const std::string& key) {
  for (const auto& g : plan.gateways)
    if (key.rfind(g.namespace_ + "/" + gateway_deployment_name(g) + "-", 0) == 0) return true;
  return false;
}

}  // namespace

void NginxReconciler::reconcile(LabState& lab, Changes& changes) {
  const auto& plan = lab.plan;
  const bool ingress = role_ == NginxRole::ingress;
  // A lab without ingresses (gateways), and one that never had a data plane,
  // has nothing to do.
  if ((ingress ? plan.ingresses.empty() : plan.gateways.empty()) && applied_.empty()) return;
  bool relevant = changes.all || pending_;
  for (const auto& [index, before] : changes.services)
    relevant = relevant || (ingress ? routed_to_by_ingress(plan, plan.services[index])
                                    : routed_to_by_route(plan, plan.services[index]));
  // A data-plane pod that came, went or turned ready.
  for (const auto& key : changes.pods)
    relevant = relevant || applied_.count(key) ||
               (ingress ? key.rfind(std::string(kIngressNamespace) + "/", 0) == 0
                        : data_plane_name(plan, key));
  if (!relevant) return;
  pending_ = false;
  std::string first_failure;
  std::set<std::string> controllers;
  for (const auto& pod : plan.pods) {
    if (ingress ? !pod.serves_ingress() : !gateway_of(plan.gateways, pod)) continue;
    auto health = lab.health.find(pod.key());
    if (health == lab.health.end() || health->second.terminating) continue;
    controllers.insert(pod.key());
    // The executor wrote a controller's first configuration with every
    // endpoint ready.
    auto [applied, fresh] = applied_.try_emplace(pod.key());
    if (fresh) applied->second = nginx_pod_config(plan, pod, endpoints_all_ready(plan)).text;
    auto config = nginx_pod_config(plan, pod, lab.endpoints);
    if (config.text == applied->second) continue;
    try {
      reload(lab, pod, config);
      applied->second = std::move(config.text);
    } catch (const SystemError& e) {
      pending_ = true;
      effects_.event(fmt::format("{}: {}; tried again on the next tick", name(), e.what()));
      if (first_failure.empty()) first_failure = e.what();
    }
  }
  std::erase_if(applied_, [&](const auto& a) { return !controllers.count(a.first); });
  if (!first_failure.empty())
    throw SystemError(
        fmt::format("{}: {}", ingress ? "ingress controller" : "gateway", first_failure), 0);
}

void NginxReconciler::reload(LabState& lab, const PodPlan& pod, const NginxConfig& config) {
  auto start = Clock::now();
  const auto path = nginx_config_path(pod);
  effects_.runtime.write_file({path + ".next", config.text});
  auto test = effects_.programs.run({"", nginx_test_argv(path + ".next"), ""});
  if (test.status != 0)
    throw SystemError(fmt::format("nginx refused the configuration of {} (exit status {}): {}",
                                  pod.key(), test.status, test.output.substr(0, 2000)),
                      0);
  effects_.runtime.write_file({path, config.text});
  // nginx's master is the container's process; on SIGHUP it starts workers
  // with the new configuration, then lets the old ones finish their requests.
  const auto& master = lab.processes.at(pod.key()).containers.at(pod.containers.front().name);
  if (!effects_.runtime.signal(master, SIGHUP)) return;  // restarting: it reads the file
  const auto deadline = start + std::chrono::seconds(2);
  while (!effects_.runtime.http_answers(pod, kNginxHealthPort, config.served_path)) {
    if (Clock::now() > deadline)
      throw SystemError(
          fmt::format("nginx of {} did not serve its new configuration within 2 s", pod.key()),
          ETIMEDOUT);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // The old worker may still take a new connection until nginx tells it to
  // stop; wait for that (not for its requests in flight) a little while.
  while (effects_.runtime.children(master) > 1 && Clock::now() < deadline + std::chrono::seconds(1))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  effects_.event(
      fmt::format("{}: {} reloaded nginx in {:.1f} ms", name(), pod.key(),
                  std::chrono::duration<double, std::milli>(Clock::now() - start).count()));
}

void NginxReconciler::tick(LabState&, Changes& changes) {
  if (pending_) changes.retry = true;
}

}  // namespace knl
