// Root integration tests: real labs from topologies/, real packets, and
// assertions on what answered. Each lab is destroyed by its fixture, after
// which nothing of it may be left.

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "harness.h"

namespace knl::test {
namespace {

using nlohmann::json;

// quickstart.toml: 3 nodes, web-0..3 (netexec), sidecar-demo, host client.
class ROOT_Quickstart : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    lab_ = new Lab("itquick", source_file("topologies/quickstart.toml"));
  }
  static void TearDownTestSuite() {
    delete lab_;
    lab_ = nullptr;
  }
  void SetUp() override {
    KNL_REQUIRE_ROOT();
    ASSERT_TRUE(lab_->ok()) << lab_->deployed().err;
  }
  static Lab* lab_;
};
Lab* ROOT_Quickstart::lab_ = nullptr;

const std::vector<std::string> kWeb = {"web-0", "web-1", "web-2", "web-3"};

TEST_F(ROOT_Quickstart, EveryPodReachesEveryPodOverTcpWithItsOwnAddress) {
  auto ips = lab_->pod_ips();
  for (const auto& from : kWeb) {
    for (const auto& to : kWeb) {
      if (from == to) continue;
      auto url = fmt::format("http://{}:8080/", ips[to]);
      auto name = lab_->exec("pod/" + from, {"netexec", "get", url + "hostname", "--timeout=3"});
      EXPECT_EQ(name.status, 0) << from << " -> " << to << ": " << name.err;
      EXPECT_EQ(name.out, to) << from << " -> " << to;
      auto seen = lab_->exec("pod/" + from, {"netexec", "get", url + "clientip", "--timeout=3"});
      EXPECT_EQ(seen.out.substr(0, seen.out.find(':')), ips[from])
          << to << " saw " << from << " as " << seen.out << " (pod traffic is never NATed)";
    }
  }
}

TEST_F(ROOT_Quickstart, EveryPodReachesEveryPodOverUdp) {
  auto ips = lab_->pod_ips();
  for (const auto& from : kWeb) {
    for (const auto& to : kWeb) {
      if (from == to) continue;
      auto target = ips[to] + ":8081";
      auto name = lab_->exec("pod/" + from, {"netexec", "udp", target, "hostname", "--timeout=3"});
      EXPECT_EQ(name.out, to) << from << " -> " << to << ": " << name.err;
      auto seen = lab_->exec("pod/" + from, {"netexec", "udp", target, "clientip", "--timeout=3"});
      EXPECT_EQ(seen.out.substr(0, seen.out.find(':')), ips[from]) << from << " -> " << to;
    }
  }
}

TEST_F(ROOT_Quickstart, CrossNodeTrafficIsEncapsulatedOnFlannel1) {
  auto ips = lab_->pod_ips();  // web-1 runs on worker1, web-2 on worker2
  auto tx_packets = [&] {
    auto r = lab_->exec("node/worker1", {"ip", "-s", "-j", "link", "show", "flannel.1"});
    return json::parse(r.out)[0]["stats64"]["tx"]["packets"].get<uint64_t>();
  };
  auto before = tx_packets();
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(
        lab_->exec("pod/web-1", {"netexec", "get", "http://" + ips["web-2"] + ":8080/hostname"})
            .out,
        "web-2");
  EXPECT_GE(tx_packets() - before, 15u) << "requests to worker2 did not leave through flannel.1";

  auto link = json::parse(
      lab_->exec("node/worker1", {"ip", "-d", "-j", "link", "show", "flannel.1"}).out)[0];
  EXPECT_EQ(link["mtu"], 1450);
  EXPECT_EQ(link["linkinfo"]["info_kind"], "vxlan");
  EXPECT_EQ(link["linkinfo"]["info_data"]["id"], 1);
  EXPECT_EQ(link["linkinfo"]["info_data"]["port"], 8472);
  EXPECT_EQ(link["linkinfo"]["info_data"]["learning"], false);
  EXPECT_EQ(link["linkinfo"]["info_data"]["local"], "172.18.0.3");
  auto fdb = lab_->exec("node/worker1", {"bridge", "fdb", "show", "dev", "flannel.1"}).out;
  EXPECT_NE(fdb.find("dst 172.18.0.2 self permanent"), std::string::npos) << fdb;
  EXPECT_NE(fdb.find("dst 172.18.0.4 self permanent"), std::string::npos) << fdb;
  auto routes = lab_->exec("node/worker1", {"ip", "route"}).out;
  EXPECT_NE(routes.find("10.244.2.0/24 via 10.244.2.0 dev flannel.1 proto static onlink"),
            std::string::npos)
      << routes;
}

TEST_F(ROOT_Quickstart, NodesReachPodsOnEveryNode) {
  auto ips = lab_->pod_ips();
  for (const auto& node : {"control-plane", "worker1", "worker2"})
    for (const auto& pod : kWeb)
      EXPECT_EQ(lab_->exec(std::string("node/") + node,
                           {"netexec", "get", "http://" + ips[pod] + ":8080/hostname"})
                    .out,
                pod)
          << node << " -> " << pod;
}

TEST_F(ROOT_Quickstart, ContainersOfOnePodTalkOverLocalhost) {
  auto r = lab_->exec("pod/sidecar-demo",
                      {"netexec", "get", "http://127.0.0.1:9090/hostname", "--timeout=2"});
  EXPECT_EQ(r.out, "sidecar-demo") << r.err;
  auto from_sidecar = knetlab({"exec", "--lab", lab_->name(), "-c", "sidecar", "pod/sidecar-demo",
                               "--", "netexec", "get", "http://localhost:9090/clientip"});
  EXPECT_EQ(from_sidecar.out.rfind("127.0.0.1:", 0), 0u) << from_sidecar.out;
}

TEST_F(ROOT_Quickstart, PodsHaveTheirOwnNameFilesAndPauseAsPid1) {
  EXPECT_EQ(lab_->exec("pod/web-2", {"hostname"}).out, "web-2");
  EXPECT_EQ(lab_->exec("pod/web-2", {"cat", "/proc/1/comm"}).out, "pause");
  auto resolv = lab_->exec("pod/web-2", {"cat", "/etc/resolv.conf"}).out;
  EXPECT_NE(resolv.find("search default.svc.cluster.local svc.cluster.local cluster.local"),
            std::string::npos)
      << resolv;
  EXPECT_NE(resolv.find("nameserver 10.96.0.10"), std::string::npos) << resolv;
  auto hosts = lab_->exec("pod/web-2", {"cat", "/etc/hosts"}).out;
  EXPECT_NE(hosts.find(lab_->pod_ips()["web-2"] + "\tweb-2"), std::string::npos) << hosts;
  // An orphan inside the pod is reaped by pause, not left a zombie.
  lab_->exec("pod/web-2", {"sh", "-c", "sleep 0.2 & exit 0"});
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  auto states = lab_->exec("pod/web-2", {"ps", "-eo", "stat="}).out;
  EXPECT_EQ(states.find('Z'), std::string::npos) << states;
#if defined(__x86_64__)
  // pause runs without address randomization, its code in the last 2 MB of
  // the address space with its stack: few page tables to build and free.
  auto maps = lab_->exec("pod/web-2", {"cat", "/proc/1/maps"}).out;
  EXPECT_NE(maps.find("\n7fffffe00000-7fffffe01000 r--p "), std::string::npos) << maps;
  EXPECT_TRUE(std::regex_search(
      maps, std::regex("\n7fffff[ef][0-9a-f]{5}-7ffffffff000 rw-p [^\n]*\\[stack\\]")))
      << maps;
#endif
}

TEST_F(ROOT_Quickstart, PodVethsCarryNoIpv6LinkLocalAddressAtEitherEnd) {
  auto eth0 = lab_->exec("pod/web-2", {"ip", "-6", "addr", "show", "dev", "eth0"});
  ASSERT_EQ(eth0.status, 0) << eth0.err;
  EXPECT_EQ(eth0.out.find("inet6"), std::string::npos) << eth0.out;
  EXPECT_NE(lab_->exec("pod/web-2", {"ip", "-6", "addr", "show", "dev", "lo"}).out.find("::1/128"),
            std::string::npos);
  // The node's ends, cni0's ports, have none either; the node's own links keep theirs.
  auto ports = lab_->exec(
      "node/worker1",
      {"sh", "-c",
       "for p in $(ip -o link show master cni0 | awk -F': ' '{print $2}' | cut -d@ -f1); do "
       "echo port $p; ip -6 addr show dev $p; done"});
  ASSERT_EQ(ports.status, 0) << ports.err;
  EXPECT_NE(ports.out.find("port veth"), std::string::npos) << ports.out;
  EXPECT_EQ(ports.out.find("inet6"), std::string::npos) << ports.out;
  for (const auto* dev : {"cni0", "eth0", "flannel.1"})
    EXPECT_NE(
        lab_->exec("node/worker1", {"ip", "-6", "addr", "show", "dev", dev}).out.find("fe80::"),
        std::string::npos)
        << dev;
}

TEST_F(ROOT_Quickstart, IpInAPodNamesTheVethPeerByNetnsIdWithoutErrors) {
  auto link = lab_->exec("pod/web-2", {"ip", "link", "show", "dev", "eth0"});
  ASSERT_EQ(link.status, 0) << link.err;
  EXPECT_NE(link.out.find("link-netnsid 0"), std::string::npos) << link.out;
  EXPECT_EQ(link.err, "") << "the machine's namespace files showed through into the pod";
  EXPECT_EQ(lab_->exec("pod/web-2", {"ls", "/run/netns"}).out, "");
  // A node, like a machine running kubelet, names its pods' namespaces.
  auto node = lab_->exec("node/worker1", {"ip", "link", "show", "type", "veth"});
  ASSERT_EQ(node.status, 0) << node.err;
  EXPECT_NE(node.out.find("link-netns knl-" + lab_->name() + "-p-default-"), std::string::npos)
      << node.out;
  EXPECT_EQ(node.err, "");
}

TEST_F(ROOT_Quickstart, PodProcessesMayRunOnEveryCpuTheDeployMay) {
  // The threads that start pods keep to one CPU each; what they start must not.
  std::ifstream self("/proc/self/status");
  std::string line, cpus;
  while (std::getline(self, line))
    if (line.rfind("Cpus_allowed_list:", 0) == 0) cpus = line;
  ASSERT_FALSE(cpus.empty());
  auto status = lab_->exec("pod/web-2",
                           {"grep", "-h", "Cpus_allowed_list", "/proc/1/status", "/proc/2/status"});
  ASSERT_EQ(status.status, 0) << status.err;
  EXPECT_EQ(status.out, cpus + "\n" + cpus) << "pause (PID 1) or netexec (PID 2) is pinned";
}

TEST_F(ROOT_Quickstart, PodFilesLiveInATmpfsOfTheLab) {
  auto pods = "/run/knetlab/" + lab_->name() + "/pods";
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(mountinfo, line))
    if (line.find(" " + pods + " ") != std::string::npos) found = line;
  EXPECT_NE(found.find(" - tmpfs "), std::string::npos) << "no tmpfs on " << pods;
  // What the pod sees as /etc/hosts is that folder's file.
  std::ifstream hosts(pods + "/default_web-2/hosts");
  std::stringstream text;
  text << hosts.rdbuf();
  EXPECT_EQ(text.str(), lab_->exec("pod/web-2", {"cat", "/etc/hosts"}).out + "\n");
}

TEST_F(ROOT_Quickstart, PodsSeeTheirOwnInterfacesInAReadOnlySysfs) {
  auto net = lab_->exec("pod/web-2", {"ls", "/sys/class/net"});
  ASSERT_EQ(net.status, 0) << net.err;
  EXPECT_EQ(net.out, "eth0\nlo") << "the pod's /sys is not its own network namespace's sysfs";
  auto write = lab_->exec("pod/web-2", {"sh", "-c", "echo 1400 > /sys/class/net/eth0/mtu"});
  EXPECT_NE(write.status, 0) << "a pod could write to sysfs";
  EXPECT_NE(write.err.find("Read-only file system"), std::string::npos) << write.err;
  // Nothing of the machine's /sys (its cgroup mounts) is left under it.
  auto mounts = lab_->exec("pod/web-2", {"grep", "-c", " /sys", "/proc/self/mountinfo"});
  EXPECT_EQ(mounts.out, "1") << lab_->exec("pod/web-2", {"cat", "/proc/self/mountinfo"}).out;
}

TEST_F(ROOT_Quickstart, AnExitedContainerIsRestartedInsideItsPod) {
  auto url = fmt::format("http://{}:8080/", lab_->pod_ips()["web-3"]);
  auto before = lab_->exec("pod/web-3", {"ps", "-o", "pid=,comm=", "-e"});
  ASSERT_EQ(lab_->exec("node/control-plane", {"netexec", "get", url + "shutdown"}).status, 0);
  // The first restart comes after the 10 s back-off, as the kubelet's.
  Result name;
  for (int i = 0; i < 150; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    name = lab_->exec("node/control-plane", {"netexec", "get", url + "hostname", "--timeout=1"});
    if (name.status == 0) break;
  }
  // It answers on the pod's address with the pod's hostname, and it is in
  // the pod's PID namespace, beside pause as PID 1.
  EXPECT_EQ(name.out, "web-3") << name.err;
  auto after = lab_->exec("pod/web-3", {"ps", "-o", "pid=,comm=", "-e"});
  EXPECT_NE(after.out.find("1 pause"), std::string::npos) << after.out;
  EXPECT_NE(after.out.find("netexec"), std::string::npos) << after.out;
  EXPECT_NE(after.out, before.out) << "netexec did not change its pid";
  // Ready again (its readiness probe passed) before the next test looks.
  for (int i = 0; i < 50; ++i) {
    auto pods = knetlab({"get", "pods", "--lab", lab_->name()}).out;
    if (std::regex_search(pods, std::regex("web-3 +1/1 +Running"))) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

TEST_F(ROOT_Quickstart, ExecReturnsTheCommandsExitStatus) {
  EXPECT_EQ(lab_->exec("pod/web-0", {"sh", "-c", "exit 7"}).status, 7);
  EXPECT_EQ(lab_->exec("pod/default/web-0", {"true"}).status, 0);
  EXPECT_EQ(lab_->exec("node/worker2", {"sh", "-c", "exit 3"}).status, 3);
  EXPECT_EQ(lab_->exec("host/client", {"false"}).status, 1);
  auto unknown = lab_->exec("pod/web-9", {"true"});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("no running pod \"web-9\""), std::string::npos) << unknown.err;
  auto router = lab_->exec("router/spine", {"true"});
  EXPECT_EQ(router.status, 1) << router.err;
}

TEST_F(ROOT_Quickstart, HostsSitOnTheNodesLan) {
  auto addr = json::parse(
      lab_->exec("host/client", {"ip", "-j", "-4", "addr", "show", "eth0"}).out)[0]["addr_info"][0];
  EXPECT_EQ(addr["local"], "172.18.0.5");  // after the three nodes
  auto route = lab_->exec("host/client", {"ip", "route", "show", "default"}).out;
  EXPECT_NE(route.find("via 172.18.0.1"), std::string::npos) << route;
  // The client reaches a node's address over the LAN (the node answers ICMP).
  EXPECT_EQ(lab_->exec("host/client", {"ping", "-c", "1", "-W", "2", "172.18.0.3"}).status, 0);
}

TEST_F(ROOT_Quickstart, InspectAndGetDescribeTheLab) {
  auto j = lab_->inspect();
  EXPECT_EQ(j["network"]["cni"], "vxlan");
  ASSERT_EQ(j["nodes"].size(), 3u);
  EXPECT_EQ(j["nodes"][1]["podCIDR"], "10.244.1.0/24");
  // The file's five pods, and the cluster DNS's two in kube-system.
  ASSERT_EQ(j["pods"].size(), 7u);
  EXPECT_EQ(std::count_if(j["pods"].begin(), j["pods"].end(),
                          [](const json& p) { return p["namespace"] == "kube-system"; }),
            2);
  for (const auto& pod : j["pods"]) {
    EXPECT_TRUE(pod["ready"].get<bool>()) << pod;
    EXPECT_TRUE(std::filesystem::exists("/run/netns/" + pod["netns"].get<std::string>()));
  }
  EXPECT_EQ(j["hosts"][0]["name"], "client");
  auto table = knetlab({"get", "pods", "--lab", lab_->name(), "-o", "wide"});
  EXPECT_EQ(table.status, 0);
  EXPECT_NE(table.out.find("sidecar-demo"), std::string::npos);
  EXPECT_NE(table.out.find("2/2"), std::string::npos) << table.out;
  auto nodes =
      json::parse(knetlab({"get", "nodes", "worker2", "--lab", lab_->name(), "-o", "json"}).out);
  ASSERT_EQ(nodes["items"].size(), 1u);
  EXPECT_EQ(nodes["items"][0]["ip"], "172.18.0.4");
}

// cni = "bridge", one node.
TEST(ROOT_SingleNode, PodsMeetOnTheNodeBridge) {
  KNL_REQUIRE_ROOT();
  Lab lab("itsingle", source_file("topologies/single-node.toml"));
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  auto ips = lab.pod_ips();
  for (const auto& to : {"echo-0", "echo-1", "echo-2"}) {
    auto url = fmt::format("http://{}:8080/", ips[to]);
    EXPECT_EQ(lab.exec("pod/toolbox", {"netexec", "get", url + "hostname"}).out, to);
    auto seen = lab.exec("pod/toolbox", {"netexec", "get", url + "clientip"}).out;
    EXPECT_EQ(seen.substr(0, seen.find(':')), ips["toolbox"]);
  }
  auto links = lab.exec("node/node", {"ip", "-o", "link", "show"}).out;
  EXPECT_EQ(links.find("flannel.1"), std::string::npos) << "the bridge CNI has no tunnel";
}

const char* kTwoNodes = R"(name = "x"
[[nodes]]
name = "n1"
[[nodes]]
name = "n2"
[[hosts]]
name = "outside"
[[pods]]
name = "a"
node = "n1"
[[pods.containers]]
name = "c"
image = "netexec"
ports = [{ containerPort = 8080 }]
[[pods]]
name = "b"
node = "n2"
[[pods.containers]]
name = "c"
image = "netexec"
ports = [{ containerPort = 8080 }]
[[pods]]
name = "hostnet"
node = "n2"
hostNetwork = true
[[pods.containers]]
name = "c"
image = "netexec"
args = ["--http-port=8090", "--udp-port=0"]
ports = [{ containerPort = 8090 }]
)";

TEST(ROOT_Lifecycle, HostNetworkPodsAnswerOnTheNodesAddress) {
  KNL_REQUIRE_ROOT();
  Lab lab("ithostnet", kTwoNodes);
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  auto r = lab.exec("host/outside", {"netexec", "get", "http://172.18.0.3:8090/hostname"});
  EXPECT_EQ(r.out, "hostnet") << r.err;
  auto seen = lab.exec("host/outside", {"netexec", "get", "http://172.18.0.3:8090/clientip"}).out;
  EXPECT_EQ(seen.substr(0, seen.find(':')), "172.18.0.4");
}

// One request line to a lab's supervisor, its answer line back.
std::string ask_control(const std::string& lab, const std::string& line) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  auto path = fmt::format("/run/knetlab/{}/control.sock", lab);
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, (line + "\n").data(), line.size() + 1) == static_cast<ssize_t>(line.size() + 1))
    for (char c; ::read(fd, &c, 1) == 1 && c != '\n';) answer += c;
  ::close(fd);
  return answer;
}

TEST(ROOT_Lifecycle, DestroyFirstQuiescesTheSupervisorWhichThenOnlyReaps) {
  KNL_REQUIRE_ROOT();
  Lab lab("itquiet", kTwoNodes);
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  int pid = 0;
  std::istringstream lines(read_text("/run/knetlab/itquiet/journal"));
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("process ", 0) == 0 && line.find(" container:") != std::string::npos)
      pid = std::stoi(line.substr(8));
  ASSERT_GT(pid, 0);
  EXPECT_EQ(ask_control("itquiet", R"({"op":"quiesce"})"), R"({"ok":true,"result":{}})");
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // Reaped (not left a zombie), but neither logged nor handed to the
  // controller, whose every reaction would compete with destroy for the CPUs.
  EXPECT_TRUE(read_text(fmt::format("/proc/{}/stat", pid)).empty());
  auto events = read_text("/run/knetlab/itquiet/events.log");
  EXPECT_EQ(events.find(fmt::format("exit pid={} ", pid)), std::string::npos) << events;
}

TEST(ROOT_Lifecycle, DestroysQuiesceWithStopHasTheSupervisorKillAndReapTheLabsProcesses) {
  KNL_REQUIRE_ROOT();
  Lab lab("itstop", kTwoNodes);
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  std::vector<int> pods;
  int supervisor = 0;
  std::istringstream lines(read_text("/run/knetlab/itstop/journal"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("process ", 0) != 0) continue;
    int pid = std::stoi(line.substr(8));
    if (line.find(" supervisor") != std::string::npos) supervisor = pid;
    if (line.find(" sandbox:") != std::string::npos ||
        line.find(" container:") != std::string::npos)
      pods.push_back(pid);
  }
  ASSERT_GT(supervisor, 0);
  ASSERT_GE(pods.size(), 4U);
  auto answer = ask_control("itstop", R"({"op":"quiesce","stop":true})");
  auto stopped = json::parse(answer).at("result").at("stopped").get<size_t>();
  EXPECT_GE(stopped, pods.size()) << answer;  // and the mount template
  // Gone and reaped by the time it answered, not zombies; the supervisor runs on.
  for (int pid : pods) EXPECT_TRUE(read_text(fmt::format("/proc/{}/stat", pid)).empty()) << pid;
  EXPECT_FALSE(read_text(fmt::format("/proc/{}/stat", supervisor)).empty());
  EXPECT_EQ(knetlab({"destroy", "--lab", "itstop"}).status, 0);
}

TEST(ROOT_Lifecycle, DestroyLeavesNothingAndTheMachineUnchanged) {
  KNL_REQUIRE_ROOT();
  auto before = host_network_snapshot();
  std::vector<int> pids;
  {
    Lab lab("itclean", kTwoNodes);
    ASSERT_TRUE(lab.ok()) << lab.deployed().err;
    auto journal = read_text("/run/knetlab/itclean/journal");
    std::istringstream lines(journal);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("process ", 0) == 0) pids.push_back(std::stoi(line.substr(8)));
    EXPECT_GE(pids.size(), 5u) << journal;
  }
  EXPECT_TRUE(nothing_left("itclean"));
  for (int pid : pids) {
    auto stat = read_text(fmt::format("/proc/{}/stat", pid));
    EXPECT_TRUE(stat.empty() || stat.find(") Z ") != std::string::npos)
        << "process " << pid << " still runs: " << stat;
  }
  EXPECT_EQ(host_network_snapshot(), before) << "the machine's own network namespace changed";
  // Destroying again is fine and says so.
  auto again = knetlab({"destroy", "--lab", "itclean"});
  EXPECT_EQ(again.status, 0);
  EXPECT_NE(again.err.find("nothing to destroy"), std::string::npos) << again.err;
  EXPECT_TRUE(nothing_left("itclean")) << "destroying a lab that is gone left its lock file";
}

TEST(ROOT_Lifecycle, TwoLabsWithTheSameNodeNamesRunSideBySide) {
  KNL_REQUIRE_ROOT();
  auto one = std::make_unique<Lab>("itsidea", kTwoNodes);
  Lab two("itsideb", kTwoNodes);
  ASSERT_TRUE(one->ok()) << one->deployed().err;
  ASSERT_TRUE(two.ok()) << two.deployed().err;
  for (const auto* lab : {one.get(), &two})
    EXPECT_EQ(lab->exec("pod/a", {"netexec", "get", "http://10.244.1.2:8080/hostname"}).out, "b")
        << lab->name();
  one.reset();  // destroying one leaves the other working
  EXPECT_EQ(two.exec("pod/a", {"netexec", "get", "http://10.244.1.2:8080/hostname"}).out, "b");
}

TEST(ROOT_Lifecycle, AKernelRefusalRollsTheDeployBack) {
  KNL_REQUIRE_ROOT();
  // A namespace of ours already holds the name the host would get.
  ASSERT_EQ(run({"ip", "netns", "add", "knl-itrefuse-h-outside"}).status, 0);
  auto file = "/tmp/knetlab-test-itrefuse.toml";
  std::ofstream(file) << renamed(kTwoNodes, "itrefuse");
  auto r = knetlab({"deploy", file});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("create network namespace knl-itrefuse-h-outside"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("File exists"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::exists("/run/netns/knl-itrefuse-h-outside"))
      << "the rollback removed a namespace that was not the lab's";
  ASSERT_EQ(run({"ip", "netns", "delete", "knl-itrefuse-h-outside"}).status, 0);
  EXPECT_TRUE(nothing_left("itrefuse"));
  std::filesystem::remove(file);
}

TEST(ROOT_Lifecycle, ADeployKilledBeforeItsStateRecordIsCleanedUpByTheNext) {
  KNL_REQUIRE_ROOT();
  // What a deploy killed right after its journal's first entries leaves: the
  // "deploying" record is written alongside, and may not be there yet.
  ASSERT_EQ(run({"ip", "netns", "add", "knl-itnostate-lan"}).status, 0);
  std::filesystem::create_directories("/run/knetlab/itnostate");
  std::ofstream("/run/knetlab/itnostate/journal") << "netns knl-itnostate-lan\n";
  {
    Lab lab("itnostate", kTwoNodes);
    ASSERT_TRUE(lab.ok()) << lab.deployed().err;
    EXPECT_NE(lab.deployed().err.find("leftovers of an interrupted deploy"), std::string::npos)
        << lab.deployed().err;
    // The leftover held the name of the lab's LAN: it went first.
    EXPECT_EQ(lab.exec("pod/a", {"netexec", "get", "http://10.244.1.2:8080/hostname"}).out, "b");
  }
  EXPECT_TRUE(nothing_left("itnostate"));
}

TEST(ROOT_Lifecycle, AContainerThatExitsFailsTheDeployAndRollsItBack) {
  KNL_REQUIRE_ROOT();
  auto file = "/tmp/knetlab-test-itexit.toml";
  std::ofstream(file) << renamed(kTwoNodes, "itexit") << R"(
[[pods]]
name = "broken"
node = "n1"
[[pods.containers]]
name = "main"
command = ["false"]
ports = [{ containerPort = 8080 }]
)";
  auto start = std::chrono::steady_clock::now();
  auto r = knetlab({"deploy", file});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("pod default/broken container main (false) exited; the end of its log"),
            std::string::npos)
      << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20))
      << "waited for a container that had already exited";
  EXPECT_TRUE(nothing_left("itexit"));
  std::filesystem::remove(file);
}

TEST(ROOT_Lifecycle, CtrlCWhileThePodsNetworksAreBuiltRollsTheDeployBack) {
  KNL_REQUIRE_ROOT();
  std::string topology =
      "name = \"itint\"\n[network]\ncni = \"bridge\"\nnodeMaskSize = 22\n"
      "[[nodes]]\nname = \"n\"\n"
      "[[deployments]]\nname = \"p\"\nreplicas = 300\n"
      "[[deployments.containers]]\nname = \"c\"\nimage = \"shell\"\n";
  auto file = "/tmp/knetlab-test-itint.toml";
  std::ofstream(file) << topology;
  auto log = "/tmp/knetlab-test-itint.err";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setpgid(0, 0);  // a process group of its own, as a terminal's Ctrl-C reaches
    int null = ::open("/dev/null", O_RDWR);
    int err = ::open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(null, 1), ::dup2(err, 2);
    auto program = std::string(KNL_BIN_DIR) + "/knetlab";
    ::execl(program.c_str(), "knetlab", "deploy", file, nullptr);
    ::_exit(127);
  }
  // Once some pods' namespaces are made (bound in /run/netns), while one
  // thread makes more and the other wires them.
  auto made = [] {
    auto mounts = read_text("/proc/self/mountinfo");
    size_t n = 0;
    for (size_t at = 0; (at = mounts.find("knl-itint-p-", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  size_t at_signal = 0;
  int status = 0;
  pid_t ended = 0;
  while ((at_signal = made()) < 30 && (ended = ::waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(ended, 0) << "the deploy ended before it was signalled: " << read_text(log);
  ::kill(-pid, SIGINT);
  ::waitpid(pid, &status, 0);
  EXPECT_GE(at_signal, 30u);
  EXPECT_LT(at_signal, 300u) << "signalled after every pod's namespace was made";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  auto err = read_text(log);
  EXPECT_NE(err.find("interrupted by signal 2; rolled back"), std::string::npos) << err;
  EXPECT_TRUE(nothing_left("itint"));
  EXPECT_EQ(made(), 0u);
  std::filesystem::remove(file);
  std::filesystem::remove(log);
}

TEST(ROOT_Lifecycle, SigkillDuringDeployThenDestroyLeavesNothing) {
  KNL_REQUIRE_ROOT();
  std::string topology =
      "name = \"itkill\"\n[network]\ncni = \"bridge\"\n[[nodes]]\nname = \"n\"\n"
      "[[deployments]]\nname = \"p\"\nreplicas = 200\n"
      "[[deployments.containers]]\nname = \"c\"\nimage = \"shell\"\n";
  auto file = "/tmp/knetlab-test-itkill.toml";
  std::ofstream(file) << topology;
  pid_t pid = deploy_in_background(file);
  ASSERT_GE(pid, 0);
  // Kill it once some pods run: namespaces, links and processes all exist.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto journal = read_text("/run/knetlab/itkill/journal");
    size_t sandboxes = 0;
    for (size_t at = 0; (at = journal.find("sandbox:", at)) != std::string::npos; ++at) ++sandboxes;
    if (sandboxes >= 20 || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(std::filesystem::exists("/run/knetlab/itkill/journal")) << "killed too late";
  auto r = knetlab({"destroy", "--lab", "itkill"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(nothing_left("itkill"));
  // No process of the lab survived: none of the machine's pause processes is in a lab namespace.
  auto ps = run({"ps", "-eo", "stat=,comm="}).out;
  std::istringstream lines(ps);
  size_t running_pause = 0;
  for (std::string line; std::getline(lines, line);)
    running_pause += line.find("pause") != std::string::npos && line[0] != 'Z';
  EXPECT_EQ(running_pause, 0u) << ps;
  std::filesystem::remove(file);
}

TEST(ROOT_Cli, ValidateRejectsABrokenFileWithoutTouchingTheKernel) {
  KNL_REQUIRE_ROOT();
  auto file = "/tmp/knetlab-test-itbroken.toml";
  std::ofstream(file) << "name = \"itbroken\"\n[[nodes]]\nname = \"n\"\nrole = \"master\"\n";
  for (const char* verb : {"validate", "deploy"}) {
    auto r = knetlab({verb, file});
    EXPECT_EQ(r.status, 1) << verb;
    EXPECT_NE(r.err.find(std::string(file) + ":4:1: \"role\" = \"master\" is not allowed"),
              std::string::npos)
        << r.err;
  }
  EXPECT_TRUE(nothing_left("itbroken"));
  std::filesystem::remove(file);
}

TEST(ROOT_Cli, DeployingTheSameFileTwiceChangesNothing) {
  KNL_REQUIRE_ROOT();
  Lab lab("ittwice", kTwoNodes);
  ASSERT_TRUE(lab.ok()) << lab.deployed().err;
  auto pid_before = lab.inspect()["pods"][0]["netns"];
  auto again = knetlab({"deploy", "/tmp/knetlab-test-ittwice.toml"});
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("nothing to do"), std::string::npos) << again.err;
  // An added host is added; the running pods are not touched.
  std::ofstream("/tmp/knetlab-test-ittwice.toml", std::ios::app)
      << "[[hosts]]\nname = \"another\"\n";
  auto added = knetlab({"deploy", "/tmp/knetlab-test-ittwice.toml"});
  EXPECT_EQ(added.status, 0) << added.err;
  EXPECT_NE(added.err.find("added host/another"), std::string::npos) << added.err;
  EXPECT_EQ(lab.inspect()["pods"][0]["netns"], pid_before);
  auto n1 = lab.inspect()["nodes"][0]["ip"].get<std::string>();
  EXPECT_EQ(lab.exec("host/another", {"ping", "-c", "1", "-W", "2", n1}).status, 0);
  // A pod taken away is not what apply does: it says so, and changes nothing.
  auto text = renamed(kTwoNodes, "ittwice");
  const std::string pod_b = "name = \"b\"\nnode";
  text.replace(text.find(pod_b), pod_b.size(), "name = \"b2\"\nnode");
  std::ofstream("/tmp/knetlab-test-ittwice.toml") << text;
  auto changed = knetlab({"deploy", "/tmp/knetlab-test-ittwice.toml"});
  EXPECT_EQ(changed.status, 1);
  EXPECT_NE(changed.err.find("pod default/b is not in the file"), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find("destroy --lab ittwice"), std::string::npos) << changed.err;
  EXPECT_EQ(lab.exec("pod/a", {"netexec", "get", "http://10.244.1.2:8080/hostname"}).out, "b");
}

}  // namespace
}  // namespace knl::test
