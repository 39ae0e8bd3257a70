#include <fmt/format.h>

#include <sstream>

#include "knetlab/realize/reconcilers.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

// knotc answers each command with a line, and "error: …" for one it refused.
// Unsetting what is gone and setting what is there already leave the zone as
// wanted; any other error (the server not answering, the commit refused) is
// a failure. Returns the first failing line, or "".
std::string knotc_failure(const std::string& output) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("error:", 0) == 0 && line.find("no such record") == std::string::npos &&
        line.find("already exists") == std::string::npos)
      return line;
  return "";
}

std::vector<DnsRecord> flatten(const DnsRecordSets& sets, const std::set<std::string>& groups) {
  std::vector<DnsRecord> out;
  for (const auto& g : groups)
    if (auto it = sets.find(g); it != sets.end())
      out.insert(out.end(), it->second.begin(), it->second.end());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

bool DnsReconciler::update(const PodPlan& pod, DnsRecordSets& applied, std::string& failure) {
  std::set<std::string> changed;
  for (const auto& [group, records] : desired_)
    if (auto it = applied.find(group); it == applied.end() || it->second != records)
      changed.insert(group);
  for (const auto& [group, records] : applied)
    if (!desired_.count(group)) changed.insert(group);
  if (changed.empty()) return true;
  auto script = knotc_transaction(flatten(applied, changed), flatten(desired_, changed));
  if (!script.empty()) {
    auto r = effects_.programs.run(
        {pod.netns, {"knotc", "--socket", dns_socket_path(pod), "--timeout", "5"}, script});
    failure = r.status != 0 ? fmt::format("knotc exit status {}: {}", r.status, r.output)
                            : knotc_failure(r.output);
    if (!failure.empty()) return false;
  }
  for (const auto& g : changed)
    if (auto it = desired_.find(g); it != desired_.end())
      applied[g] = it->second;
    else
      applied.erase(g);
  return true;
}

bool DnsReconciler::reload(const LabState& lab, const PodPlan& pod, std::string& failure) {
  effects_.runtime.write_file({dns_zone_path(pod), dns_zone_file(lab.plan, desired_)});
  auto r = effects_.programs.run({pod.netns,
                                  {"knotc", "--socket", dns_socket_path(pod), "--timeout", "5",
                                   "--blocking", "zone-reload", "."},
                                  ""});
  failure = r.status != 0 ? fmt::format("knotc exit status {}: {}", r.status, r.output)
                          : knotc_failure(r.output);
  return failure.empty();
}

void DnsReconciler::reconcile(LabState& lab, Changes& changes) {
  const auto& plan = lab.plan;
  if (!started_ || changes.all) {
    desired_ = dns_records(plan, lab.endpoints);
  } else {
    if (changes.services.empty() && changes.pods.empty() && !pending_) return;
    for (const auto& [index, before] : changes.services) {
      const auto& s = plan.services[index];
      desired_[dns_group_of_service(s)] = service_dns_records(plan, s, lab.endpoints.at(s.key()));
    }
    for (const auto& key : changes.pods) {
      auto pod = std::find_if(plan.pods.begin(), plan.pods.end(),
                              [&](const PodPlan& p) { return p.key() == key; });
      if (pod == plan.pods.end())
        desired_.erase(dns_group_of_pod(key));
      else
        desired_[dns_group_of_pod(key)] = pod_dns_records(plan, *pod);
    }
  }
  pending_ = false;
  std::string first_failure;
  std::set<std::string> replicas;
  for (const auto& pod : plan.pods) {
    auto health = lab.health.find(pod.key());
    if (!pod.serves_dns() || health == lab.health.end() || health->second.terminating) continue;
    replicas.insert(pod.key());
    auto [applied, fresh] = applied_.try_emplace(pod.key());
    std::string failure;
    if (fresh && started_) {
      // A replica made after the deploy: its zone was written from the plan
      // it was made with; it is written again whole.
      if (reload(lab, pod, failure)) {
        applied->second = desired_;
        effects_.event(fmt::format("dns: {} loaded its zone whole", pod.key()));
      }
    } else {
      // The deploy wrote every replica's zone with all pods ready, as they
      // are when it starts the controller.
      if (fresh) applied->second = dns_records(plan, endpoints_all_ready(plan));
      update(pod, applied->second, failure);
    }
    if (failure.empty()) continue;
    if (fresh && started_) applied_.erase(applied);
    pending_ = true;
    effects_.event(fmt::format("dns: {} refused its records, tried again on the next tick: {}",
                               pod.key(), failure));
    if (first_failure.empty()) first_failure = failure;
  }
  std::erase_if(applied_, [&](const auto& a) { return !replicas.count(a.first); });
  started_ = true;
  if (!first_failure.empty()) throw SystemError("cluster DNS: " + first_failure, 0);
}

void DnsReconciler::tick(LabState&, Changes& changes) {
  if (pending_) changes.retry = true;
}

}  // namespace knl
