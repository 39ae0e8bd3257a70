#include "knetlab/realize/executor.h"

#include <fmt/format.h>

#include <exception>

#include "knetlab/util/error.h"

namespace knl {

std::map<std::string, PodProcesses> Executor::deploy(const Plan& plan) {
  return build(plan, std::nullopt);
}

std::map<std::string, PodProcesses> Executor::add_pods(const Plan& fragment,
                                                       const ProcessRecord& mount_template) {
  return build(fragment, mount_template);
}

void Executor::remove_pod(const PodPlan& pod, const PodProcesses& processes) {
  std::vector<ProcessRecord> all{processes.sandbox};
  for (const auto& [name, p] : processes.containers) all.push_back(p);
  runtime_.stop(all);
  if (!pod.host_network) kernel_.delete_netns(pod.netns);
  runtime_.remove_tree(pod.dir);
}

std::map<std::string, PodProcesses> Executor::build(
    const Plan& plan, std::optional<ProcessRecord> existing_template) {
  std::map<std::string, PodProcesses> running;
  // Only what this call records is undone on failure: the rest of a running
  // lab is not ours to take down.
  const size_t mark = journal_.entries().size();
  try {
    const size_t steps = plan.links.size() + plan.addresses.size() + plan.routes.size() +
                         plan.neighbours.size() + plan.fdb.size() + plan.sysctls.size();
    std::vector<std::string> names;
    for (const auto& ns : plan.namespaces) {
      journal_.record({JournalEntry::Kind::netns, ns.name, {}});
      names.push_back(ns.name);
    }
    std::vector<bool> created;
    try {
      kernel_.create_netns(plan.namespaces, created);
    } catch (...) {
      // A failed one cleaned up after itself, and its name may be another's.
      for (size_t i = 0; i < names.size(); ++i)
        if (i >= created.size() || !created[i])
          journal_.cancel({JournalEntry::Kind::netns, names[i], {}});
      throw;
    }
    report("namespaces", names.size(), names.size());
    size_t done = 0;
    auto step = [&] {
      if (++done % 100 == 0 || done == steps) report("links and routes", done, steps);
    };
    for (const auto& link : plan.links) kernel_.add_link(link), step();
    for (const auto& a : plan.addresses) kernel_.add_address(a), step();
    for (const auto& r : plan.routes) kernel_.add_route(r), step();
    for (const auto& n : plan.neighbours) kernel_.add_neighbour(n), step();
    for (const auto& f : plan.fdb) kernel_.add_fdb(f), step();
    for (const auto& s : plan.sysctls) kernel_.set_sysctl(s), step();
    kernel_.release_handles();

    if (!existing_template) {
      // The pods' files (resolv.conf, hosts, hostname, logs) live in memory,
      // as /run does on most machines: on a disk file system, creating those
      // of 1000 pods took 0.3-0.6 s.
      const auto pods_dir = plan.run_dir + "/pods";
      journal_.record({JournalEntry::Kind::dir, pods_dir, {}});
      journal_.record({JournalEntry::Kind::mount, pods_dir, {}});
      runtime_.mount_tmpfs(pods_dir);
    }
    if (!plan.frr.empty()) journal_.record({JournalEntry::Kind::dir, plan.run_dir + "/frr", {}});
    for (const auto& f : plan.files) runtime_.write_file(f);
    ProcessRecord mount_template;
    if (existing_template) {
      mount_template = *existing_template;
    } else {
      mount_template = runtime_.start_mount_template();
      journal_.record({JournalEntry::Kind::process, kMountTemplateEntry, mount_template});
    }
    // FRR first: its sessions come up while the pods start.
    for (const auto& daemon : plan.daemons) {
      auto p = runtime_.start_daemon(daemon, mount_template);
      journal_.record({JournalEntry::Kind::process, "daemon:" + daemon.name, p});
    }
    std::vector<const PodPlan*> pods;
    for (const auto& pod : plan.pods) pods.push_back(&pod);
    done = 0;
    runtime_.start_pods(
        pods, mount_template,
        [&](const PodPlan& pod, const std::string& container, const ProcessRecord& p) {
          auto& procs = running[pod.key()];
          if (container.empty()) {
            journal_.record({JournalEntry::Kind::process, "sandbox:" + pod.key(), p});
            procs.sandbox = p;
            return;
          }
          journal_.record(
              {JournalEntry::Kind::process, "container:" + pod.key() + "/" + container, p});
          procs.containers[container] = p;
          if (procs.containers.size() == pod.containers.size())
            report("pods", ++done, plan.pods.size());
        });
    runtime_.wait_ready(pods, running, std::chrono::steady_clock::now() + options_.ready_timeout);
  } catch (...) {
    try {
      const auto& all = journal_.entries();
      undo({all.begin() + static_cast<std::ptrdiff_t>(mark), all.end()}, kernel_, runtime_);
    } catch (const std::exception&) {
      // The deploy's own failure is what the user must see; destroy retries the rest.
    }
    throw;
  }
  return running;
}

void Executor::undo(const std::vector<JournalEntry>& entries, Kernel& kernel, Runtime& runtime) {
  std::exception_ptr first;
  auto attempt = [&](auto&& work) {
    try {
      work();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  };
  // Processes first (a pod's sandbox takes its containers with it), then any
  // process still inside the lab's namespaces, then namespaces, then files.
  // The supervisor reaps the others, so it goes after them.
  std::vector<ProcessRecord> processes, supervisors;
  for (auto it = entries.rbegin(); it != entries.rend(); ++it)
    if (it->kind == JournalEntry::Kind::process)
      (it->name == kSupervisorEntry ? supervisors : processes).push_back(it->process);
  attempt([&] { runtime.stop(processes); });
  std::vector<std::string> netns;
  for (const auto& e : entries)
    if (e.kind == JournalEntry::Kind::netns) netns.push_back(e.name);
  attempt([&] { runtime.stop_namespace_members(netns); });
  attempt([&] { runtime.stop(supervisors); });
  for (auto it = netns.rbegin(); it != netns.rend(); ++it)
    attempt([&] { kernel.delete_netns(*it); });
  for (auto it = entries.rbegin(); it != entries.rend(); ++it)
    if (it->kind == JournalEntry::Kind::mount)
      attempt([&] { runtime.unmount(it->name); });
    else if (it->kind == JournalEntry::Kind::dir)
      attempt([&] { runtime.remove_tree(it->name); });
  if (first) std::rethrow_exception(first);
}

}  // namespace knl
