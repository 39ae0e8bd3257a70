// Root integration tests of the FRR-routed labs: pod networks by BGP (mesh
// and through racks' routers), a routed underlay under VXLAN, and
// LoadBalancer addresses announced by BGP. Real packets; assertions on which
// pod answered, which address it saw and which routes the kernels hold.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace knl::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// `ip -j route` of a target, as JSON.
json routes(const Lab& lab, const std::string& target) {
  auto r = lab.exec(target, {"ip", "-j", "route", "show"});
  EXPECT_EQ(r.status, 0) << r.err;
  return json::parse(r.out.empty() ? "[]" : r.out);
}

// The route to `dst` ("10.244.1.0/24" or a bare address for a /32), or null.
json route_to(const Lab& lab, const std::string& target, const std::string& dst) {
  for (const auto& r : routes(lab, target))
    if (r["dst"] == dst) return r;
  return nullptr;
}

// Polls `check` every 100 ms until it holds or `seconds` pass.
bool eventually(int seconds, const std::function<bool()>& check) {
  auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return check();
}

std::map<std::string, std::string> bgp_states(const Lab& lab, const std::string& target) {
  auto r = knetlab({"vtysh", "--lab", lab.name(), target, "-c", "show bgp neighbors json"});
  EXPECT_EQ(r.status, 0) << r.err;
  std::map<std::string, std::string> states;
  auto text = r.out.substr(std::min(r.out.find('{'), r.out.size()));
  auto neighbors = json::parse(text.empty() ? "{}" : text);
  for (const auto& [peer, info] : neighbors.items()) states[peer] = info["bgpState"];
  return states;
}

// Every pod of `pods` asks every other for /clientip over TCP and for
// "clientip" over UDP: it must answer, and see the asking pod's own address.
void all_pairs_without_nat(const Lab& lab, const std::vector<std::string>& pods) {
  auto ips = lab.pod_ips();
  for (const auto& from : pods)
    for (const auto& to : pods) {
      if (from == to) continue;
      auto tcp = lab.exec(
          "pod/" + from,
          {"netexec", "get", fmt::format("http://{}:8080/clientip", ips[to]), "--timeout=3"});
      EXPECT_EQ(tcp.out.substr(0, tcp.out.find(':')), ips[from])
          << from << " -> " << to << " over TCP: " << tcp.out << tcp.err;
      auto udp =
          lab.exec("pod/" + from, {"netexec", "udp", ips[to] + ":8081", "clientip", "--timeout=3"});
      EXPECT_EQ(udp.out.substr(0, udp.out.find(':')), ips[from])
          << from << " -> " << to << " over UDP: " << udp.out << udp.err;
    }
}

TEST(ROOT_Bgp, MeshRoutesPodsWithoutTunnelOrNat) {
  KNL_REQUIRE_ROOT();
  Lab lab("itbgp", source_file("topologies/bgp.toml"));
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  auto state = lab.inspect();
  ASSERT_EQ(state["nodes"].size(), 3u);
  for (const auto& node : state["nodes"]) {
    std::string target = "node/" + node["name"].get<std::string>();
    // Two iBGP sessions each, Established.
    auto states = bgp_states(lab, target);
    EXPECT_EQ(states.size(), 2u) << target;
    for (const auto& [peer, s] : states) EXPECT_EQ(s, "Established") << target << " " << peer;
    // The other nodes' pod CIDRs, learnt by BGP, straight via their node.
    for (const auto& other : state["nodes"]) {
      if (other["name"] == node["name"]) continue;
      auto r = route_to(lab, target, other["podCIDR"]);
      ASSERT_FALSE(r.is_null()) << target << " has no route to " << other["podCIDR"];
      EXPECT_EQ(r["protocol"], "bgp") << r;
      EXPECT_EQ(r["gateway"], other["ip"]) << r;
      EXPECT_EQ(r["dev"], "eth0") << r;
    }
    // No tunnel device at all.
    auto links = lab.exec(target, {"ip", "-d", "-j", "link", "show"});
    for (const auto& link : json::parse(links.out))
      EXPECT_NE(link.value("linkinfo", json::object()).value("info_kind", ""), "vxlan")
          << target << " has a tunnel: " << link["ifname"];
  }
  all_pairs_without_nat(lab, {"web-0", "web-1", "web-2"});
  // The configuration a trainee opens: commented, and what it announces.
  auto conf = read_text(state["nodes"][1]["frr"]["dir"].get<std::string>() + "/frr.conf");
  EXPECT_NE(conf.find("! FRR configuration of node/worker1"), std::string::npos) << conf;
  EXPECT_NE(conf.find("network " + state["nodes"][1]["podCIDR"].get<std::string>()),
            std::string::npos)
      << conf;
}

TEST(ROOT_Bgp, KillingANodesBgpdWithdrawsItsPodRouteUntilItIsRestarted) {
  KNL_REQUIRE_ROOT();
  Lab lab("itbgpkill", source_file("topologies/bgp.toml"));
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  auto state = lab.inspect();
  auto worker2 = state["nodes"][2];
  ASSERT_EQ(worker2["name"], "worker2");
  std::string cidr = worker2["podCIDR"];
  ASSERT_FALSE(route_to(lab, "node/worker1", cidr).is_null());
  auto dir = worker2["frr"]["dir"].get<std::string>();
  int pid = std::stoi(read_text(dir + "/bgpd.pid"));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  // The TCP session closes: the peers withdraw worker2's pod CIDR at once.
  EXPECT_TRUE(eventually(10, [&] {
    return route_to(lab, "node/worker1", cidr).is_null() &&
           route_to(lab, "node/control-plane", cidr).is_null();
  })) << "worker2's pod route stayed after its bgpd died";
  auto ips = lab.pod_ips();
  auto cut = lab.exec(
      "pod/web-1", {"netexec", "get", "http://" + ips["web-2"] + ":8080/hostname", "--timeout=1"});
  EXPECT_NE(cut.status, 0) << "web-1 still reached web-2: " << cut.out;
  // check sees it too (its first probes run before the restart is due):
  // web-2 on worker2 and the other nodes' pods no longer reach each other.
  auto check = knetlab({"check", "--lab", lab.name()});
  EXPECT_EQ(check.status, 1) << check.out;
  std::istringstream rows(check.out);
  bool seen = false;
  for (std::string row; std::getline(rows, row);)
    seen = seen ||
           (row.find("web-2") != std::string::npos && row.find("timeout") != std::string::npos &&
            row.find("DIFFERS") != std::string::npos);
  EXPECT_TRUE(seen) << check.out;
  // The supervisor starts it again after its back-off (10 s), as watchfrr would.
  EXPECT_TRUE(eventually(30, [&] { return !route_to(lab, "node/worker1", cidr).is_null(); }))
      << "worker2's pod route did not come back";
  auto back = lab.exec(
      "pod/web-1", {"netexec", "get", "http://" + ips["web-2"] + ":8080/hostname", "--timeout=3"});
  EXPECT_EQ(back.out, "web-2") << back.err;
  auto events = read_text("/run/knetlab/itbgpkill/events.log");
  EXPECT_NE(events.find("bgpd of node/worker2 exited"), std::string::npos) << events;
  EXPECT_NE(events.find("bgpd of node/worker2 restarted"), std::string::npos) << events;
}

TEST(ROOT_Bgp, ApplyAddsANodeWithoutRestartingTheOtherSessions) {
  KNL_REQUIRE_ROOT();
  auto full = renamed(source_file("topologies/bgp.toml"), "itgrow");
  auto small = full;
  const std::string worker2 = "[[nodes]]\nname = \"worker2\"\n";
  small.replace(small.find(worker2), worker2.size(), "");
  small.replace(small.find("replicas = 3"), 12, "replicas = 2");
  Lab lab("itgrow", small);
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  auto before = lab.inspect();
  ASSERT_EQ(before["nodes"].size(), 2u);
  auto established = [&](const std::string& target) {
    auto r = knetlab({"vtysh", "--lab", "itgrow", target, "-c", "show bgp neighbors json"});
    auto json_text = r.out.substr(std::min(r.out.find('{'), r.out.size()));
    auto neighbors = json::parse(json_text.empty() ? "{}" : json_text);
    std::map<std::string, int> counts;
    for (const auto& [peer, info] : neighbors.items())
      counts[peer] = info.value("connectionsEstablished", 0);
    return counts;
  };
  auto cp_before = established("node/control-plane");
  ASSERT_EQ(cp_before.size(), 1u);

  auto file = "/tmp/knetlab-test-itgrow-full.toml";
  std::ofstream(file) << full;
  auto r = knetlab({"apply", file});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("added node/worker2, pod/default/web-2"), std::string::npos) << r.err;
  auto after = lab.inspect();
  ASSERT_EQ(after["nodes"].size(), 3u);
  EXPECT_EQ(after["hosts"][0]["ip"], before["hosts"][0]["ip"]) << "the host kept its address";
  EXPECT_NE(after["nodes"][2]["ip"], after["hosts"][0]["ip"]);
  for (size_t i = 0; i < 2; ++i)
    for (const auto* key : {"name", "ip", "podCIDR", "netns"})
      EXPECT_EQ(after["nodes"][i][key], before["nodes"][i][key]) << key;
  // The old session was not restarted; both old nodes now peer with worker2.
  auto cp_after = established("node/control-plane");
  EXPECT_EQ(cp_after.size(), 2u);
  for (const auto& [peer, count] : cp_before) EXPECT_EQ(cp_after[peer], count) << peer;
  std::string worker2_cidr = after["nodes"][2]["podCIDR"];
  for (const auto* node : {"node/control-plane", "node/worker1"}) {
    auto route = route_to(lab, node, worker2_cidr);
    ASSERT_FALSE(route.is_null()) << node;
    EXPECT_EQ(route["protocol"], "bgp");
  }
  auto conf = read_text(after["nodes"][1]["frr"]["dir"].get<std::string>() + "/frr.conf");
  EXPECT_NE(conf.find("neighbor " + after["nodes"][2]["ip"].get<std::string>() + " remote-as"),
            std::string::npos)
      << conf;
  all_pairs_without_nat(lab, {"web-0", "web-1", "web-2"});
  // kube-proxy runs on the new node, and the service has the new pod.
  auto rules = lab.exec("node/worker2", {"nft", "list", "table", "ip", "kube-proxy"});
  EXPECT_EQ(rules.status, 0) << rules.err;
  auto eps = knetlab({"get", "endpoints", "web", "--lab", "itgrow", "-o", "json"});
  EXPECT_EQ(json::parse(eps.out)["items"][0]["endpoints"].size(), 3u) << eps.out;
  // Taking the node away again is not what apply does.
  std::ofstream(file) << small;
  r = knetlab({"apply", file});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("node worker2 is removed"), std::string::npos) << r.err;
  std::filesystem::remove(file);
}

// racks.toml: 2 racks × 2 nodes behind FRR ToRs and a spine, pods routed by
// BGP through the fabric, LoadBalancer IPs announced by the nodes.
class ROOT_Racks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    lab_ = new Lab("itracks", source_file("topologies/racks.toml"));
  }
  static void TearDownTestSuite() {
    delete lab_;
    lab_ = nullptr;
  }
  void SetUp() override {
    KNL_REQUIRE_ROOT();
    ASSERT_TRUE(lab_->ok()) << lab_->deployed().err;
    auto state = lab_->inspect();
    for (const auto& s : state["services"])
      if (s["loadBalancerIP"].is_string()) lb_ip_[s["name"]] = s["loadBalancerIP"];
    for (const auto& h : state["hosts"]) host_ip_[h["name"]] = h["ip"];
  }
  static Lab* lab_;
  std::map<std::string, std::string> lb_ip_, host_ip_;
};
Lab* ROOT_Racks::lab_ = nullptr;

TEST_F(ROOT_Racks, PodsReachPodsInTheOtherRackWithTheirOwnAddress) {
  auto state = lab_->inspect();
  std::map<std::string, std::string> rack_of;
  for (const auto& n : state["nodes"]) rack_of[n["name"]] = n["rack"];
  for (const auto& p : state["pods"]) EXPECT_FALSE(rack_of[p["node"]].empty());
  // web-0 and web-1 are in rack1, web-2 and web-3 in rack2; TCP only (no UDP port here).
  auto ips = lab_->pod_ips();
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"web-0", "web-2"}, {"web-3", "web-1"}, {"web-0", "web-1"}}) {
    auto seen = lab_->exec(
        "pod/" + from,
        {"netexec", "get", fmt::format("http://{}:8080/clientip", ips[to]), "--timeout=3"});
    EXPECT_EQ(seen.out.substr(0, seen.out.find(':')), ips[from]) << from << " -> " << to;
  }
}

TEST_F(ROOT_Racks, TheSpineKnowsEveryRackAndPodCidrByBgp) {
  auto state = lab_->inspect();
  for (const auto& r : state["routers"]) {
    if (r["name"] == "spine") continue;
    auto route = route_to(*lab_, "router/spine", r["subnet"]);
    ASSERT_FALSE(route.is_null()) << r["subnet"];
    EXPECT_EQ(route["protocol"], "bgp");
  }
  for (const auto& n : state["nodes"]) {
    auto route = route_to(*lab_, "router/spine", n["podCIDR"]);
    ASSERT_FALSE(route.is_null()) << n["podCIDR"];
    EXPECT_EQ(route["protocol"], "bgp");
    EXPECT_EQ(route["dev"], "to-" + n["rack"].get<std::string>()) << route;
  }
  for (const auto& t : {"router/spine", "router/rack1", "router/rack2", "node/worker3"})
    for (const auto& [peer, s] : bgp_states(*lab_, t)) EXPECT_EQ(s, "Established") << t << peer;
}

TEST_F(ROOT_Racks, AClusterLoadBalancerIsAnEcmpRouteAtTheSpineAndAnswersEveryRack) {
  auto ip = lb_ip_["web-lb"];
  auto spine = route_to(*lab_, "router/spine", ip);
  ASSERT_FALSE(spine.is_null()) << "no route to " << ip << " at the spine";
  ASSERT_EQ(spine.value("nexthops", json::array()).size(), 2u) << spine;
  auto rack1 = route_to(*lab_, "router/rack1", ip);
  ASSERT_FALSE(rack1.is_null());
  EXPECT_EQ(rack1.value("nexthops", json::array()).size(), 2u) << "both rack1 nodes: " << rack1;
  // Connections from the spine itself spread over both racks: each is
  // masqueraded by the node it entered (Cluster policy), with its own
  // address or, toward a pod of its own, its cni0 gateway (.1 of its pod CIDR).
  auto state = lab_->inspect();
  std::map<std::string, std::string> rack_of;  // either address -> rack
  for (const auto& n : state["nodes"]) {
    rack_of[n["ip"]] = n["rack"];
    auto cidr = n["podCIDR"].get<std::string>();
    rack_of[cidr.substr(0, cidr.rfind('.')) + ".1"] = n["rack"];
  }
  std::set<std::string> racks;
  for (int i = 0; i < 24; ++i) {
    auto r =
        lab_->exec("router/spine", {"netexec", "get", "http://" + ip + "/clientip", "--timeout=3"});
    ASSERT_EQ(r.status, 0) << r.err;
    auto seen = r.out.substr(0, r.out.find(':'));
    ASSERT_TRUE(rack_of.count(seen)) << "masqueraded to " << seen << ", no node's address";
    racks.insert(rack_of[seen]);
  }
  EXPECT_EQ(racks, (std::set<std::string>{"rack1", "rack2"}))
      << "the spine's ECMP sent every connection into one rack";
  for (const auto& host : {"client1", "client2"}) {
    std::set<std::string> names;
    for (int i = 0; i < 12; ++i) {
      auto r = lab_->exec(std::string("host/") + host,
                          {"netexec", "get", "http://" + ip + "/hostname", "--timeout=3"});
      ASSERT_EQ(r.status, 0) << host << ": " << r.err;
      names.insert(r.out);
    }
    EXPECT_GE(names.size(), 2u) << host;
  }
}

TEST_F(ROOT_Racks, ALocalLoadBalancerIsAnnouncedOnlyWhereItsEndpointIsAndFollowsIt) {
  auto ip = lb_ip_["pinned-local"];
  auto spine = route_to(*lab_, "router/spine", ip);
  ASSERT_FALSE(spine.is_null()) << "worker2 does not announce " << ip;
  EXPECT_EQ(spine.value("dev", ""), "to-rack2") << "only rack2 has the endpoint: " << spine;
  EXPECT_TRUE(spine.value("nexthops", json::array()).empty()) << spine;
  // Both racks' hosts reach it, and the pod sees their own addresses.
  for (const auto& host : {"client1", "client2"}) {
    auto r = lab_->exec(std::string("host/") + host,
                        {"netexec", "get", "http://" + ip + "/clientip", "--timeout=3"});
    EXPECT_EQ(r.out.substr(0, r.out.find(':')), host_ip_[host]) << r.err;
  }
  // No endpoint left: worker2 withdraws it, and the fabric forgets it.
  auto r = knetlab({"scale", "deployment/pinned", "--replicas", "0", "--lab", lab_->name()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(eventually(10, [&] { return route_to(*lab_, "router/spine", ip).is_null(); }));
  r = knetlab({"scale", "deployment/pinned", "--replicas", "1", "--lab", lab_->name()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(eventually(10, [&] { return !route_to(*lab_, "router/spine", ip).is_null(); }));
  auto again =
      lab_->exec("host/client1", {"netexec", "get", "http://" + ip + "/hostname", "--timeout=3"});
  EXPECT_EQ(again.out.rfind("pinned-", 0), 0u) << again.out << again.err;
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    names.insert(e.path().filename());
  return names;
}

TEST(ROOT_Bgp, SigkillDuringDeployThenDestroyLeavesNoFrrBehind) {
  KNL_REQUIRE_ROOT();
  auto crash_logs = entries("/var/tmp/frr");
  auto file = "/tmp/knetlab-test-itbgpcrash.toml";
  std::ofstream(file) << renamed(source_file("topologies/racks.toml"), "itbgpcrash");
  pid_t pid = deploy_in_background(file);
  ASSERT_GE(pid, 0);
  // Kill it once FRR runs everywhere, before BGP has converged.
  EXPECT_TRUE(eventually(60, [] {
    auto journal = read_text("/run/knetlab/itbgpcrash/journal");
    size_t bgpds = 0;
    for (size_t at = 0; (at = journal.find("daemon:bgpd", at)) != std::string::npos; ++at) ++bgpds;
    return bgpds >= 7;
  }));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  auto r = knetlab({"destroy", "--lab", "itbgpcrash"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(nothing_left("itbgpcrash"));
  EXPECT_EQ(entries("/var/tmp/frr"), crash_logs) << "FRR left crash-log folders on the machine";
  std::filesystem::remove(file);
}

TEST(ROOT_Bgp, ABgpdThatNeverAnswersFailsTheDeployNamingItAndLeavesNothing) {
  KNL_REQUIRE_ROOT();
  // FRR's zebra, and a "bgpd" that only sleeps: no session can come up.
  auto frr = std::filesystem::path("/tmp/knetlab-test-fakefrr");
  std::filesystem::create_directories(frr);
  std::filesystem::remove(frr / "zebra");
  std::filesystem::create_symlink("/usr/lib/frr/zebra", frr / "zebra");
  std::ofstream(frr / "bgpd") << "#!/bin/sh\nexec sleep 600\n";
  std::filesystem::permissions(frr / "bgpd", std::filesystem::perms::owner_all);
  auto file = "/tmp/knetlab-test-itnobgp.toml";
  std::ofstream(file) << renamed(source_file("topologies/bgp.toml"), "itnobgp");
  auto program = std::string(KNL_BIN_DIR) + "/knetlab";
  auto r = run({"env", "KNL_FRR_DIR=" + frr.string(), program, "deploy", file}, 120);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("BGP did not converge: node/control-plane does not answer"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("bgpd is not running"), std::string::npos) << r.err;
  EXPECT_TRUE(nothing_left("itnobgp"));
  // Without FRR at all, deploy says what to install before it builds anything.
  r = run({"env", "KNL_FRR_DIR=/nonexistent", program, "deploy", file});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("install it with `apt-get install frr`"), std::string::npos) << r.err;
  EXPECT_TRUE(nothing_left("itnobgp"));
  std::filesystem::remove_all(frr);
  std::filesystem::remove(file);
}

TEST(ROOT_VxlanRacks, TheOverlayRunsOverARoutedUnderlay) {
  KNL_REQUIRE_ROOT();
  Lab lab("itvxracks", source_file("topologies/vxlan-racks.toml"));
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  all_pairs_without_nat(lab, {"web-0", "web-1"});
  auto state = lab.inspect();
  // The pod route goes through the tunnel; the other rack through the ToR.
  auto pod_route = route_to(lab, "node/worker1", state["nodes"][0]["podCIDR"]);
  ASSERT_FALSE(pod_route.is_null());
  EXPECT_EQ(pod_route["dev"], "flannel.1");
  auto fdb = lab.exec("node/worker1", {"bridge", "fdb", "show", "dev", "flannel.1"});
  EXPECT_NE(fdb.out.find("dst " + state["nodes"][0]["ip"].get<std::string>()), std::string::npos)
      << fdb.out;
  // Three routers between the rack2 host and the rack1 node: rack2, spine, rack1.
  auto ping = lab.exec("host/client",
                       {"ping", "-c", "1", "-W", "2", state["nodes"][0]["ip"].get<std::string>()});
  EXPECT_NE(ping.out.find("ttl=61"), std::string::npos) << ping.out;
  EXPECT_FALSE(route_to(lab, "router/spine", "172.18.1.0/24").is_null());
  EXPECT_FALSE(route_to(lab, "router/spine", "172.18.2.0/24").is_null());
  // The nodes run no FRR here.
  auto r = knetlab({"vtysh", "--lab", lab.name(), "node/worker1", "-c", "show bgp summary"});
  EXPECT_EQ(r.status, 1);
}

}  // namespace
}  // namespace knl::test
