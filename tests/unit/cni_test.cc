// cni = "external": the topology's [network.cniConfig], the plan of an
// external lab (no wiring of knetlab's own, a conflist rendered per node),
// and the plugin runner's protocol against recording fake programs: chain
// order, prevResult, runtimeConfig by capability, CNI_ARGS, the DEL of a
// failed ADD in reverse order, and the error that names the plugin.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fakes.h"
#include "knetlab/plan/cni.h"
#include "knetlab/realize/cni.h"
#include "knetlab/util/error.h"

namespace knl {
namespace {

constexpr const char* kConflist = R"({
  "cniVersion": "1.0.0", "name": "net",
  "plugins": [
    { "type": "bridge", "mtu": {{mtu}}, "ipam": { "type": "host-local", "subnet": "{{podCIDR}}" } },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "tuning" }
  ]
})";

// A folder with the conflist, where the topology file is said to be.
struct Folder {
  std::filesystem::path dir;
  explicit Folder(const std::string& conflist = kConflist) {
    dir = std::filesystem::temp_directory_path() /
          ("knl-cni-unit-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "net.conflist") << conflist;
  }
  ~Folder() { std::filesystem::remove_all(dir); }
  std::string file() const { return (dir / "lab.toml").string(); }
};

std::string lab_text(const std::string& cni_config, const std::string& pods = "") {
  return R"(name = "ext"
[network]
cni = "external"
)" + cni_config +
         R"(
[[nodes]]
name = "a"
[[nodes]]
name = "b"
[[pods]]
name = "web"
node = "b"
[[pods.containers]]
name = "c"
image = "netexec"
ports = [{ containerPort = 8080, hostPort = 8000 }]
)" + pods;
}

std::string error_of(const std::string& text, const std::string& file) {
  try {
    auto t = parse_topology(text, file);
    add_cluster_objects(t);
    make_plan(t, test_context());
  } catch (const UserError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(CniConfig, ReadsTheConflistBesideTheFileAndItsOptions) {
  Folder folder;
  auto t = parse_topology(lab_text(R"([network.cniConfig]
conflist = "net.conflist"
binDir = "/opt/cni/bin"
routing = "vxlan"
timeout = 5)"),
                          folder.file());
  ASSERT_TRUE(t.network.cni_config);
  EXPECT_EQ(t.network.cni_config->conflist_text, kConflist);
  EXPECT_EQ(t.network.cni_config->bin_dirs, std::vector<std::string>{"/opt/cni/bin"});
  EXPECT_EQ(t.network.cni_config->routing, CniRouting::vxlan);
  EXPECT_EQ(t.network.cni_config->timeout_seconds, 5);
  EXPECT_EQ(t.pods.at(0).spec.containers.at(0).ports.at(0).host_port, 8000);
}

TEST(CniConfig, RefusesWhatNoPluginCouldServeAtItsLine) {
  Folder folder;
  const auto file = folder.file();
  EXPECT_TRUE(
      contains(error_of(lab_text("[network.cniConfig]\nconflist = \"missing.conflist\""), file),
               "lab.toml:5:1: cannot read the conflist"))
      << error_of(lab_text("[network.cniConfig]\nconflist = \"missing.conflist\""), file);
  auto vxlan = std::string(R"(name = "v"
[network]
cni = "vxlan"
[[nodes]]
name = "a"
[[pods]]
name = "p"
[[pods.containers]]
name = "c"
image = "netexec"
ports = [{ containerPort = 80, hostPort = 80 }]
)");
  EXPECT_TRUE(contains(error_of(vxlan, file), ":11:") &&
              contains(error_of(vxlan, file), "hostPort is served by the portmap CNI plugin"))
      << error_of(vxlan, file);
  auto bad_rate =
      lab_text("[network.cniConfig]\nconflist = \"net.conflist\"",
               "[[pods]]\nname = \"s\"\nannotations = { \"kubernetes.io/egress-bandwidth\" "
               "= \"ten\" }\n[[pods.containers]]\nname = \"c\"\nimage = \"netexec\"\n");
  EXPECT_TRUE(contains(error_of(bad_rate, file), "is not a bandwidth")) << error_of(bad_rate, file);
}

TEST(CniConfig, ReadsBandwidthQuantitiesAsKubeletDoes) {
  EXPECT_EQ(bandwidth_bits("10M"), 10000000);
  EXPECT_EQ(bandwidth_bits("1Gi"), int64_t{1} << 30);
  EXPECT_EQ(bandwidth_bits("500k"), 500000);
  EXPECT_EQ(bandwidth_bits("1000"), 1000);
  EXPECT_FALSE(bandwidth_bits("0"));
  EXPECT_FALSE(bandwidth_bits("10 M"));
  EXPECT_FALSE(bandwidth_bits("M"));
  EXPECT_FALSE(bandwidth_bits("99999999999999999"));
}

TEST(CniPlan, LeavesThePodsWiringToThePluginsAndRendersEachNodesConflist) {
  Folder folder;
  auto t =
      parse_topology(lab_text("[network.cniConfig]\nconflist = \"net.conflist\""), folder.file());
  add_cluster_objects(t);
  auto plan = make_plan(t, test_context());
  for (const auto& l : plan.links)
    EXPECT_TRUE(l.kind != LinkKind::bridge || l.name == "lan0") << l.name << " in " << l.netns;
  for (const auto& l : plan.links)
    EXPECT_NE(l.peer_netns, pod_named(plan, "web").netns) << "a veth into the pod from " << l.netns;
  EXPECT_EQ(pod_named(plan, "web").ip, Ipv4{}) << "the plugins give the address";
  std::map<std::string, std::string> files;
  for (const auto& f : plan.files) files[f.path] = f.content;
  auto b = files.at(cni_conflist_path(plan.run_dir, "b"));
  EXPECT_TRUE(contains(b, "\"subnet\": \"10.244.1.0/24\"")) << b;
  EXPECT_TRUE(contains(b, "\"mtu\": 1500")) << b;
  EXPECT_TRUE(contains(files.at(cni_node_dir(plan.run_dir, "b") + "/flannel/subnet.env"),
                       "FLANNEL_SUBNET=10.244.1.1/24\n"));
  // host-gw: each node routes the other's pod CIDR through its address.
  bool routed = false;
  for (const auto& r : plan.routes)
    routed |= r.netns == plan.nodes[0].netns && r.dst == plan.nodes[1].pod_cidr &&
              r.via == plan.nodes[1].ip;
  EXPECT_TRUE(routed);
}

TEST(CniPlan, RoutesOtherNodesPodCidrsAsRoutingSays) {
  Folder folder;
  auto routes_to_b = [&](const std::string& routing) {
    auto t = parse_topology(
        lab_text("[network.cniConfig]\nconflist = \"net.conflist\"\nrouting = \"" + routing + "\""),
        folder.file());
    add_cluster_objects(t);
    auto plan = make_plan(t, test_context());
    std::vector<std::string> out;
    for (const auto& r : plan.routes)
      if (r.netns == plan.nodes[0].netns && r.dst == plan.nodes[1].pod_cidr)
        out.push_back(r.dev + " via " + r.via.str());
    for (const auto& l : plan.links)
      if (l.name == "flannel.1") out.push_back("flannel.1 in " + l.netns);
    return out;
  };
  EXPECT_EQ(routes_to_b("host-gw"), std::vector<std::string>{"eth0 via 172.18.0.3"});
  EXPECT_EQ(routes_to_b("vxlan"),
            (std::vector<std::string>{"flannel.1 via 10.244.1.0", "flannel.1 in knl-ext-n-a",
                                      "flannel.1 in knl-ext-n-b"}));
  EXPECT_TRUE(routes_to_b("none").empty()) << "the plugins' own job";
}

TEST(CniPlan, RefusesATemplateThatIsNotAConflistOnceRendered) {
  for (const auto& [conflist, why] : std::vector<std::pair<std::string, std::string>>{
           {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x", "v": "{{pod}}"}]})",
            "unknown placeholder {{pod}}"},
           {R"({"cniVersion": "1.0.0", "name": "n", "type": "bridge"})",
            "a single plugin's .conf is not a list"},
           {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [{"mtu": {{mtu}}}]})",
            "plugin 1 of the chain needs a \"type\""},
           {R"({"name": "n", "plugins": [{"type": "x"}]})", "needs a \"cniVersion\" string"},
           {R"({"cniVersion": "1.0.0", "name": "n", "plugins": [)", "not JSON once rendered"}}) {
    Folder folder(conflist);
    auto error =
        error_of(lab_text("[network.cniConfig]\nconflist = \"net.conflist\""), folder.file());
    EXPECT_TRUE(contains(error, "lab.toml:5:1") || contains(error, "lab.toml:5:")) << error;
    EXPECT_TRUE(contains(error, why)) << error;
  }
}

// A lab's plan with its conflists written where deploy writes them.
struct DeployedPlan {
  Folder folder;
  Plan plan;
  DeployedPlan() {
    auto t =
        parse_topology(lab_text("[network.cniConfig]\nconflist = \"net.conflist\""), folder.file());
    add_cluster_objects(t);
    auto context = test_context();
    context.run_root = (folder.dir / "run").string();
    plan = make_plan(t, context);
    for (const auto& f : plan.files)
      if (f.path.find("/cni/") != std::string::npos) {
        std::filesystem::create_directories(std::filesystem::path(f.path).parent_path());
        std::ofstream(f.path) << f.content;
      }
  }
};

std::string env_of(const ProgramCall& call, const std::string& name) {
  for (const auto& e : call.env)
    if (e.rfind(name + "=", 0) == 0) return e.substr(name.size() + 1);
  return "";
}

// Plugins that answer VERSION with 1.0.0, and ADD with their prevResult or,
// first in the chain, a result giving eth0 10.244.1.7; `failing` fails ADD.
ProgramResult answer(const ProgramCall& call, const std::string& failing = "") {
  auto type = call.argv.at(0).substr(call.argv.at(0).rfind('/') + 1);
  auto command = env_of(call, "CNI_COMMAND");
  if (command == "VERSION") return {0, R"({"supportedVersions": ["0.4.0", "1.0.0"]})", "", false};
  if (command == "ADD" && type == failing)
    return {1, R"({"code": 7, "msg": "no", "details": "why"})", "trace\n", false};
  if (command != "ADD") return {};
  auto conf = nlohmann::json::parse(call.input);
  if (conf.contains("prevResult")) return {0, conf["prevResult"].dump(), "", false};
  return {
      0,
      R"({"cniVersion": "1.0.0", "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
              "ips": [{"address": "10.244.1.9/24", "interface": 0}, {"address": "10.244.1.7/24", "interface": 1}]})",
      "", false};
}

TEST(CniPlugins, RunsTheChainInOrderAsLibcniDoes) {
  DeployedPlan lab;
  Injector injector;
  FakePrograms programs(injector);
  programs.answer = [](const ProgramCall& c) { return answer(c); };
  CniPlugins plugins(programs);
  std::vector<std::string> cached;
  const auto& pod = pod_named(lab.plan, "web");
  auto ip = plugins.add(lab.plan, pod, [&](const std::string& path) { cached.push_back(path); });
  EXPECT_EQ(ip.str(), "10.244.1.7") << "the address on eth0 in the pod, not the first";
  std::vector<std::string> adds;
  for (const auto& c : programs.calls)
    if (env_of(c, "CNI_COMMAND") == "ADD") adds.push_back(c.argv.at(0));
  EXPECT_EQ(adds, (std::vector<std::string>{"/usr/lib/cni/bridge", "/usr/lib/cni/portmap",
                                            "/usr/lib/cni/tuning"}));
  const auto& portmap = programs.calls.at(programs.calls.size() - 2);
  auto conf = nlohmann::json::parse(portmap.input);
  EXPECT_EQ(conf["name"], "net");
  EXPECT_EQ(conf["cniVersion"], "1.0.0");
  EXPECT_EQ(conf["prevResult"]["ips"][1]["address"], "10.244.1.7/24");
  EXPECT_EQ(conf["runtimeConfig"]["portMappings"][0]["hostPort"], 8000);
  EXPECT_FALSE(nlohmann::json::parse(programs.calls.back().input).contains("runtimeConfig"))
      << "tuning declares no capability";
  EXPECT_EQ(portmap.netns, pod.node_netns);
  EXPECT_EQ(env_of(portmap, "CNI_NETNS"), "/run/netns/" + pod.netns);
  EXPECT_EQ(env_of(portmap, "CNI_IFNAME"), "eth0");
  EXPECT_EQ(
      env_of(portmap, "CNI_ARGS"),
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=" +
          cni_container_id("ext", "default/web"));
  EXPECT_EQ(portmap.binds.at(0).second, "/var/lib/cni");
  ASSERT_EQ(cached.size(), 1u);
  EXPECT_EQ(cached[0], CniPlugins::cache_path(lab.plan, pod));
  auto cache = CniPlugins::cached(cached[0]);
  EXPECT_EQ(cache["kind"], "cniCacheV1");
  EXPECT_EQ(cache["result"]["ips"][1]["address"], "10.244.1.7/24");

  // DEL: reverse order, the cached result as prevResult; the cache goes.
  programs.calls.clear();
  CniPlugins::del(programs, cached[0]);
  std::vector<std::string> dels;
  for (const auto& c : programs.calls) dels.push_back(c.argv.at(0));
  EXPECT_EQ(dels, (std::vector<std::string>{"/usr/lib/cni/tuning", "/usr/lib/cni/portmap",
                                            "/usr/lib/cni/bridge"}));
  EXPECT_TRUE(nlohmann::json::parse(programs.calls.at(0).input).contains("prevResult"));
  EXPECT_FALSE(std::filesystem::exists(cached[0]));
}

TEST(CniPlugins, AFailedAddIsDeletedInReverseAndNamesThePlugin) {
  DeployedPlan lab;
  Injector injector;
  FakePrograms programs(injector);
  programs.answer = [](const ProgramCall& c) { return answer(c, "portmap"); };
  CniPlugins plugins(programs);
  const auto& pod = pod_named(lab.plan, "web");
  try {
    plugins.add(lab.plan, pod, [](const std::string&) {});
    FAIL() << "accepted";
  } catch (const UserError& e) {
    EXPECT_EQ(
        std::string(e.what()),
        "pod default/web: CNI ADD failed in plugin \"portmap\" (2 of 3 in the chain of "
        "network \"net\"): exit status 1, code 7, msg \"no\", details \"why\"; stderr: trace");
  }
  std::vector<std::string> commands;
  for (const auto& c : programs.calls)
    if (env_of(c, "CNI_COMMAND") != "VERSION")
      commands.push_back(env_of(c, "CNI_COMMAND") + " " +
                         c.argv.at(0).substr(c.argv.at(0).rfind('/') + 1));
  EXPECT_EQ(commands, (std::vector<std::string>{"ADD bridge", "ADD portmap", "DEL tuning",
                                                "DEL portmap", "DEL bridge"}));
  EXPECT_FALSE(std::filesystem::exists(CniPlugins::cache_path(lab.plan, pod)));
}

TEST(CniPlugins, PicksTheHighestVersionEveryPluginSupports) {
  Injector injector;
  FakePrograms programs(injector);
  programs.answer = [](const ProgramCall& c) {
    bool old = c.argv.at(0).find("old") != std::string::npos;
    return ProgramResult{0,
                         old ? R"({"supportedVersions": ["0.3.1", "0.4.0"]})"
                             : R"({"supportedVersions": ["0.4.0", "1.0.0"]})",
                         "", false};
  };
  CniPlugins plugins(programs);
  auto dir = std::filesystem::temp_directory_path() / ("knl-cni-bin-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const auto* name : {"new", "old"}) {
    std::ofstream(dir / name) << "#!/bin/sh\n";
    std::filesystem::permissions(dir / name, std::filesystem::perms::owner_all);
  }
  // 1.1.0 is neither's; of what both support, the highest is 0.4.0; and the
  // conflist's own when both support it.
  EXPECT_EQ(
      plugins.prepare(
          {R"({"cniVersion": "1.1.0", "name": "n", "plugins": [{"type": "new"}, {"type": "old"}]})",
           R"({"cniVersion": "1.0.0", "name": "o", "plugins": [{"type": "new"}]})",
           R"({"cniVersion": "0.4.0", "name": "p", "plugins": [{"type": "new"}]})"},
          {dir.string()}),
      (std::vector<std::string>{"0.4.0", "1.0.0", "0.4.0"}));
  try {
    plugins.prepare({R"({"cniVersion": "1.0.0", "name": "m", "plugins": [{"type": "gone"}]})"},
                    {dir.string()});
    FAIL() << "a missing plugin was accepted";
  } catch (const UserError& e) {
    EXPECT_TRUE(contains(e.what(),
                         "CNI plugin \"gone\" (1 of 1 in the chain of network \"m\") is "
                         "in none of the binDir folders"))
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace knl
