#pragma once
// Recording fakes of the side-effect interfaces (Kernel, Runtime, Programs)
// for unit tests, and the injector that makes the N-th call fail, as a
// kernel or a program refusing would. The fakes keep what the real thing
// would hold (namespaces and their links, routes, nftables scripts, files,
// processes) and check that nothing is used before it exists.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "knetlab/kernel/kernel.h"
#include "knetlab/kernel/programs.h"
#include "knetlab/plan/dns.h"
#include "knetlab/plan/plan.h"
#include "knetlab/realize/controller.h"
#include "knetlab/realize/executor.h"
#include "knetlab/realize/journal.h"
#include "knetlab/runtime/runtime.h"
#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {

/// The images the unit tests' labs run: netexec and the cluster's own DNS
/// server and ingress controller.
inline PlanContext test_context() {
  PlanContext c;
  c.images = {{"netexec", {"netexec", "/bin/netexec", {}}},
              {"dns", {"dns", "/usr/sbin/knotd", {"--config", "{dir}/knot.conf"}}},
              {"nginx", {"nginx", "/usr/sbin/nginx", {"-c", "{dir}/nginx.conf", "-e", "stderr"}}}};
  return c;
}

/// The topology of `text` ("lab.toml") with the cluster's own objects added,
/// as deploy reads a file.
inline Topology lab_topology(const std::string& text) {
  auto t = parse_topology(text, "lab.toml");
  add_cluster_objects(t);
  return t;
}

/// The plan of lab_topology(text) with test_context().
inline Plan plan_of(const std::string& text) {
  return make_plan(lab_topology(text), test_context());
}

/// The pod of `plan` named `name` (it must have one).
inline const PodPlan& pod_named(const Plan& plan, const std::string& name) {
  return *std::find_if(plan.pods.begin(), plan.pods.end(),
                       [&](const PodPlan& p) { return p.name == name; });
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Counts the calls of every fake and throws SystemError at the chosen one:
/// the `fail_at`-th call of any kind, or the `fail_kind_at`-th call whose
/// description starts with `fail_kind` (e.g. "nft_apply", "program conntrack").
struct Injector {
  int calls = 0;
  int fail_at = -1;
  std::string fail_kind;
  int fail_kind_at = -1;
  int kind_calls = 0;
  std::vector<std::string> log;
  void call(const std::string& what) {
    ++calls;
    log.push_back(what);
    bool of_kind = !fail_kind.empty() && what.rfind(fail_kind, 0) == 0;
    if (of_kind) ++kind_calls;
    if (calls == fail_at || (of_kind && kind_calls == fail_kind_at))
      throw SystemError("injected failure at " + what, EIO);
  }
  /// Log lines that start with `prefix`.
  std::vector<std::string> calls_of(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& line : log)
      if (line.rfind(prefix, 0) == 0) out.push_back(line);
    return out;
  }
};

/// Keeps what a kernel would hold: namespaces with their links, routes, and
/// each namespace's nftables transactions in order.
class FakeKernel final : public Kernel {
 public:
  /// With `journal`, checks that every namespace was journaled before it was made.
  FakeKernel(Injector& injector, const Journal* journal) : in_(injector), journal_(journal) {}

  void create_netns(const std::vector<NetnsSpec>& namespaces, std::vector<bool>& created,
                    const std::function<void(size_t)>& inside) override {
    created.assign(namespaces.size(), false);
    for (size_t i = 0; i < namespaces.size(); ++i) {
      const auto& name = namespaces[i].name;
      if (journal_) {
        bool journaled = false;
        for (const auto& e : journal_->entries()) journaled |= e.name == name;
        EXPECT_TRUE(journaled) << name << " created before it was journaled";
      }
      in_.call("create_netns " + name);
      EXPECT_FALSE(links.count(name)) << name << " exists";
      links[name] = {"lo"};
      created[i] = true;
      if (inside) inside(i);
    }
  }
  void delete_netns(const std::string& name) override {
    links.erase(name);
    routes.erase(name);
  }
  void add_link(const LinkSpec& l) override {
    in_.call("add_link " + l.netns + " " + l.name);
    need_netns(l.netns);
    if (!l.master.empty()) need_link(l.netns, l.master);
    if (l.kind == LinkKind::vxlan) need_link(l.netns, l.underlay);
    links[l.netns].insert(l.name);
    if (l.kind == LinkKind::veth) {
      need_netns(l.peer_netns);
      links[l.peer_netns].insert(l.peer_name);
    }
  }
  void add_address(const AddressSpec& a) override {
    in_.call("add_address " + a.netns + " " + a.dev);
    need_link(a.netns, a.dev);
  }
  void add_route(const RouteSpec& r) override {
    in_.call("add_route " + r.netns + " " + r.dst.str());
    need_link(r.netns, r.dev);
    routes[r.netns][r.dst] = r;
  }
  void delete_route(const std::string& netns, const Ipv4Net& dst) override {
    in_.call("delete_route " + netns + " " + dst.str());
    routes[netns].erase(dst);
  }
  void add_neighbour(const NeighbourSpec& n) override {
    in_.call("add_neighbour " + n.netns);
    need_link(n.netns, n.dev);
  }
  void add_fdb(const FdbSpec& f) override {
    in_.call("add_fdb " + f.netns);
    need_link(f.netns, f.dev);
  }
  void set_sysctl(const SysctlSpec& s) override {
    in_.call("set_sysctl " + s.netns + " " + s.key);
    need_netns(s.netns);
  }
  void release_handles() override { in_.log.push_back("release_handles"); }
  std::vector<KernelRoute> list_routes(const std::string& netns) override {
    std::vector<KernelRoute> out;
    for (const auto& [dst, r] : routes[netns])
      out.push_back({dst, 0, static_cast<int>(r.nexthops.size())});
    return out;
  }
  void nft_apply(const std::string& netns, const std::string& script) override {
    in_.call("nft_apply " + netns);
    need_netns(netns);
    nft[netns].push_back(script);
  }
  void nft_renew(const std::string& netns) override { in_.log.push_back("nft_renew " + netns); }
  /// Each load's transactions through nft_apply, one load after the other.
  std::vector<NftLoadResult> nft_load(const std::vector<NftLoad>& loads) override {
    std::vector<NftLoadResult> results;
    for (const auto& load : loads) {
      auto& result = results.emplace_back();
      try {
        if (load.copy) {
          need_netns(load.copy->from);
          nft_copies[load.netns] = *load.copy;
          ++result.applied;
        }
        for (const auto& t : load.transactions()) {
          nft_apply(load.netns, t);
          ++result.applied;
        }
      } catch (const SystemError& e) {
        result.error = e.what();
      }
      nft_renew(load.netns);
    }
    return results;
  }

  std::map<std::string, std::set<std::string>> links;          // netns -> link names
  std::map<std::string, std::map<Ipv4Net, RouteSpec>> routes;  // netns -> routes added
  std::map<std::string, std::vector<std::string>> nft;         // netns -> transactions taken
  std::map<std::string, NftCopy> nft_copies;                   // netns -> the copy it took

 private:
  void need_netns(const std::string& netns) {
    if (!links.count(netns)) ADD_FAILURE() << "netns " << netns << " used before it exists";
  }
  void need_link(const std::string& netns, const std::string& name) {
    need_netns(netns);
    if (!links[netns].count(name))
      ADD_FAILURE() << "link " << name << " in " << netns << " used before it exists";
  }
  Injector& in_;
  const Journal* journal_;
};

/// Keeps the processes, files and mounts a runtime would.
class FakeRuntime final : public Runtime {
 public:
  explicit FakeRuntime(Injector& injector) : in_(injector) {}
  void write_file(const FileSpec& f) override {
    in_.call("write_file " + f.path);
    if (auto pods = f.path.find("/pods/"); pods != std::string::npos) {
      EXPECT_TRUE(mounts.count(f.path.substr(0, pods + 5)))
          << f.path << " written outside the tmpfs";
    }
    files[f.path] = f.content;
  }
  void remove_tree(const std::string& dir) override {
    for (auto it = files.begin(); it != files.end();)
      it = it->first.rfind(dir + "/", 0) == 0 ? files.erase(it) : std::next(it);
  }
  void mount_tmpfs(const std::string& dir) override {
    in_.call("mount_tmpfs " + dir);
    mounts.insert(dir);
  }
  void unmount(const std::string& dir) override {
    if (mounts.erase(dir)) remove_tree(dir);  // a tmpfs takes its files with it
  }
  ProcessRecord start_mount_template() override { return start("template"); }
  void start_pods(const std::vector<const PodPlan*>& pods, const ProcessRecord& mount_template,
                  const Started& started) override {
    for (const auto* pod : pods) {
      EXPECT_TRUE(running.count(mount_template.pid)) << "sandbox before its mount template";
      auto sandbox = start("sandbox " + pod->key());
      started(*pod, "", sandbox);
      for (const auto& c : pod->containers) started(*pod, c.name, start_container(sandbox, c));
    }
  }
  ProcessRecord start_container(const ProcessRecord& sandbox, const ContainerPlan& c) override {
    EXPECT_TRUE(running.count(sandbox.pid)) << "container before its sandbox";
    return start("container " + c.name);
  }
  ProcessRecord start_daemon(const DaemonPlan& d, const ProcessRecord& mount_template) override {
    EXPECT_TRUE(running.count(mount_template.pid)) << "daemon before its mount template";
    EXPECT_TRUE(files.count(d.argv.at(2))) << d.name << " before its configuration";
    return start("daemon " + d.name);
  }
  void stop(const std::vector<ProcessRecord>& processes) override {
    for (const auto& p : processes) running.erase(p.pid);
  }
  bool alive(const ProcessRecord& p) override { return running.count(p.pid) > 0; }
  bool signal(const ProcessRecord& p, int sig) override {
    in_.call(fmt::format("signal {} {}", p.pid, sig));
    return alive(p);
  }
  /// One worker: a reload's old worker is gone by the time it is asked.
  size_t children(const ProcessRecord& p) override { return alive(p) ? 1 : 0; }
  /// Answers a path of `answering`, or any path when `answering` is empty.
  bool http_answers(const PodPlan& pod, int port, const std::string& path) override {
    in_.call(fmt::format("http {}:{}{}", pod.ip.str(), port, path));
    return answering.empty() || answering.count(path);
  }
  void stop_namespace_members(const std::vector<std::string>&) override {}
  /// A probe passes unless `failing` holds "namespace/pod/container".
  bool probe_readiness(const PodPlan& pod, const ContainerPlan& c) override {
    return !failing.count(pod.key() + "/" + c.name);
  }
  void wait_ready(const std::vector<const PodPlan*>& pods,
                  const std::map<std::string, PodProcesses>& processes,
                  std::chrono::steady_clock::time_point) override {
    in_.call("wait_ready");
    for (const auto* pod : pods)
      for (const auto& [name, p] : processes.at(pod->key()).containers)
        EXPECT_TRUE(alive(p)) << pod->key() << "/" << name;
  }

  std::set<int> running;
  std::map<std::string, std::string> files;  // path -> content
  std::set<std::string> mounts;
  std::set<std::string> failing;    // readiness probes that fail
  std::set<std::string> answering;  // the paths http_answers answers; empty: all

 private:
  ProcessRecord start(const std::string& what) {
    in_.call("start " + what);
    int pid = next_pid_++;
    running.insert(pid);
    return {pid, 1000u + static_cast<uint64_t>(pid)};
  }
  Injector& in_;
  int next_pid_ = 100;
};

/// Records every program run as "program ARGV0 NETNS"; `answer` decides
/// what it returns (exit status 0 and no output by default).
class FakePrograms final : public Programs {
 public:
  explicit FakePrograms(Injector& injector) : in_(injector) {}
  ProgramResult run(const ProgramCall& call) override {
    in_.call("program " + call.argv.at(0) + " " + call.netns);
    calls.push_back(call);
    return answer ? answer(call) : ProgramResult{};
  }
  /// One after the other, each recorded as by run().
  std::vector<ProgramResult> run_all(const std::vector<ProgramCall>& list) override {
    std::vector<ProgramResult> out;
    for (const auto& c : list) out.push_back(run(c));
    return out;
  }
  /// The argv of every run of `program`, joined by spaces.
  std::vector<std::string> runs_of(const std::string& program) const {
    std::vector<std::string> out;
    for (const auto& c : calls)
      if (c.argv.at(0) == program) {
        std::string line;
        for (const auto& a : c.argv) line += (line.empty() ? "" : " ") + a;
        out.push_back(line);
      }
    return out;
  }

  std::vector<ProgramCall> calls;
  std::function<ProgramResult(const ProgramCall&)> answer;

 private:
  Injector& in_;
};

/// A lab parsed from `text` (with the cluster's own objects), planned with
/// test_context(), deployed into the fakes and run by a started controller
/// that restarts containers at once; its events and publications are kept.
struct FakeLab {
  Injector injector;
  Journal journal = Journal::in_memory();
  FakeKernel kernel{injector, nullptr};
  FakeRuntime runtime{injector};
  FakePrograms programs{injector};
  std::vector<std::string> events;
  int published = 0;
  std::unique_ptr<Controller> controller;

  explicit FakeLab(const std::string& text, const std::string& file = "lab.toml") {
    auto topology = parse_topology(text, file);
    add_cluster_objects(topology);
    auto plan = make_plan(topology, test_context());
    auto pods = Executor(kernel, runtime, programs, journal, {}).deploy(plan);
    ControllerOptions options;
    options.restart_backoff = std::chrono::milliseconds(0);
    options.publish = [this](const LabState&) { ++published; };
    options.event = [this](const std::string& e) { events.push_back(e); };
    controller = std::make_unique<Controller>(
        LabState{std::move(topology), test_context(), plan, {}, pods, {}, {}}, kernel, runtime,
        programs, journal, options);
    controller->start();
  }
  const LabState& state() const { return controller->lab(); }
};

}  // namespace knl
