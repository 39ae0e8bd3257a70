// The lab's control loop without root: a lab deployed into the recording
// fakes, then scaled, deleted from, probed, applied to and made to fail, each
// test asserting the kernel calls and program runs made and the state left.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fakes.h"
#include "knetlab/plan/dns.h"
#include "knetlab/realize/controller.h"
#include "knetlab/realize/executor.h"
#include "knetlab/topology/parse.h"

namespace knl {
namespace {

using namespace std::chrono_literals;

constexpr const char* kLab = R"(
name = "ctl"
[network]
kubeProxyMode = "MODE"
[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[nodes]]
name = "c"
[[hosts]]
name = "h"
[[deployments]]
name = "web"
replicas = 3
labels = { app = "web" }
[[deployments.containers]]
name = "server"
image = "netexec"
ports = [{ name = "dns", containerPort = 8081, protocol = "UDP" }]
readiness = { httpGet = "/readyz", port = 8080 }
[[deployments]]
name = "pinned"
replicas = 1
labels = { app = "pinned" }
nodes = ["b"]
[[deployments.containers]]
name = "server"
image = "netexec"
[[services]]
name = "web"
selector = { app = "web" }
[[services.ports]]
name = "dns"
port = 53
targetPort = "dns"
protocol = "UDP"
[[services]]
name = "local"
type = "LoadBalancer"
externalTrafficPolicy = "Local"
selector = { app = "pinned" }
[[services.ports]]
port = 80
targetPort = 8080
)";

// kLab in one kube-proxy mode, with `network` added to its [network] table.
std::string lab_text(const std::string& mode = "nftables", const std::string& network = "") {
  std::string text = kLab;
  text.replace(text.find("MODE"), 4, mode);
  return text.insert(text.find("[network]\n") + 10, network);
}

// A lab deployed into the fakes, under a controller that has started.
struct Lab : FakeLab {
  using FakeLab::FakeLab;
  std::string node_netns(const std::string& node) const { return "knl-ctl-n-" + node; }
  std::string ip_of(const std::string& pod) const {
    for (const auto& p : state().plan.pods)
      if (p.name == pod) return p.ip.str();
    return "";
  }
  std::string node_of(const std::string& pod) const {
    for (const auto& p : state().plan.pods)
      if (p.name == pod) return p.node;
    return "";
  }
  // The pods behind service `name`'s first port.
  std::set<std::string> endpoints(const std::string& name) const {
    std::set<std::string> out;
    for (const auto& e : state().endpoints.at("default/" + name).at(0)) out.insert(e.pod);
    return out;
  }
  // The transactions node `node` took after the first `skip`.
  std::vector<std::string> nft_after(const std::string& node, size_t skip) {
    const auto& all = kernel.nft[node_netns(node)];
    return {all.begin() + static_cast<std::ptrdiff_t>(std::min(skip, all.size())), all.end()};
  }
  size_t nft_count(const std::string& node) { return kernel.nft[node_netns(node)].size(); }
  ProcessRecord container_of(const std::string& pod) const {
    return state().processes.at("default/" + pod).containers.at("server");
  }
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Controller, StartLoadsEveryNodesRulesInOneTransactionAndRoutesTheLoadBalancer) {
  Lab lab(lab_text());
  for (const auto* node : {"a", "b"}) {
    ASSERT_EQ(lab.nft_count(node), 1u) << node;
    const auto& script = lab.kernel.nft[lab.node_netns(node)][0];
    EXPECT_TRUE(contains(script, "add table ip kube-proxy")) << script;
    for (const auto* pod : {"web-0", "web-1", "web-2"})
      EXPECT_TRUE(contains(script, "__" + lab.ip_of(pod) + "/8081")) << pod << " in " << node;
    EXPECT_FALSE(lab.kernel.nft_copies.count(lab.node_netns(node))) << node;
  }
  // The third node copies the first one's tables with its own node IP, and
  // none of its services' rules differ from a's.
  ASSERT_TRUE(lab.kernel.nft_copies.count(lab.node_netns("c")));
  const auto& copy = lab.kernel.nft_copies.at(lab.node_netns("c"));
  EXPECT_EQ(copy.from, lab.node_netns("a"));
  EXPECT_EQ(copy.tables, std::vector<std::string>{"kube-proxy"});
  EXPECT_EQ(copy.elements.at("kube-proxy").at("nodeport-ips"),
            std::vector<std::vector<Ipv4>>{{*Ipv4::parse("172.18.0.4")}});
  EXPECT_EQ(lab.nft_count("c"), 0u);
  EXPECT_EQ(lab.injector.calls_of("nft_renew").size(), 3u) << "a fresh context after the load";
  EXPECT_EQ(lab.endpoints("web"),
            (std::set<std::string>{"default/web-0", "default/web-1", "default/web-2"}));
  // Local: only node b, where pinned-0 runs, passes the cloud's health check.
  const auto& lb = lab.kernel.routes["knl-ctl-lb"];
  auto route = lb.find(*Ipv4Net::parse("172.18.0.200/32"));
  ASSERT_NE(route, lb.end());
  EXPECT_EQ(route->second.nexthops, std::vector<Ipv4>{*Ipv4::parse("172.18.0.3")});
  EXPECT_GE(lab.published, 1);
}

TEST(Controller, ANodeThatCopiesTheFirstNodesTablesLoadsTheServicesWhoseRulesDifferOnIt) {
  // pinned-0 on c: the Local service has a local endpoint on c, none on a.
  std::string text = lab_text();
  text.replace(text.find("nodes = [\"b\"]"), 13, "nodes = [\"c\"]");
  Lab lab(text);
  ASSERT_TRUE(lab.kernel.nft_copies.count(lab.node_netns("c")));
  ASSERT_EQ(lab.nft_count("c"), 1u);
  const auto& diff = lab.kernel.nft[lab.node_netns("c")][0];
  EXPECT_TRUE(contains(diff, "add chain ip kube-proxy local-")) << diff;
  EXPECT_TRUE(contains(diff, "__" + lab.ip_of("pinned-0") + "/8080")) << diff;
  EXPECT_FALSE(contains(diff, "default/web")) << "web's rules are the same on a and c: " << diff;
}

TEST(Controller, ScaleUpPlacesPodsOnTheEmptiestNodesAndSyncsOnlyTheirService) {
  Lab lab(lab_text());
  std::map<std::string, size_t> before;
  for (const auto* node : {"a", "b", "c"}) before[node] = lab.nft_count(node);
  auto r = lab.controller->request(ScaleRequest{"web", 5}).get<ScaleResult>();
  EXPECT_EQ(r.added, (std::vector<std::string>{"default/web-3", "default/web-4"}));
  // a, b and c held web-0, web-1 + pinned-0, web-2, and the cluster DNS's
  // two pods went to a and c: web-3 goes to a (a tie, node order), web-4 to b.
  EXPECT_EQ(lab.node_of("coredns-0"), "a");
  EXPECT_EQ(lab.node_of("coredns-1"), "c");
  EXPECT_EQ(lab.node_of("web-3"), "a");
  EXPECT_EQ(lab.node_of("web-4"), "b");
  EXPECT_EQ(lab.ip_of("web-3"), "10.244.0.4");  // a's next address, after coredns-0's
  EXPECT_EQ(lab.endpoints("web").size(), 5u);
  for (const auto* node : {"a", "b", "c"}) {
    auto added = lab.nft_after(node, before[node]);
    ASSERT_EQ(added.size(), 1u) << node << ": one transaction per node and sync";
    EXPECT_TRUE(contains(added[0], "__" + lab.ip_of("web-4") + "/8081")) << added[0];
    EXPECT_FALSE(contains(added[0], "pinned")) << "an unchanged service was rewritten";
  }
  EXPECT_TRUE(lab.programs.runs_of("conntrack").empty()) << "no endpoint went away";
}

TEST(Controller, ASyncOfManyServicesRunsInAChildLikeAFirstLoad) {
  std::string text = lab_text();
  for (int i = 0; i < 600; ++i)
    text += fmt::format(
        "[[services]]\nname = \"s{}\"\nselector = {{ app = \"web\" }}\n"
        "ports = [{{ port = 80, targetPort = 8080 }}]\n",
        i);
  Lab lab(text);
  const auto renewed = lab.injector.calls_of("nft_renew").size();
  lab.controller->request(ScaleRequest{"web", 5});
  EXPECT_EQ(lab.injector.calls_of("nft_renew").size(), renewed + 3)
      << "601 services changed on each of three nodes: Kernel::nft_load";
  for (const auto* node : {"a", "b", "c"})
    EXPECT_TRUE(contains(lab.kernel.nft[lab.node_netns(node)].back(), lab.ip_of("web-4")));
  // One service's change stays in the supervisor's own context.
  lab.controller->request(ScaleRequest{"pinned", 2});
  EXPECT_EQ(lab.injector.calls_of("nft_renew").size(), renewed + 3);
}

TEST(Controller, ScaleDownRemovesTheNewestPodsAndTheirUdpConntrackEntries) {
  Lab lab(lab_text());
  auto web1 = lab.ip_of("web-1"), web2 = lab.ip_of("web-2");
  auto r = lab.controller->request(ScaleRequest{"web", 1}).get<ScaleResult>();
  EXPECT_EQ(r.removed, (std::vector<std::string>{"default/web-2", "default/web-1"}));
  EXPECT_EQ(lab.endpoints("web"), (std::set<std::string>{"default/web-0"}));
  EXPECT_FALSE(lab.kernel.links.count("knl-ctl-p-default-web-2"));
  EXPECT_FALSE(lab.state().processes.count("default/web-1"));
  // kube-proxy deletes the UDP entries toward each removed endpoint, on every node.
  auto conntrack = lab.programs.runs_of("conntrack");
  for (const auto& ip : {web1, web2}) {
    auto line = "conntrack -D -p udp --orig-dst 10.96.0.11 --dst-nat " + ip;
    EXPECT_EQ(std::count(conntrack.begin(), conntrack.end(), line), 3) << line;
  }
  // Scaling up again continues the names: no pod name comes back.
  lab.controller->request(ScaleRequest{"web", 2});
  EXPECT_EQ(lab.endpoints("web"), (std::set<std::string>{"default/web-0", "default/web-3"}));
}

TEST(Controller, DeleteTakesThePodOutOfItsEndpointsThenReplacesIt) {
  Lab lab(lab_text());
  auto r = lab.controller->request(DeleteRequest{"web-0"}).get<DeleteResult>();
  EXPECT_EQ(r.deleted, "default/web-0");
  ASSERT_TRUE(r.replacement);
  EXPECT_EQ(*r.replacement, "default/web-3");
  EXPECT_EQ(lab.endpoints("web"),
            (std::set<std::string>{"default/web-1", "default/web-2", "default/web-3"}));
  EXPECT_THROW(lab.controller->request(DeleteRequest{"nope"}), UserError);
  EXPECT_THROW(lab.controller->request(ScaleRequest{"nope", 1}), UserError);
}

TEST(Controller, AFailedReadinessProbeTakesThePodOutUntilItPassesAgain) {
  Lab lab(lab_text());
  size_t before = lab.nft_count("c");
  lab.runtime.failing.insert("default/web-1/server");
  lab.controller->tick();
  EXPECT_EQ(lab.endpoints("web"), (std::set<std::string>{"default/web-0", "default/web-2"}));
  auto synced = lab.nft_after("c", before);
  ASSERT_EQ(synced.size(), 1u);
  EXPECT_TRUE(contains(synced[0], "flush chain ip kube-proxy endpoint-")) << synced[0];
  // The next tick deletes web-1's endpoint chain, which the sync flushed.
  lab.controller->tick();
  synced = lab.nft_after("c", before + 1);
  ASSERT_EQ(synced.size(), 1u);
  EXPECT_TRUE(contains(synced[0], "delete chain ip kube-proxy endpoint-")) << synced[0];
  EXPECT_TRUE(contains(synced[0], lab.ip_of("web-1"))) << synced[0];
  lab.controller->tick();
  EXPECT_EQ(lab.nft_count("c"), before + 2) << "nothing changed, nothing synced";
  lab.runtime.failing.clear();
  lab.controller->tick();
  EXPECT_EQ(lab.endpoints("web").size(), 3u);
}

TEST(Controller, AnExitedContainerLeavesItsEndpointsAndIsRestartedInItsPod) {
  Lab lab(lab_text());
  auto old = lab.container_of("web-2");
  lab.runtime.stop({old});
  lab.controller->exited(old.pid, 1);
  lab.controller->settle();
  EXPECT_EQ(lab.endpoints("web"), (std::set<std::string>{"default/web-0", "default/web-1"}));
  lab.controller->tick();  // the back-off is 0 here: restarted, and probed ready
  EXPECT_NE(lab.container_of("web-2").pid, old.pid);
  EXPECT_TRUE(lab.runtime.alive(lab.container_of("web-2")));
  EXPECT_EQ(lab.endpoints("web").size(), 3u);
  bool journaled = false;
  for (const auto& e : lab.journal.entries())
    journaled |=
        e.name == "container:default/web-2/server" && e.process == lab.container_of("web-2");
  EXPECT_TRUE(journaled) << "the restarted container is not in the journal";
}

TEST(Controller, ALocalServicesAnnouncementFollowsItsEndpoint) {
  Lab lab(lab_text("nftables", "loadBalancerMode = \"bgp\"\n"));
  auto network = [&](const std::string& node, bool announce) {
    return fmt::format(
        "vtysh --vty_socket /run/knetlab/ctl/frr/node-{} -c configure terminal -c "
        "router bgp 64512 -c address-family ipv4 unicast -c {}network "
        "172.18.255.200/32",
        node, announce ? "" : "no ");
  };
  auto vtysh = lab.programs.runs_of("vtysh");
  EXPECT_EQ(vtysh, std::vector<std::string>{network("b", true)}) << "only b has the endpoint";
  lab.controller->request(ScaleRequest{"pinned", 0});
  lab.controller->request(ScaleRequest{"pinned", 1});
  vtysh = lab.programs.runs_of("vtysh");
  ASSERT_EQ(vtysh.size(), 3u);
  EXPECT_EQ(vtysh[1], network("b", false));
  EXPECT_EQ(vtysh[2], network("b", true)) << "pinned may only go to b";
  // A bgpd that refuses is asked again by every pass, and after the next tick.
  lab.programs.answer = [](const ProgramCall&) { return ProgramResult{1, "bgpd is not up"}; };
  lab.controller->request(ScaleRequest{"pinned", 0});
  lab.programs.answer = nullptr;
  auto refused = lab.programs.runs_of("vtysh").size();
  lab.controller->tick();
  vtysh = lab.programs.runs_of("vtysh");
  ASSERT_EQ(vtysh.size(), refused + 1);
  EXPECT_EQ(vtysh.back(), network("b", false));
  lab.controller->tick();
  EXPECT_EQ(lab.programs.runs_of("vtysh").size(), refused + 1) << "withdrawn: nothing to retry";
}

TEST(Controller, ApplyAddsANodeThatGetsEveryServicesRules) {
  auto dir = std::filesystem::temp_directory_path() / "knetlab-controller-test";
  std::filesystem::create_directories(dir);
  auto file = (dir / "lab.toml").string();
  Lab lab(lab_text(), file);
  std::ofstream(file) << lab_text() << "[[nodes]]\nname = \"d\"\n";
  auto r = lab.controller->request(ApplyRequest{file}).get<ApplyResult>();
  EXPECT_EQ(r.nodes, std::vector<std::string>{"d"});
  ASSERT_EQ(lab.nft_count("d"), 1u);
  EXPECT_TRUE(contains(lab.kernel.nft[lab.node_netns("d")][0], "add table ip kube-proxy"));
  EXPECT_TRUE(lab.kernel.links["knl-ctl-n-d"].count("flannel.1"));
  // The running pods kept their nodes and addresses.
  EXPECT_EQ(lab.node_of("web-1"), "b");
  std::ofstream(file) << lab_text()
                      << "[[nodes]]\nname = \"d\"\n[[nodes]]\nname = \"e\"\nrole = \"x\"\n";
  EXPECT_THROW(lab.controller->request(ApplyRequest{file}), UserError);
  std::filesystem::remove_all(dir);
}

TEST(Controller, ApplyAfterScaleMakesOnlyWhatIsMissing) {
  auto dir = std::filesystem::temp_directory_path() / "knetlab-controller-scale-test";
  std::filesystem::create_directories(dir);
  auto file = (dir / "lab.toml").string();
  Lab lab(lab_text(), file);
  lab.controller->request(ScaleRequest{"web", 4});
  auto with_replicas = [&](int n) {
    auto text = lab_text();
    text.replace(text.find("replicas = 3"), 12, fmt::format("replicas = {}", n));
    std::ofstream(file) << text;
  };
  // The scaled pods are the file's now: nothing to make.
  with_replicas(4);
  auto before = lab.injector.calls_of("create_netns").size();
  auto r = lab.controller->request(ApplyRequest{file}).get<ApplyResult>();
  EXPECT_TRUE(r.pods.empty());
  EXPECT_EQ(lab.injector.calls_of("create_netns").size(), before);
  // Pods deleted by scale are made again, with their namespaces.
  lab.controller->request(ScaleRequest{"web", 1});
  with_replicas(3);
  r = lab.controller->request(ApplyRequest{file}).get<ApplyResult>();
  EXPECT_EQ(r.pods, (std::vector<std::string>{"default/web-1", "default/web-2"}));
  auto made = lab.injector.calls_of("create_netns");
  EXPECT_EQ(
      std::vector<std::string>(made.begin() + static_cast<std::ptrdiff_t>(before), made.end()),
      (std::vector<std::string>{"create_netns knl-ctl-p-default-web-1",
                                "create_netns knl-ctl-p-default-web-2"}));
  std::filesystem::remove_all(dir);
}

TEST(Controller, ANodeWhoseTransactionIsRefusedKeepsItsRulesAndIsSyncedOnTheNextTick) {
  Lab lab(lab_text());
  size_t a = lab.nft_count("a"), b = lab.nft_count("b"), c = lab.nft_count("c");
  lab.injector.fail_kind = "nft_apply";
  lab.injector.fail_kind_at = 2;  // node b's
  EXPECT_THROW(lab.controller->request(ScaleRequest{"web", 4}), SystemError);
  EXPECT_EQ(lab.nft_count("a"), a + 1);
  EXPECT_EQ(lab.nft_count("b"), b) << "the refused transaction was recorded as applied";
  EXPECT_EQ(lab.nft_count("c"), c + 1);
  EXPECT_EQ(lab.endpoints("web").size(), 4u) << "the endpoints are the API's: they changed";
  lab.controller->tick();
  auto retried = lab.nft_after("b", b);
  ASSERT_EQ(retried.size(), 1u);
  EXPECT_TRUE(contains(retried[0], "__" + lab.ip_of("web-3") + "/8081")) << retried[0];
  EXPECT_EQ(lab.nft_after("a", a + 1).size(), 0u) << "node a was synced already";
}

TEST(Controller, AnIptablesRestoreThatFailsIsRunAgainOnTheNextTick) {
  Lab lab(lab_text("iptables"));
  auto restores = [&] { return lab.programs.runs_of("iptables-restore").size(); };
  ASSERT_EQ(restores(), 3u);
  int run = 0;
  lab.programs.answer = [&](const ProgramCall& call) {
    if (call.argv[0] == "iptables-restore" && ++run == 2)
      return ProgramResult{2, "iptables-restore: line 7 failed"};
    return ProgramResult{};
  };
  try {
    lab.controller->request(ScaleRequest{"web", 4});
    FAIL() << "the refusal was not reported";
  } catch (const SystemError& e) {
    EXPECT_TRUE(contains(e.what(), "line 7 failed")) << e.what();
  }
  EXPECT_EQ(restores(), 6u);
  lab.controller->tick();
  ASSERT_EQ(restores(), 7u);
  EXPECT_EQ(lab.programs.calls.back().netns, lab.node_netns("b"));
  EXPECT_TRUE(contains(lab.programs.calls.back().input, lab.ip_of("web-3") + ":8081"));
  lab.controller->tick();
  EXPECT_EQ(restores(), 7u) << "synced: nothing more to retry";
}

}  // namespace
}  // namespace knl
