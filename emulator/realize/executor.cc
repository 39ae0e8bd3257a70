#include "knetlab/realize/executor.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <variant>

#include "knetlab/plan/dns.h"
#include "knetlab/realize/cni.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

// One kernel object of a plan.
using KernelOp = std::variant<const LinkSpec*, const AddressSpec*, const RouteSpec*,
                              const NeighbourSpec*, const FdbSpec*, const SysctlSpec*>;

void apply(Kernel& kernel, const KernelOp& op) {
  std::visit(
      [&](const auto* spec) {
        using Spec = std::remove_cvref_t<decltype(*spec)>;
        if constexpr (std::is_same_v<Spec, LinkSpec>) kernel.add_link(*spec);
        if constexpr (std::is_same_v<Spec, AddressSpec>) kernel.add_address(*spec);
        if constexpr (std::is_same_v<Spec, RouteSpec>) kernel.add_route(*spec);
        if constexpr (std::is_same_v<Spec, NeighbourSpec>) kernel.add_neighbour(*spec);
        if constexpr (std::is_same_v<Spec, FdbSpec>) kernel.add_fdb(*spec);
        if constexpr (std::is_same_v<Spec, SysctlSpec>) kernel.set_sysctl(*spec);
      },
      op);
}

// The kernel objects of a plan, those of each pod's namespace apart: its
// veth, whichever end is in the pod, and what is set in the pod's namespace
// or on its veth's other end. The files of a pod with a namespace of its own
// go with it too.
struct Wiring {
  std::vector<KernelOp> others;
  std::vector<std::vector<KernelOp>> pods;  // by the pod's place among the pod namespaces
  std::vector<const FileSpec*> other_files;
  std::vector<std::vector<const FileSpec*>> pod_files;  // the same places
};

Wiring split_by_pod_namespace(const Plan& plan) {
  constexpr size_t kNone = static_cast<size_t>(-1);
  Wiring wiring;
  std::map<std::string, size_t> pod_netns;
  for (const auto& ns : plan.namespaces)
    if (ns.role == NetnsRole::pod) pod_netns.emplace(ns.name, pod_netns.size());
  wiring.pods.resize(pod_netns.size());
  std::map<std::pair<std::string, std::string>, size_t> link_owner;  // (netns, link) -> pod
  auto of_netns = [&](const std::string& netns) {
    auto it = pod_netns.find(netns);
    return it == pod_netns.end() ? kNone : it->second;
  };
  auto of_device = [&](const std::string& netns, const std::string& dev) {
    if (auto pod = of_netns(netns); pod != kNone) return pod;
    auto it = link_owner.find({netns, dev});
    return it == link_owner.end() ? kNone : it->second;
  };
  auto add = [&](size_t pod, KernelOp op) {
    (pod == kNone ? wiring.others : wiring.pods[pod]).push_back(op);
  };
  for (const auto& l : plan.links) {
    auto pod = of_netns(l.netns);
    if (pod == kNone && l.kind == LinkKind::veth) pod = of_netns(l.peer_netns);
    if (pod != kNone) {
      link_owner[{l.netns, l.name}] = pod;
      if (l.kind == LinkKind::veth) link_owner[{l.peer_netns, l.peer_name}] = pod;
    }
    add(pod, &l);
  }
  for (const auto& a : plan.addresses) add(of_device(a.netns, a.dev), &a);
  for (const auto& r : plan.routes) add(of_device(r.netns, r.dev), &r);
  for (const auto& n : plan.neighbours) add(of_device(n.netns, n.dev), &n);
  for (const auto& f : plan.fdb) add(of_device(f.netns, f.dev), &f);
  for (const auto& s : plan.sysctls) add(of_netns(s.netns), &s);
  wiring.pod_files.resize(pod_netns.size());
  std::map<std::string, size_t> pod_dirs;
  for (const auto& pod : plan.pods)
    if (auto i = of_netns(pod.netns); i != kNone) pod_dirs.emplace(pod.dir, i);
  for (const auto& f : plan.files) {
    auto it = pod_dirs.find(f.path.substr(0, f.path.rfind('/')));
    (it == pod_dirs.end() ? wiring.other_files : wiring.pod_files[it->second]).push_back(&f);
  }
  return wiring;
}

}  // namespace

void Executor::create_namespaces(const std::vector<NetnsSpec>& namespaces,
                                 const std::function<void(size_t)>& inside) {
  if (namespaces.empty()) return;
  // All are journaled, in one write, before the first is made.
  std::vector<JournalEntry> entries;
  for (const auto& ns : namespaces) entries.push_back({JournalEntry::Kind::netns, ns.name, {}});
  journal_.record(entries);
  std::vector<bool> created;
  try {
    kernel_.create_netns(namespaces, created, inside);
  } catch (...) {
    // A failed one cleaned up after itself, and its name may be another's.
    for (size_t i = 0; i < namespaces.size(); ++i)
      if (i >= created.size() || !created[i])
        journal_.cancel({JournalEntry::Kind::netns, namespaces[i].name, {}});
    throw;
  }
}

std::map<std::string, PodProcesses> Executor::deploy(Plan& plan) {
  return build(plan, std::nullopt);
}

std::map<std::string, PodProcesses> Executor::add_pods(Plan& fragment,
                                                       const ProcessRecord& mount_template) {
  return build(fragment, mount_template);
}

void Executor::remove_pod(const Plan& plan, const PodPlan& pod, const PodProcesses& processes) {
  std::vector<ProcessRecord> all{processes.sandbox};
  for (const auto& [name, p] : processes.containers) all.push_back(p);
  runtime_.stop(all);
  if (plan.network.cni == Cni::external && !pod.host_network)
    CniPlugins::del(programs_, CniPlugins::cache_path(plan, pod));
  if (!pod.host_network) kernel_.delete_netns(pod.netns);
  runtime_.remove_tree(pod.dir);
}

void Executor::attach_pods(Plan& plan) {
  if (plan.network.cni != Cni::external) return;
  CniPlugins plugins(programs_, std::chrono::seconds(plan.network.cni_config->timeout_seconds));
  std::map<std::string, std::vector<PodPlan*>> by_node;
  for (auto& pod : plan.pods)
    if (!pod.host_network) by_node[pod.node].push_back(&pod);
  std::vector<std::string> conflists;
  for (const auto& [node, pods] : by_node)
    conflists.push_back(CniPlugins::conflist(plan.run_dir, node));
  plugins.prepare(conflists, plan.network.cni_config->bin_dirs);
  size_t total = 0, done = 0;
  for (const auto& [node, pods] : by_node) total += pods.size();
  // Each node's pods one after the other, the nodes side by side, as each
  // node's kubelet runs its own; the first failure stops every node's next
  // ADD, and undo runs the DELs of what was journaled.
  std::mutex mutex;
  std::exception_ptr first;
  {
    std::vector<std::jthread> threads;
    for (auto& [node, pods] : by_node)
      threads.emplace_back([&, &pods = pods] {
        for (auto* pod : pods) {
          try {
            {
              std::lock_guard lock(mutex);
              if (first) return;
            }
            auto ip = plugins.add(plan, *pod, [&](const std::string& cache) {
              std::lock_guard lock(mutex);
              journal_.record({JournalEntry::Kind::cni, cache, {}});
            });
            pod->ip = ip;
            runtime_.write_file({pod->dir + "/hosts", pod_hosts_file(plan.network, *pod)});
            std::lock_guard lock(mutex);
            if (++done % 10 == 0 || done == total) report("CNI ADD", done, total);
          } catch (...) {
            std::lock_guard lock(mutex);
            if (!first) first = std::current_exception();
            return;
          }
        }
      });
  }
  if (first) std::rethrow_exception(first);
}

std::map<std::string, PodProcesses> Executor::build(
    Plan& plan, std::optional<ProcessRecord> existing_template) {
  std::map<std::string, PodProcesses> running;
  // Only what this call records is undone on failure: the rest of a running
  // lab is not ours to take down.
  const size_t mark = journal_.entries().size();
  try {
    const auto wiring = split_by_pod_namespace(plan);
    std::vector<NetnsSpec> others, pods_netns;
    for (const auto& ns : plan.namespaces)
      (ns.role == NetnsRole::pod ? pods_netns : others).push_back(ns);
    create_namespaces(others, {});
    if (!others.empty()) report("namespaces", others.size(), others.size());
    size_t done = 0;
    for (const auto& op : wiring.others) {
      apply(kernel_, op);
      if (++done % 100 == 0 || done == wiring.others.size())
        report("links and routes", done, wiring.others.size());
    }
    if (!existing_template) {
      // The pods' files (resolv.conf, hosts, hostname, logs) live in memory,
      // as /run does on most machines, whatever file system /run is here.
      const auto pods_dir = plan.run_dir + "/pods";
      journal_.record({JournalEntry::Kind::dir, pods_dir, {}});
      journal_.record({JournalEntry::Kind::mount, pods_dir, {}});
      runtime_.mount_tmpfs(pods_dir);
    }
    if (!plan.frr.empty()) journal_.record({JournalEntry::Kind::dir, plan.run_dir + "/frr", {}});
    for (const auto* f : wiring.other_files) runtime_.write_file(*f);
    // The template copies the machine's mount table and detaches its
    // /run/netns: before the pods' namespaces are bound there, that is a few
    // mounts instead of one per pod. It must come after the pods' tmpfs,
    // which the pods' files are bound from.
    ProcessRecord mount_template;
    if (existing_template) {
      mount_template = *existing_template;
    } else {
      mount_template = runtime_.start_mount_template();
      journal_.record({JournalEntry::Kind::process, kMountTemplateEntry, mount_template});
    }
    // Each pod's namespace is wired as soon as it is made, and the pod's
    // files written, while the next namespaces are being made: the kernel
    // serializes the links (rtnl), and most of making a namespace does not
    // take that lock.
    size_t wired = 0;
    create_namespaces(pods_netns, [&](size_t i) {
      for (const auto& op : wiring.pods[i]) apply(kernel_, op);
      for (const auto* f : wiring.pod_files[i]) runtime_.write_file(*f);
      ++wired;
      if (wired % 100 == 0 || wired == pods_netns.size())
        report("pod networks", wired, pods_netns.size());
    });
    kernel_.release_handles();
    attach_pods(plan);
    // FRR first: its sessions come up while the pods start.
    for (const auto& daemon : plan.daemons) {
      auto p = runtime_.start_daemon(daemon, mount_template);
      journal_.record({JournalEntry::Kind::process, "daemon:" + daemon.name, p});
    }
    // The cluster DNS's pods first: their server takes longest to answer,
    // and gets ready while the others start.
    std::vector<const PodPlan*> pods;
    for (const auto& pod : plan.pods)
      if (pod.serves_dns()) pods.push_back(&pod);
    for (const auto& pod : plan.pods)
      if (!pod.serves_dns()) pods.push_back(&pod);
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
      undo({all.begin() + static_cast<std::ptrdiff_t>(mark), all.end()}, kernel_, runtime_,
           programs_);
    } catch (const std::exception&) {
      // The deploy's own failure is what the user must see; destroy retries the rest.
    }
    throw;
  }
  return running;
}

void Executor::undo(const std::vector<JournalEntry>& entries, Kernel& kernel, Runtime& runtime,
                    Programs& programs) {
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
  // A pod's DEL runs while its namespace is there, as a runtime runs it
  // before it removes the sandbox; each node's newest first, the nodes side
  // by side (their caches are in their own folders).
  std::map<std::string, std::vector<std::string>> dels;
  for (auto it = entries.rbegin(); it != entries.rend(); ++it)
    if (it->kind == JournalEntry::Kind::cni)
      dels[it->name.substr(0, it->name.rfind("/lib/results/"))].push_back(it->name);
  {
    std::mutex mutex;
    std::vector<std::jthread> threads;
    for (const auto& [node, caches] : dels)
      threads.emplace_back([&, &caches = caches] {
        for (const auto& cache : caches) {
          try {
            CniPlugins::del(programs, cache);
          } catch (...) {
            std::lock_guard lock(mutex);
            if (!first) first = std::current_exception();
          }
        }
      });
  }
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
