#include <fmt/format.h>

#include "knetlab/realize/reconcilers.h"

namespace knl {

void DaemonsReconciler::reconcile(LabState&, Changes& changes) {
  if (!changes.all) return;
  // The executor journals every daemon it starts, under "daemon:NAME".
  for (const auto& e : effects_.journal.entries())
    if (e.kind == JournalEntry::Kind::process && e.name.rfind("daemon:", 0) == 0)
      daemons_[e.name.substr(7)].process = e.process;
}

bool DaemonsReconciler::exited(int pid, int status) {
  for (auto& [name, d] : daemons_) {
    if (d.process.pid != pid) continue;
    auto delay = std::min<Clock::duration>(backoff_ * (1 << std::min(d.restarts++, 5)),
                                           std::chrono::minutes(5));
    d.restart_at = Clock::now() + delay;
    effects_.event(fmt::format("{} exited ({}); restarting it in {} s", name, status,
                               std::chrono::duration_cast<std::chrono::seconds>(delay).count()));
    return true;
  }
  return false;
}

void DaemonsReconciler::tick(LabState& lab, Changes& changes) {
  auto now = Clock::now();
  for (const auto& plan : lab.plan.daemons) {
    auto& d = daemons_[plan.name];
    if (!d.restart_at || *d.restart_at > now) continue;
    d.restart_at.reset();
    try {
      d.process = effects_.runtime.start_daemon(plan, lab.mount_template);
      effects_.journal.record({JournalEntry::Kind::process, "daemon:" + plan.name, d.process});
      effects_.event(fmt::format("{} restarted (restart {})", plan.name, d.restarts));
    } catch (const std::exception& e) {
      effects_.event(fmt::format("{} could not restart: {}", plan.name, e.what()));
    }
    for (const auto& f : lab.plan.frr)
      if (plan.name == "bgpd of " + f.target) changes.bgpds.insert(f.target);
  }
}

}  // namespace knl
