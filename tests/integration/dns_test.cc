// Root integration tests of the cluster DNS, in both kube-proxy modes: real
// labs from topologies/dns.toml, real queries from pods on every node through
// the kube-dns ClusterIP, assertions on the answers that came back.

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

std::set<std::string> lines(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.insert(line);
  return out;
}

class ROOT_Dns : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    KNL_REQUIRE_ROOT();
    auto topology = source_file("topologies/dns.toml");
    if (GetParam() == "iptables")
      topology.replace(topology.find("cni = \"vxlan\""), 13,
                       "cni = \"vxlan\"\nkubeProxyMode = \"iptables\"");
    lab_ = std::make_unique<Lab>("itdns" + GetParam().substr(0, 1), topology);
    ASSERT_TRUE(lab_->ok()) << lab_->deployed().err;
    state_ = lab_->inspect();
  }
  void TearDown() override { lab_.reset(); }

  std::string cluster_ip(const std::string& ns, const std::string& name) const {
    for (const auto& s : state_["services"])
      if (s["namespace"] == ns && s["name"] == name) return s["clusterIP"];
    return "";
  }
  // Pod name (in `ns`) -> its node and IP, from a fresh inspect.
  std::map<std::string, std::pair<std::string, std::string>> pods(const std::string& ns) const {
    std::map<std::string, std::pair<std::string, std::string>> out;
    auto state = lab_->inspect();
    for (const auto& p : state["pods"])
      if (p["namespace"] == ns) out[p["name"]] = {p["node"], p["ip"]};
    return out;
  }
  // One pod of the file on each node, to ask from.
  std::vector<std::string> askers() const {
    std::map<std::string, std::string> by_node;
    for (const auto& [name, where] : pods("default"))
      if (name != "custom") by_node.emplace(where.first, name);
    std::vector<std::string> out;
    for (const auto& [node, pod] : by_node) out.push_back("pod/" + pod);
    return out;
  }
  // dig's short answer, from `target`, through the pod's resolver (the kube-dns ClusterIP).
  std::set<std::string> dig(const std::string& target, const std::vector<std::string>& query,
                            bool tcp = false) const {
    std::vector<std::string> argv = {"dig", "+short", "+time=2", "+tries=1",
                                     tcp ? "+tcp" : "+notcp"};
    argv.insert(argv.end(), query.begin(), query.end());
    auto r = lab_->exec(target, argv);
    EXPECT_EQ(r.status, 0) << target << ": " << r.err;
    return lines(r.out);
  }
  std::string full(const std::string& target, const std::vector<std::string>& query) const {
    std::vector<std::string> argv = {"dig", "+time=2", "+tries=1"};
    argv.insert(argv.end(), query.begin(), query.end());
    return lab_->exec(target, argv).out;
  }
  // Waits at most `within` for `target`'s answer to `query` to be `wanted`.
  bool answers_within(Clock::duration within, const std::string& target,
                      const std::vector<std::string>& query,
                      const std::set<std::string>& wanted) const {
    auto deadline = Clock::now() + within;
    do {
      if (dig(target, query) == wanted) return true;
    } while (Clock::now() < deadline);
    return false;
  }

  std::unique_ptr<Lab> lab_;
  json state_;
};

TEST_P(ROOT_Dns, TheClusterDnsRunsAsKubernetesRunsIt) {
  std::set<std::string> dns_pods, nodes;
  for (const auto& [name, where] : pods("kube-system")) {
    dns_pods.insert(name);
    nodes.insert(where.first);
  }
  EXPECT_EQ(dns_pods, (std::set<std::string>{"coredns-0", "coredns-1"}));
  EXPECT_EQ(nodes.size(), 2u) << "the two replicas on two nodes";
  EXPECT_EQ(cluster_ip("kube-system", "kube-dns"), "10.96.0.10");
  EXPECT_EQ(cluster_ip("default", "kubernetes"), "10.96.0.1");
  auto listed = knetlab({"get", "pods", "--lab", lab_->name()});
  EXPECT_EQ(listed.out.find("coredns"), std::string::npos) << "kube-system is listed with -A";
  listed = knetlab({"get", "pods", "-A", "--lab", lab_->name()});
  EXPECT_NE(listed.out.find("kube-system   coredns-0"), std::string::npos) << listed.out;
  listed = knetlab({"get", "svc", "-n", "kube-system", "--lab", lab_->name()});
  auto row = listed.out.substr(listed.out.find("kube-dns"));
  row = row.substr(0, row.find('\n'));
  EXPECT_NE(row.find("ClusterIP   10.96.0.10"), std::string::npos) << listed.out;
  EXPECT_NE(row.find("53/UDP,53/TCP"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("default"), std::string::npos) << "-n kube-system only";
  // The server is Debian's Knot DNS, in the pod's own namespaces.
  auto ps = lab_->exec("pod/kube-system/coredns-0", {"cat", "/proc/1/cmdline"});
  EXPECT_EQ(ps.out.find("pause"), 0u);
  auto comm = lab_->exec("pod/kube-system/coredns-0", {"cat", "/proc/2/comm"});
  EXPECT_EQ(comm.out, "knotd") << comm.err;
}

TEST_P(ROOT_Dns, EveryRecordAnswersOverUdpAndTcpFromPodsOnEveryNode) {
  auto web = cluster_ip("default", "web"), other_web = cluster_ip("other", "web");
  auto store = pods("default");
  auto db_ip = state_["hosts"][0]["ip"].get<std::string>();
  auto askers_list = askers();
  ASSERT_EQ(askers_list.size(), 3u);
  for (const auto& from : askers_list) {
    for (bool tcp : {false, true}) {
      SCOPED_TRACE(from + (tcp ? " over TCP" : " over UDP"));
      EXPECT_EQ(dig(from, {"web.default.svc.cluster.local"}, tcp), std::set<std::string>{web});
      EXPECT_EQ(dig(from, {"web.other.svc.cluster.local"}, tcp), std::set<std::string>{other_web});
      EXPECT_EQ(dig(from, {"_http._tcp.web.default.svc.cluster.local", "SRV"}, tcp),
                std::set<std::string>{"0 100 80 web.default.svc.cluster.local."});
      EXPECT_EQ(dig(from, {"-x", web}, tcp),
                std::set<std::string>{"web.default.svc.cluster.local."});
      // Headless: one A per ready pod, each with its own name and PTR.
      std::set<std::string> store_ips, store_srv;
      for (const auto& name : {"store-0", "store-1", "store-2"}) {
        const auto& ip = store.at(name).second;
        store_ips.insert(ip);
        auto host = std::string(name) + ".store.default.svc.cluster.local.";
        store_srv.insert("0 33 8080 " + host);
        EXPECT_EQ(dig(from, {host}, tcp), std::set<std::string>{ip});
        EXPECT_EQ(dig(from, {"-x", ip}, tcp), std::set<std::string>{host});
      }
      EXPECT_EQ(dig(from, {"store.default.svc.cluster.local"}, tcp), store_ips);
      EXPECT_EQ(dig(from, {"_http._tcp.store.default.svc.cluster.local", "SRV"}, tcp), store_srv);
      // ExternalName: the CNAME, and the outside host's address with it.
      EXPECT_EQ(dig(from, {"database.default.svc.cluster.local"}, tcp),
                (std::set<std::string>{"db.example.com.", db_ip}));
      // A pod's own record, the version, kubernetes.default.
      auto ip = store.at("client").second;
      auto dashed = ip;
      std::replace(dashed.begin(), dashed.end(), '.', '-');
      EXPECT_EQ(dig(from, {dashed + ".default.pod.cluster.local"}, tcp), std::set<std::string>{ip});
      EXPECT_EQ(dig(from, {"dns-version.cluster.local", "TXT"}, tcp),
                std::set<std::string>{"\"1.1.0\""});
      EXPECT_EQ(dig(from, {"kubernetes.default.svc.cluster.local"}, tcp),
                std::set<std::string>{"10.96.0.1"});
    }
  }
}

TEST_P(ROOT_Dns, UnknownNamesAreNxdomainAtOnceAndNothingLeavesTheLab) {
  auto answer = full("pod/client", {"nope.default.svc.cluster.local"});
  EXPECT_NE(answer.find("status: NXDOMAIN"), std::string::npos) << answer;
  EXPECT_NE(answer.find("SOA\tns.dns.cluster.local. hostmaster.cluster.local."), std::string::npos)
      << answer;
  auto start = Clock::now();
  answer = full("pod/client", {"www.example.org"});
  EXPECT_NE(answer.find("status: NXDOMAIN"), std::string::npos) << answer;
  // A forwarded query would wait for an upstream; getaddrinfo gives up at once too.
  auto r = lab_->exec("pod/client", {"getent", "hosts", "www.example.org"});
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2)) << "an outside name took its time";
}

TEST_P(ROOT_Dns, ShortNamesOtherNamespacesAndFullNamesReachTheService) {
  auto web = cluster_ip("default", "web"), other_web = cluster_ip("other", "web");
  for (const auto& [name, ip] :
       std::vector<std::pair<std::string, std::string>>{{"web", web},
                                                        {"web.other", other_web},
                                                        {"web.other.svc", other_web},
                                                        {"web.default.svc.cluster.local", web}}) {
    auto r = lab_->exec("pod/client", {"getent", "hosts", name});
    EXPECT_EQ(r.out.substr(0, r.out.find(' ')), ip) << name << ": " << r.out << r.err;
  }
  auto mine = pods("default"), theirs = pods("other");
  auto r = lab_->exec("pod/client", {"netexec", "get", "http://web/hostname", "--timeout=3"});
  EXPECT_TRUE(r.out == "web-0" || r.out == "web-1") << r.out << r.err;
  r = lab_->exec("pod/client", {"netexec", "get", "http://web.other/hostname", "--timeout=3"});
  EXPECT_TRUE(theirs.count(r.out) && r.out.rfind("web-", 0) == 0) << r.out << r.err;
  r = lab_->exec("pod/client", {"netexec", "get", "http://web.default.svc.cluster.local/hostname",
                                "--timeout=3"});
  EXPECT_TRUE(r.out == "web-0" || r.out == "web-1") << r.out << r.err;
  // A StatefulSet-style pod by its own name.
  r = lab_->exec("pod/client",
                 {"netexec", "get", "http://store-1.store:8080/hostname", "--timeout=3"});
  EXPECT_EQ(r.out, "store-1") << r.err;
  EXPECT_EQ(lab_->exec("pod/store-1", {"hostname"}).out, "store-1");
  auto hosts = lab_->exec("pod/store-1", {"cat", "/etc/hosts"}).out;
  EXPECT_NE(
      hosts.find(mine.at("store-1").second + "\tstore-1.store.default.svc.cluster.local\tstore-1"),
      std::string::npos)
      << hosts;
}

TEST_P(ROOT_Dns, HeadlessRecordsFollowScaleAndReadinessWithinASecond) {
  auto store_ips = [&](int n) {
    std::set<std::string> out;
    auto all = pods("default");
    for (int i = 0; i < n; ++i) out.insert(all.at(fmt::format("store-{}", i)).second);
    return out;
  };
  const std::vector<std::string> query = {"store.default.svc.cluster.local"};
  auto r = knetlab({"scale", "deployment/store", "--replicas", "1", "--lab", lab_->name()});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& from : askers())
    EXPECT_TRUE(answers_within(std::chrono::seconds(1), from, query, store_ips(1))) << from;
  r = knetlab({"scale", "deployment/store", "--replicas", "3", "--lab", lab_->name()});
  ASSERT_EQ(r.status, 0) << r.err;
  auto now = pods("default");
  std::set<std::string> three = {now.at("store-0").second, now.at("store-3").second,
                                 now.at("store-4").second};
  for (const auto& from : askers())
    EXPECT_TRUE(answers_within(std::chrono::seconds(1), from, query, three)) << from;
  EXPECT_EQ(dig("pod/client", {"store-3.store.default.svc.cluster.local"}),
            std::set<std::string>{now.at("store-3").second});
  // A pod that fails its readiness probe leaves the answer, then comes back.
  auto node = now.at("store-3").first;
  lab_->exec(
      "node/" + node,
      {"netexec", "get", "http://" + now.at("store-3").second + ":8080/readiness?ready=false"});
  std::set<std::string> two = {now.at("store-0").second, now.at("store-4").second};
  EXPECT_TRUE(answers_within(std::chrono::seconds(3), "pod/client", query, two));
  lab_->exec("node/" + node, {"netexec", "get",
                              "http://" + now.at("store-3").second + ":8080/readiness?ready=true"});
  EXPECT_TRUE(answers_within(std::chrono::seconds(3), "pod/client", query, three));
}

TEST_P(ROOT_Dns, PodsGetTheResolvConfTheirDnsPolicyGives) {
  EXPECT_EQ(lab_->exec("pod/client", {"cat", "/etc/resolv.conf"}).out,
            "search default.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 10.96.0.10\noptions ndots:5");
  EXPECT_EQ(lab_->exec("pod/custom", {"cat", "/etc/resolv.conf"}).out,
            "search other.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:2");
  // Its search path is another namespace's: `web` there is other/web.
  auto r = lab_->exec("pod/custom", {"getent", "hosts", "web"});
  EXPECT_EQ(r.out.substr(0, r.out.find(' ')), cluster_ip("other", "web")) << r.out << r.err;
}

INSTANTIATE_TEST_SUITE_P(Modes, ROOT_Dns, ::testing::Values("nftables", "iptables"),
                         [](const auto& info) { return info.param; });

TEST(ROOT_DnsLabs, ACustomDomainAndServiceSubnetAndHostNetworkPods) {
  KNL_REQUIRE_ROOT();
  Lab lab("itdnsdom", R"(name = "itdnsdom"
[network]
cni = "bridge"
dnsDomain = "lab.test"
serviceSubnet = "10.100.0.0/16"
[[nodes]]
name = "n"
[[deployments]]
name = "web"
replicas = 1
labels = { app = "web" }
[[deployments.containers]]
name = "c"
image = "netexec"
[[pods]]
name = "hostnet"
hostNetwork = true
dnsPolicy = "ClusterFirstWithHostNet"
[[pods.containers]]
name = "c"
image = "shell"
[[pods]]
name = "plainhost"
hostNetwork = true
[[pods.containers]]
name = "c"
image = "shell"
[[services]]
name = "web"
selector = { app = "web" }
[[services.ports]]
port = 80
targetPort = 8080
)");
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  auto r = lab.exec("pod/web-0", {"dig", "+short", "web.default.svc.lab.test"});
  EXPECT_EQ(r.out, "10.100.0.11") << r.err;
  EXPECT_EQ(lab.exec("pod/web-0", {"cat", "/etc/resolv.conf"}).out,
            "search default.svc.lab.test svc.lab.test lab.test\nnameserver 10.100.0.10\n"
            "options ndots:5");
  // hostNetwork pods: the cluster's resolver with ClusterFirstWithHostNet,
  // the node's otherwise (the lab's only resolver, without a search path).
  EXPECT_EQ(lab.exec("pod/hostnet", {"cat", "/etc/resolv.conf"}).out,
            "search default.svc.lab.test svc.lab.test lab.test\nnameserver 10.100.0.10\n"
            "options ndots:5");
  EXPECT_EQ(lab.exec("pod/plainhost", {"cat", "/etc/resolv.conf"}).out, "nameserver 10.100.0.10");
  r = lab.exec("pod/hostnet", {"getent", "hosts", "web"});
  EXPECT_EQ(r.out.substr(0, r.out.find(' ')), "10.100.0.11") << r.out << r.err;
}

TEST(ROOT_DnsLabs, ADnsServerThatWillNotStartFailsTheDeployNamingItWithItsLog) {
  KNL_REQUIRE_ROOT();
  // An images folder whose dns image is a server that dies at once.
  auto images = std::filesystem::temp_directory_path() / "knetlab-test-broken-images";
  std::filesystem::remove_all(images);
  std::filesystem::copy(std::string(KNL_BIN_DIR) + "/../images", images,
                        std::filesystem::copy_options::recursive);
  auto server = images / "dns" / "broken-server";
  std::ofstream(server) << "#!/bin/sh\necho 'error: cannot bind 0.0.0.0@53 (address in use)' >&2\n"
                           "exit 1\n";
  std::filesystem::permissions(server, std::filesystem::perms::owner_all);
  std::ofstream(images / "dns" / "image.toml") << "program = \"" << server.string() << "\"\n";
  auto file = "/tmp/knetlab-test-itdnsbad.toml";
  std::ofstream(file) << "name = \"itdnsbad\"\n[[nodes]]\nname = \"n\"\n";
  ::setenv("KNL_IMAGES_DIR", images.c_str(), 1);
  auto r = knetlab({"deploy", file});
  ::unsetenv("KNL_IMAGES_DIR");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("pod kube-system/coredns-"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot bind 0.0.0.0@53 (address in use)"), std::string::npos) << r.err;
  EXPECT_TRUE(nothing_left("itdnsbad"));
  std::filesystem::remove(file);
  std::filesystem::remove_all(images);
}

}  // namespace
}  // namespace knl::test
