// The executor against a recording fake of the kernel and the runtime: the
// order of creation, the journal written ahead, and a failure injected at
// every step in turn leaving nothing behind.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "knetlab/kernel/kernel.h"
#include "knetlab/realize/executor.h"
#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {
namespace {

// Counts the calls of both fakes and throws at the N-th, like a kernel refusing.
struct Injector {
  int calls = 0;
  int fail_at = -1;
  std::vector<std::string> log;
  void call(const std::string& what) {
    ++calls;
    log.push_back(what);
    if (calls == fail_at) throw SystemError("injected failure at " + what, EIO);
  }
};

// Keeps what a kernel would hold: namespaces and the links inside them.
class FakeKernel final : public Kernel {
 public:
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
  void delete_netns(const std::string& name) override { links.erase(name); }
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
  }
  void delete_route(const std::string& netns, const Ipv4Net& dst) override {
    in_.call("delete_route " + netns + " " + dst.str());
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

  std::map<std::string, std::set<std::string>> links;  // netns -> link names

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

class FakeRuntime final : public Runtime {
 public:
  explicit FakeRuntime(Injector& injector) : in_(injector) {}
  void write_file(const FileSpec& f) override {
    in_.call("write_file " + f.path);
    if (auto pods = f.path.find("/pods/"); pods != std::string::npos) {
      EXPECT_TRUE(mounts.count(f.path.substr(0, pods + 5)))
          << f.path << " written outside the tmpfs";
    }
    files.insert(f.path);
  }
  void remove_tree(const std::string& dir) override {
    for (auto it = files.begin(); it != files.end();)
      it = it->rfind(dir + "/", 0) == 0 ? files.erase(it) : std::next(it);
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
  void stop_namespace_members(const std::vector<std::string>&) override {}
  bool probe_readiness(const PodPlan&, const ContainerPlan&) override { return true; }
  void wait_ready(const std::vector<const PodPlan*>& pods,
                  const std::map<std::string, PodProcesses>& processes,
                  std::chrono::steady_clock::time_point) override {
    in_.call("wait_ready");
    for (const auto* pod : pods)
      for (const auto& [name, p] : processes.at(pod->key()).containers)
        EXPECT_TRUE(alive(p)) << pod->key() << "/" << name;
  }

  std::set<int> running;
  std::set<std::string> files, mounts;

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

Plan lab_plan() {
  auto topology = parse_topology(R"(
name = "fake"
[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[hosts]]
name = "h"
[[deployments]]
name = "web"
replicas = 3
[[deployments.containers]]
name = "server"
image = "shell"
[[deployments.containers]]
name = "sidecar"
image = "shell"
)",
                                 "fake.toml");
  PlanContext context;
  context.images = {{"shell", {"shell", "/bin/pause", {}}}};
  return make_plan(topology, context);
}

TEST(Executor, BuildsEveryObjectAfterWhatItNeeds) {
  auto plan = lab_plan();
  Injector injector;
  auto journal = Journal::in_memory();
  FakeKernel kernel(injector, &journal);
  FakeRuntime runtime(injector);
  auto pods = Executor(kernel, runtime, journal, {}).deploy(plan);

  EXPECT_EQ(kernel.links.size(), plan.namespaces.size());
  EXPECT_TRUE(kernel.links["knl-fake-n-a"].count("flannel.1"));
  EXPECT_TRUE(kernel.links["knl-fake-p-default-web-1"].count("eth0"));
  ASSERT_EQ(pods.size(), 3u);
  EXPECT_EQ(pods.at("default/web-2").containers.size(), 2u);
  EXPECT_EQ(runtime.running.size(), 1u + 3u * 3u);  // template + (sandbox + 2 containers) * 3
  // Namespaces are all created before the first link; the pods come last.
  auto first = [&](const std::string& prefix) {
    for (size_t i = 0; i < injector.log.size(); ++i)
      if (injector.log[i].rfind(prefix, 0) == 0) return i;
    return injector.log.size();
  };
  auto last = [&](const std::string& prefix) {
    size_t found = 0;
    for (size_t i = 0; i < injector.log.size(); ++i)
      if (injector.log[i].rfind(prefix, 0) == 0) found = i;
    return found;
  };
  // The lab's other namespaces and their links come first; then each pod's
  // namespace is wired as soon as it is made.
  EXPECT_LT(last("create_netns knl-fake-h"), first("add_link"));
  EXPECT_LT(last("add_route knl-fake-n-"), first("create_netns knl-fake-p-"));
  for (const auto& pod : {"web-0", "web-1", "web-2"}) {
    auto netns = std::string("knl-fake-p-default-") + pod;
    EXPECT_EQ(injector.log[first("create_netns " + netns) + 1].rfind("add_link", 0), 0u)
        << netns << " was not wired right after it was made";
    EXPECT_LT(first("create_netns " + netns), first("add_address " + netns));
    EXPECT_LT(first("add_address " + netns), first("add_route " + netns));
    // Its files too, before the next namespace is made.
    auto hosts = first("write_file " + plan.run_dir + "/pods/default_" + pod + "/hosts");
    EXPECT_LT(first("add_route " + netns), hosts);
    EXPECT_LT(hosts, injector.log.size()) << pod << "'s hosts file was not written";
    for (size_t i = first("create_netns " + netns) + 1; i < hosts; ++i)
      EXPECT_NE(injector.log[i].rfind("create_netns", 0), 0u)
          << pod << "'s files were written after " << injector.log[i];
  }
  EXPECT_LT(first("mount_tmpfs"), first("create_netns knl-fake-p-"));
  EXPECT_LT(first("release_handles"), first("start sandbox"));
  EXPECT_EQ(injector.log.back(), "wait_ready");
}

// Deploys `plan` once per call it makes, failing that call: every time,
// nothing may be left.
void expect_rollback_at_every_step(const Plan& plan) {
  Injector counting;
  {
    auto journal = Journal::in_memory();
    FakeKernel kernel(counting, nullptr);
    FakeRuntime runtime(counting);
    Executor(kernel, runtime, journal, {}).deploy(plan);
  }
  ASSERT_GT(counting.calls, 40);
  for (int n = 1; n <= counting.calls; ++n) {
    Injector injector;
    injector.fail_at = n;
    auto journal = Journal::in_memory();
    FakeKernel kernel(injector, &journal);
    FakeRuntime runtime(injector);
    try {
      Executor(kernel, runtime, journal, {}).deploy(plan);
      FAIL() << "no failure at call " << n;
    } catch (const SystemError& e) {
      EXPECT_NE(std::string(e.what()).find("injected failure"), std::string::npos);
    }
    EXPECT_TRUE(kernel.links.empty())
        << "namespaces left after a failure at call " << n << " (" << injector.log.back() << ")";
    EXPECT_TRUE(runtime.running.empty()) << "processes left after a failure at call " << n;
    EXPECT_TRUE(runtime.files.empty()) << "files left after a failure at call " << n;
    EXPECT_TRUE(runtime.mounts.empty()) << "tmpfs left after a failure at call " << n;
  }
}

TEST(Executor, AFailureAtAnyStepRollsEverythingBack) {
  expect_rollback_at_every_step(lab_plan());
}

TEST(Executor, AFailureAtAnyStepOfABgpLabStopsItsFrrDaemonsToo) {
  auto topology = parse_topology(R"(
name = "fakebgp"
[network]
cni = "bgp"
[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[deployments]]
name = "web"
replicas = 2
[[deployments.containers]]
name = "server"
image = "shell"
)",
                                 "fakebgp.toml");
  PlanContext context;
  context.images = {{"shell", {"shell", "/bin/pause", {}}}};
  auto plan = make_plan(topology, context);
  ASSERT_EQ(plan.daemons.size(), 4u);
  expect_rollback_at_every_step(plan);
}

TEST(Executor, UndoIsIdempotent) {
  auto plan = lab_plan();
  Injector injector;
  auto journal = Journal::in_memory();
  FakeKernel kernel(injector, &journal);
  FakeRuntime runtime(injector);
  Executor(kernel, runtime, journal, {}).deploy(plan);
  Executor::undo(journal.entries(), kernel, runtime);
  EXPECT_TRUE(kernel.links.empty());
  EXPECT_TRUE(runtime.running.empty());
  EXPECT_NO_THROW(Executor::undo(journal.entries(), kernel, runtime));
}

TEST(Executor, OnlyNamespacesThatWereCreatedAreUndone) {
  auto plan = lab_plan();
  ASSERT_GT(plan.namespaces.size(), 3U);
  Injector injector;
  injector.fail_at = 3;  // the third namespace
  auto journal = Journal::in_memory();
  FakeKernel kernel(injector, &journal);
  FakeRuntime runtime(injector);
  EXPECT_THROW(Executor(kernel, runtime, journal, {}).deploy(plan), SystemError);
  std::set<std::string> journaled;
  for (const auto& e : journal.entries()) journaled.insert(e.name);
  // All were journaled before any was created; the failed one's name may be
  // another's, and the rest were never made.
  for (size_t i = 0; i < plan.namespaces.size(); ++i)
    EXPECT_EQ(journaled.count(plan.namespaces[i].name), i < 2 ? 1U : 0U) << i;
}

TEST(Journal, SurvivesARoundTripThroughItsFile) {
  auto path = std::filesystem::temp_directory_path() / "knetlab-journal-test";
  std::filesystem::remove(path);
  std::vector<JournalEntry> written = {
      {JournalEntry::Kind::netns, "knl-x-lan", {}},
      {JournalEntry::Kind::dir, "/run/knetlab/x/pods", {}},
      {JournalEntry::Kind::mount, "/run/knetlab/x/pods", {}},
      {JournalEntry::Kind::process, "sandbox:default/web-0", {4242, 987654}},
      {JournalEntry::Kind::netns, "knl-x-n-a", {}},
  };
  {
    auto journal = Journal::open_file(path);
    journal.record(written[0]);
    journal.record(std::vector<JournalEntry>(written.begin() + 1, written.end()));  // one write
    journal.cancel(written[4]);
  }
  {  // a crash in the middle of a line leaves a fragment
    std::FILE* f = std::fopen(path.c_str(), "a");
    std::fputs("process 12", f);
    std::fclose(f);
  }
  auto read = Journal::read_file(path);
  written.pop_back();
  EXPECT_EQ(read, written);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace knl
