// Root integration tests of cni = "external" with Debian's CNI plugins and
// the project's knl-test plugin (tests/cni/): pods wired by real plugin
// binaries, their addresses from host-local feeding services, DNS and
// policies; hostPort through portmap from an outside host; bandwidth's
// shaping; CHECK; and every failure path with a real exec, after which
// nothing may be left and every ADD has had its DEL.

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "harness.h"

namespace knl::test {
namespace {

using nlohmann::json;

// A conflist at /tmp/knetlab-test-LAB.conflist: bridge with host-local,
// then `more` plugins (JSON objects, comma-joined).
std::string write_conflist(const std::string& lab, const std::string& more) {
  auto path = fmt::format("/tmp/knetlab-test-{}.conflist", lab);
  std::ofstream(path) << fmt::format(R"({{
  "cniVersion": "1.0.0", "name": "test-net",
  "plugins": [
    {{ "type": "bridge", "bridge": "cni0", "isGateway": true, "hairpinMode": true, "mtu": {{{{mtu}}}},
      "ipam": {{ "type": "host-local", "ranges": [[{{ "subnet": "{{{{podCIDR}}}}" }}]],
                 "routes": [{{ "dst": "0.0.0.0/0" }}] }} }}{}{}
  ]
}})",
                                     more.empty() ? "" : ",\n    ", more);
  return path;
}

// What knl-test logged: one line per run, "COMMAND CONTAINERID CNI_ARGS".
std::vector<std::string> plugin_log(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Every container ID that had an ADD had a DEL after it.
::testing::AssertionResult every_add_deleted(const std::vector<std::string>& log) {
  std::set<std::string> added, deleted;
  for (const auto& line : log) {
    std::istringstream words(line);
    std::string command, id;
    words >> command >> id;
    if (command == "ADD") added.insert(id);
    if (command == "DEL" && added.count(id)) deleted.insert(id);
  }
  if (added.empty()) return ::testing::AssertionFailure() << "no ADD was logged";
  if (added != deleted)
    return ::testing::AssertionFailure()
           << added.size() << " ADDs but DELs for " << deleted.size() << " of them";
  return ::testing::AssertionSuccess();
}

std::string cni_lab(const std::string& conflist, const std::string& proxy_mode) {
  return fmt::format(R"(name = "LAB"
[network]
cni = "external"
kubeProxyMode = "{}"
[network.cniConfig]
conflist = "{}"
binDir = ["{}", "/usr/lib/cni"]
[[nodes]]
name = "control-plane"
role = "control-plane"
[[nodes]]
name = "worker1"
[[nodes]]
name = "worker2"
[[hosts]]
name = "client"
[[deployments]]
name = "web"
replicas = 3
labels = {{ app = "web" }}
[[deployments.containers]]
name = "netexec"
image = "netexec"
ports = [{{ name = "http", containerPort = 8080 }}]
readiness = {{ httpGet = "/healthz", port = 8080 }}
[[services]]
name = "web"
selector = {{ app = "web" }}
ports = [{{ port = 80, targetPort = 8080 }}]
[[pods]]
name = "edge"
node = "worker1"
labels = {{ app = "edge", role = "client" }}
[[pods.containers]]
name = "netexec"
image = "netexec"
ports = [{{ containerPort = 8080, hostPort = 8000 }}]
[[pods]]
name = "secret"
node = "worker2"
labels = {{ app = "secret" }}
annotations = {{ "kubernetes.io/ingress-bandwidth" = "10M", "kubernetes.io/egress-bandwidth" = "10M" }}
[[pods.containers]]
name = "netexec"
image = "netexec"
ports = [{{ containerPort = 8080 }}]
[[networkPolicies]]
name = "only-clients"
podSelector = {{ app = "secret" }}
[[networkPolicies.ingress]]
from = [{{ podSelector = {{ role = "client" }} }}]
)",
                     proxy_mode, conflist, KNL_CNI_DIR);
}

class ROOT_Cni : public ::testing::TestWithParam<std::string> {};

TEST_P(ROOT_Cni, RealPluginsWirePodsThatServicesDnsAndPoliciesReach) {
  KNL_REQUIRE_ROOT();
  const std::string name = "itcni" + GetParam().substr(0, 3);
  const auto log = fmt::format("/tmp/knetlab-test-{}.log", name);
  std::filesystem::remove(log);
  auto conflist = write_conflist(
      name, fmt::format(R"({{ "type": "portmap", "capabilities": {{ "portMappings": true }} }},
    {{ "type": "bandwidth", "capabilities": {{ "bandwidth": true }} }},
    {{ "type": "firewall", "backend": "iptables" }},
    {{ "type": "knl-test", "log": "{}" }})",
                        log));
  {
    Lab lab(name, cni_lab(conflist, GetParam()));
    ASSERT_TRUE(lab.ok()) << lab.deployed().err;
    auto state = lab.inspect();
    std::map<std::string, std::string> cidr_of;
    for (const auto& n : state["nodes"]) cidr_of[n["name"]] = n["podCIDR"];
    std::map<std::string, std::string> ips, node_of;
    for (const auto& p : state["pods"]) ips[p["name"]] = p["ip"], node_of[p["name"]] = p["node"];
    // Each address is host-local's, from its node's range, with its lease.
    for (const auto& [pod, ip] : ips) {
      auto cidr = cidr_of[node_of[pod]];
      EXPECT_EQ(ip.substr(0, ip.rfind('.')), cidr.substr(0, cidr.rfind('.'))) << pod;
      EXPECT_TRUE(std::filesystem::exists(
          fmt::format("/run/knetlab/{}/cni/{}/lib/networks/test-net/{}", name, node_of[pod], ip)))
          << "no lease for " << pod << " at " << ip;
    }
    auto eth0 = lab.exec("pod/web-0", {"ip", "-4", "-o", "addr", "show", "eth0"}).out;
    EXPECT_NE(eth0.find(" " + ips["web-0"] + "/24 "), std::string::npos)
        << "the pod's eth0 holds the result's address: " << eth0;
    // Pod to pod across nodes, the client's own address seen.
    EXPECT_EQ(lab.curl({fmt::format("http://{}:8080/hostname", ips["web-1"])}, "pod/edge"),
              "web-1");
    EXPECT_EQ(lab.curl({fmt::format("http://{}:8080/clientip", ips["web-2"])}, "pod/edge")
                  .substr(0, ips["edge"].size() + 1),
              ips["edge"] + ":");
    // The service by its DNS name, through kube-proxy's rules of either mode.
    std::set<std::string> answered;
    for (int i = 0; i < 30 && answered.size() < 3; ++i)
      answered.insert(lab.curl({"http://web.default.svc.cluster.local/hostname"}, "pod/edge"));
    EXPECT_EQ(answered, (std::set<std::string>{"web-0", "web-1", "web-2"}));
    // The policy holds for host-local's addresses.
    EXPECT_EQ(lab.curl({fmt::format("http://{}:8080/hostname", ips["secret"])}, "pod/edge"),
              "secret");
    EXPECT_NE(lab.exec("pod/web-0", {"curl", "-s", "-m", "2",
                                     fmt::format("http://{}:8080/hostname", ips["secret"])})
                  .status,
              0)
        << "web-0 is not a client and must not reach secret";
    // hostPort: the outside host reaches edge on worker1's address, and edge
    // sees the host's own address (portmap DNATs, does not masquerade).
    std::string worker1_ip;
    for (const auto& n : state["nodes"])
      if (n["name"] == "worker1") worker1_ip = n["ip"];
    EXPECT_EQ(lab.curl({fmt::format("http://{}:8000/hostname", worker1_ip)}), "edge");
    std::string host_ip = state["hosts"][0]["ip"];
    EXPECT_EQ(lab.curl({fmt::format("http://{}:8000/clientip", worker1_ip)})
                  .substr(0, host_ip.size() + 1),
              host_ip + ":");
    auto nat = lab.exec("node/worker1", {"iptables-save", "-t", "nat"}).out;
    EXPECT_NE(nat.find("CNI-HOSTPORT-DNAT"), std::string::npos) << nat;
    // knetlab check agrees with Kubernetes on this lab, and says so in JUnit.
    const auto junit = fmt::format("/tmp/knetlab-test-{}.xml", name);
    auto probes = knetlab({"check", "--lab", name, "--junit", junit});
    EXPECT_EQ(probes.status, 0) << probes.out << probes.err;
    auto xml = read_text(junit);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(xml, m,
                                  std::regex("<testsuite name=\"knetlab check [^\"]+\" "
                                             "tests=\"(\\d+)\" failures=\"0\">")))
        << xml;
    EXPECT_GT(std::stoi(m[1]), 20);
    EXPECT_NE(
        xml.find("<testcase classname=\"knetlab check " + name + "\" name=\"pod/web-1 -&gt; "),
        std::string::npos)
        << xml;
    std::filesystem::remove(junit);
    // bandwidth: a token bucket of 10 Mbit/s on secret's host side.
    auto qdisc = lab.exec("node/worker2", {"tc", "qdisc", "show"}).out;
    EXPECT_TRUE(std::regex_search(qdisc, std::regex("qdisc tbf .* rate 10Mbit"))) << qdisc;
    // CHECK passes, then fails naming bridge once the pod's route is gone.
    // (secret: Debian's portmap 1.1.1 fails CHECK for a pod with a hostPort,
    // its bandwidth panics for a pod without bandwidth.)
    auto check = knetlab({"cni", "check", "pod/secret", "--lab", name});
    EXPECT_EQ(check.status, 0) << check.out << check.err;
    EXPECT_NE(check.out.find("CHECK passed"), std::string::npos) << check.out;
    auto result = json::parse(knetlab({"cni", "result", "pod/secret", "--lab", name}).out);
    EXPECT_EQ(result["ips"][0]["address"].get<std::string>(), ips["secret"] + "/24");
    ASSERT_EQ(lab.exec("pod/secret", {"ip", "route", "del", "default"}).status, 0);
    check = knetlab({"cni", "check", "pod/secret", "--lab", name});
    EXPECT_EQ(check.status, 1);
    EXPECT_TRUE(std::regex_search(check.out, std::regex("bridge +FAILED .*Route .*not found")))
        << check.out;
    // Scale down: the pod's DEL releases its lease.
    auto web2 = fmt::format("/run/knetlab/{}/cni/{}/lib/networks/test-net/{}", name,
                            node_of["web-2"], ips["web-2"]);
    ASSERT_TRUE(std::filesystem::exists(web2));
    ASSERT_EQ(knetlab({"scale", "deployment/web", "--replicas", "2", "--lab", name}).status, 0);
    EXPECT_FALSE(std::filesystem::exists(web2));
    // knl-test, last in the chain, ran once per pod wired.
    size_t adds = 0;
    for (const auto& line : plugin_log(log)) adds += line.rfind("ADD ", 0) == 0;
    EXPECT_EQ(adds, ips.size()) << "once per pod, the cluster DNS's too";
  }
  EXPECT_TRUE(every_add_deleted(plugin_log(log)));
  std::filesystem::remove(log);
  std::filesystem::remove(conflist);
}

INSTANTIATE_TEST_SUITE_P(ProxyModes, ROOT_Cni, ::testing::Values("nftables", "iptables"));

// A small lab whose chain ends in knl-test configured by `test_plugin`.
std::string failing_lab(const std::string& name, const std::string& conflist, int timeout) {
  return fmt::format(R"(name = "{}"
[network]
cni = "external"
[network.cniConfig]
conflist = "{}"
binDir = ["{}", "/usr/lib/cni"]
timeout = {}
[[nodes]]
name = "n1"
[[nodes]]
name = "n2"
[[deployments]]
name = "web"
replicas = 2
labels = {{ app = "web" }}
[[deployments.containers]]
name = "netexec"
image = "netexec"
)",
                     name, conflist, KNL_CNI_DIR, timeout);
}

Result deploy_file(const std::string& name, const std::string& text) {
  auto file = fmt::format("/tmp/knetlab-test-{}.toml", name);
  std::ofstream(file) << text;
  auto r = knetlab({"deploy", file}, 120);
  if (r.status == 0) knetlab({"destroy", "--lab", name});
  std::filesystem::remove(file);
  return r;
}

TEST(ROOT_CniFailures, AFailingPluginAtEachPlaceOfTheChainFailsTheDeployAndLeavesNothing) {
  KNL_REQUIRE_ROOT();
  const std::string name = "itcnifail";
  const auto log = fmt::format("/tmp/knetlab-test-{}.log", name);
  const auto logger = fmt::format(R"({{ "type": "knl-test", "log": "{}" }})", log);
  const auto failing = fmt::format(
      R"({{ "type": "knl-test", "failOn": "ADD", "pod": "web-1", "code": 11, "msg": "boom", "details": "on purpose", "log": "{}" }})",
      log);
  // The failing plugin 2nd, 3rd and 4th of 4, the logging one around it.
  const std::vector<std::string> chains = {
      failing + ",\n" + logger + ",\n" +
          R"({ "type": "portmap", "capabilities": { "portMappings": true } })",
      logger + ",\n" + failing + ",\n" +
          R"({ "type": "portmap", "capabilities": { "portMappings": true } })",
      logger + ",\n" + R"({ "type": "portmap", "capabilities": { "portMappings": true } })" +
          ",\n" + failing};
  for (size_t place = 0; place < chains.size(); ++place) {
    SCOPED_TRACE(fmt::format("failing plugin at {} of 4", place + 2));
    std::filesystem::remove(log);
    auto conflist = write_conflist(name, chains[place]);
    auto r = deploy_file(name, failing_lab(name, conflist, 10));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find(fmt::format("pod default/web-1: CNI ADD failed in plugin \"knl-test\" ({} "
                                     "of 4 in the chain of network \"test-net\"): exit status 1, "
                                     "code 11, msg \"boom\", details \"on purpose\"; stderr: "
                                     "knl-test: failing ADD as configured",
                                     place + 2)),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(nothing_left(name));
    EXPECT_TRUE(every_add_deleted(plugin_log(log)));
    std::filesystem::remove(conflist);
  }
  std::filesystem::remove(log);
}

TEST(ROOT_CniFailures, APluginThatHangsIsKilledAtTheTimeout) {
  KNL_REQUIRE_ROOT();
  const std::string name = "itcnihang";
  auto conflist = write_conflist(name, R"({ "type": "knl-test", "failOn": "ADD", "hang": true })");
  auto start = std::chrono::steady_clock::now();
  auto r = deploy_file(name, failing_lab(name, conflist, 2));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("plugin \"knl-test\" (2 of 2 in the chain of network \"test-net\"): no "
                       "answer within 2 s; killed"),
            std::string::npos)
      << r.err;
  EXPECT_LT(took, std::chrono::seconds(30)) << "the timeout was not applied";
  EXPECT_TRUE(nothing_left(name));
  std::filesystem::remove(conflist);
}

TEST(ROOT_CniFailures, AMissingPluginIsFoundBeforeAnyPluginRuns) {
  KNL_REQUIRE_ROOT();
  const std::string name = "itcnimiss";
  const auto log = fmt::format("/tmp/knetlab-test-{}.log", name);
  std::filesystem::remove(log);
  auto conflist = write_conflist(
      name,
      fmt::format(R"({{ "type": "knl-test", "log": "{}" }}, {{ "type": "no-such-plugin" }})", log));
  auto r = deploy_file(name, failing_lab(name, conflist, 10));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(fmt::format("CNI plugin \"no-such-plugin\" (3 of 3 in the chain of network "
                                   "\"test-net\") is in none of the binDir folders: {}, "
                                   "/usr/lib/cni",
                                   KNL_CNI_DIR)),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(plugin_log(log).empty()) << "a plugin ran before the chain was checked";
  EXPECT_TRUE(nothing_left(name));
  std::filesystem::remove(conflist);
}

TEST(ROOT_CniFailures, DestroyAfterADeployKilledMidChainRunsTheDels) {
  KNL_REQUIRE_ROOT();
  const std::string name = "itcnikill";
  const auto log = fmt::format("/tmp/knetlab-test-{}.log", name);
  std::filesystem::remove(log);
  auto conflist = write_conflist(
      name,
      fmt::format(
          R"({{ "type": "knl-test", "failOn": "ADD", "hang": true, "pod": "web-1", "log": "{}" }})",
          log));
  auto file = fmt::format("/tmp/knetlab-test-{}.toml", name);
  std::ofstream(file) << failing_lab(name, conflist, 60);
  pid_t pid = deploy_in_background(file);
  ASSERT_GE(pid, 0);
  // Killed while web-1's chain hangs: web-1 is half wired, the other pods
  // (the other node's chains run beside it) as far as they got.
  auto web1_added = [&] {
    const auto lines = plugin_log(log);
    return std::any_of(lines.begin(), lines.end(), [](const std::string& line) {
      return line.rfind("ADD ", 0) == 0 && line.find("K8S_POD_NAME=web-1;") != std::string::npos;
    });
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!web1_added() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ASSERT_TRUE(web1_added()) << "web-1's ADD, where the chain hangs";
  auto r = knetlab({"destroy", "--lab", name});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(nothing_left(name));
  EXPECT_TRUE(every_add_deleted(plugin_log(log)));
  std::filesystem::remove(file);
  std::filesystem::remove(conflist);
  std::filesystem::remove(log);
}

}  // namespace
}  // namespace knl::test
