#include <fmt/format.h>

#include "knetlab/realize/reconcilers.h"

namespace knl {

namespace {

// The kubelet's back-off: `base` doubled per restart already made, at most 5 minutes.
Clock::duration backoff(std::chrono::milliseconds base, int restarts) {
  return std::min<Clock::duration>(base * (1 << std::min(restarts, 5)), std::chrono::minutes(5));
}

}  // namespace

void LifecycleReconciler::reconcile(LabState& lab, Changes& changes) {
  auto note = [&](const std::string& key, const PodProcesses& procs) {
    owners_[procs.sandbox.pid] = {key, ""};
    for (const auto& [name, p] : procs.containers) owners_[p.pid] = {key, name};
  };
  if (changes.all) {
    owners_.clear();
    for (const auto& [key, procs] : lab.processes) note(key, procs);
    return;
  }
  for (const auto& key : changes.pods) {
    std::erase_if(owners_, [&](const auto& o) { return o.second.first == key; });
    if (auto procs = lab.processes.find(key); procs != lab.processes.end())
      note(key, procs->second);
  }
}

bool LifecycleReconciler::exited(LabState& lab, int pid, int status, std::set<std::string>& pods) {
  auto owner = owners_.find(pid);
  if (owner == owners_.end()) return false;
  auto [key, container] = owner->second;
  owners_.erase(owner);
  auto health = lab.health.find(key);
  if (health == lab.health.end() || health->second.terminating) return true;
  effects_.event(fmt::format("pod {} {} exited ({})", key,
                             container.empty() ? "sandbox" : "container " + container, status));
  auto& h = health->second;
  if (container.empty()) {
    // The sandbox is gone: the pod's namespaces went with it.
    for (const auto& [name, p] : lab.processes[key].containers) h.dead.insert(name);
    h.restart_at.clear();
  } else {
    h.dead.insert(container);
    h.restart_at[container] = Clock::now() + backoff(backoff_, h.restarts[container]++);
  }
  pods.insert(key);
  return true;
}

void LifecycleReconciler::tick(LabState& lab, Changes& changes) {
  auto now = Clock::now();
  for (const auto& pod : lab.plan.pods) {
    auto& h = lab.health[pod.key()];
    if (h.terminating) continue;
    for (const auto& c : pod.containers) {
      auto due = h.restart_at.find(c.name);
      if (due != h.restart_at.end() && due->second <= now) {
        h.restart_at.erase(due);
        try {
          auto& procs = lab.processes[pod.key()];
          auto p = effects_.runtime.start_container(procs.sandbox, c);
          effects_.journal.record(
              {JournalEntry::Kind::process, "container:" + pod.key() + "/" + c.name, p});
          procs.containers[c.name] = p;
          owners_[p.pid] = {pod.key(), c.name};
          h.dead.erase(c.name);
          if (c.readiness) h.unready.insert(c.name);
          effects_.event(fmt::format("pod {} container {} restarted (restart {})", pod.key(),
                                     c.name, h.restarts[c.name]));
          changes.pods.insert(pod.key());
        } catch (const std::exception& e) {
          effects_.event(fmt::format("pod {} container {} could not restart: {}", pod.key(), c.name,
                                     e.what()));
        }
      }
      if (!c.readiness || h.dead.count(c.name)) continue;
      bool ok = effects_.runtime.probe_readiness(pod, c);
      if (ok == !h.unready.count(c.name)) continue;
      if (ok)
        h.unready.erase(c.name);
      else
        h.unready.insert(c.name);
      effects_.event(fmt::format("pod {} container {} readiness probe {}", pod.key(), c.name,
                                 ok ? "succeeded: ready" : "failed: not ready"));
      changes.pods.insert(pod.key());
    }
  }
}

}  // namespace knl
