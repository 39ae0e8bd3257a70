// The executor against a recording fake of the kernel and the runtime: the
// order of creation, the journal written ahead, and a failure injected at
// every step in turn leaving nothing behind.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "fakes.h"
#include "knetlab/realize/executor.h"
#include "knetlab/topology/parse.h"
#include "knetlab/util/error.h"

namespace knl {
namespace {

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
  FakePrograms programs(injector);
  auto pods = Executor(kernel, runtime, programs, journal, {}).deploy(plan);

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
    FakePrograms programs(counting);
    auto copy = plan;
    Executor(kernel, runtime, programs, journal, {}).deploy(copy);
  }
  ASSERT_GT(counting.calls, 40);
  for (int n = 1; n <= counting.calls; ++n) {
    Injector injector;
    injector.fail_at = n;
    auto journal = Journal::in_memory();
    FakeKernel kernel(injector, &journal);
    FakeRuntime runtime(injector);
    FakePrograms programs(injector);
    try {
      auto copy = plan;
      Executor(kernel, runtime, programs, journal, {}).deploy(copy);
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
  FakePrograms programs(injector);
  Executor(kernel, runtime, programs, journal, {}).deploy(plan);
  Executor::undo(journal.entries(), kernel, runtime, programs);
  EXPECT_TRUE(kernel.links.empty());
  EXPECT_TRUE(runtime.running.empty());
  EXPECT_NO_THROW(Executor::undo(journal.entries(), kernel, runtime, programs));
}

TEST(Executor, OnlyNamespacesThatWereCreatedAreUndone) {
  auto plan = lab_plan();
  ASSERT_GT(plan.namespaces.size(), 3U);
  Injector injector;
  injector.fail_at = 3;  // the third namespace
  auto journal = Journal::in_memory();
  FakeKernel kernel(injector, &journal);
  FakeRuntime runtime(injector);
  FakePrograms programs(injector);
  EXPECT_THROW(Executor(kernel, runtime, programs, journal, {}).deploy(plan), SystemError);
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
