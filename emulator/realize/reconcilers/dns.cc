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
  auto start = Clock::now();
  // Each replica's work: a transaction of what changed, or (a replica made
  // after the deploy, whose zone was written from the plan it was made
  // with) its whole zone written again and reloaded. All run at once.
  struct Work {
    const PodPlan* pod;
    std::set<std::string> groups;  // what a transaction changes; empty: a reload
  };
  std::vector<Work> work;
  std::vector<ProgramCall> calls;
  std::set<std::string> replicas;
  size_t changed_records = 0;
  for (const auto& pod : plan.pods) {
    auto health = lab.health.find(pod.key());
    if (!pod.serves_dns() || health == lab.health.end() || health->second.terminating) continue;
    replicas.insert(pod.key());
    std::vector<std::string> knotc = {"knotc", "--socket", dns_socket_path(pod), "--timeout", "5"};
    auto [applied, fresh] = applied_.try_emplace(pod.key());
    if (fresh && started_) {
      applied_.erase(applied);
      effects_.runtime.write_file({dns_zone_path(pod), dns_zone_file(plan, desired_)});
      knotc.insert(knotc.end(), {"--blocking", "zone-reload", "."});
      work.push_back({&pod, {}});
      calls.push_back({pod.netns, knotc, ""});
      continue;
    }
    // The deploy wrote every replica's zone with all pods ready, as they are
    // when it starts the controller.
    if (fresh) applied->second = dns_records(plan, endpoints_all_ready(plan));
    std::set<std::string> groups;
    for (const auto& [group, records] : desired_)
      if (auto it = applied->second.find(group);
          it == applied->second.end() || it->second != records)
        groups.insert(group);
    for (const auto& [group, records] : applied->second)
      if (!desired_.count(group)) groups.insert(group);
    if (groups.empty()) continue;
    auto script = knotc_transaction(flatten(applied->second, groups), flatten(desired_, groups));
    if (script.empty()) {
      applied->second = desired_;
      continue;
    }
    changed_records = std::max<size_t>(
        changed_records, static_cast<size_t>(std::count(script.begin(), script.end(), '\n')) - 2);
    work.push_back({&pod, std::move(groups)});
    calls.push_back({pod.netns, knotc, script});
  }
  auto results = effects_.programs.run_all(calls);
  std::string first_failure;
  for (size_t i = 0; i < work.size(); ++i) {
    const auto& r = results[i];
    auto failure = r.status != 0 ? fmt::format("knotc exit status {}: {}", r.status, r.output)
                                 : knotc_failure(r.output);
    const auto& key = work[i].pod->key();
    if (failure.empty()) {
      auto& applied = applied_[key];
      if (work[i].groups.empty()) {
        applied = desired_;
        effects_.event(fmt::format("dns: {} loaded its zone whole", key));
      }
      for (const auto& g : work[i].groups)
        if (auto it = desired_.find(g); it != desired_.end())
          applied[g] = it->second;
        else
          applied.erase(g);
      continue;
    }
    pending_ = true;
    effects_.event(
        fmt::format("dns: {} refused its records, tried again on the next tick: {}", key, failure));
    if (first_failure.empty()) first_failure = failure;
  }
  std::erase_if(applied_, [&](const auto& a) { return !replicas.count(a.first); });
  if (changed_records)
    effects_.event(fmt::format(
        "dns: {} record(s) changed on {} replica(s) in {:.1f} ms", changed_records, replicas.size(),
        std::chrono::duration<double, std::milli>(Clock::now() - start).count()));
  started_ = true;
  if (!first_failure.empty()) throw SystemError("cluster DNS: " + first_failure, 0);
}

void DnsReconciler::tick(LabState&, Changes& changes) {
  if (pending_) changes.retry = true;
}

}  // namespace knl
