#include "knetlab/realize/cni.h"

#include <fmt/format.h>
#include <nettle/base64.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "knetlab/plan/cni.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

constexpr const char* kIfName = "eth0";

std::string base64(const std::string& bytes) {
  std::string out(BASE64_ENCODE_RAW_LENGTH(bytes.size()), '\0');
  base64_encode_raw(reinterpret_cast<char*>(out.data()), bytes.size(),
                    reinterpret_cast<const uint8_t*>(bytes.data()));
  return out;
}

std::string unbase64(const std::string& text, const std::string& path) {
  base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  std::string out(BASE64_DECODE_LENGTH(text.size()), '\0');
  size_t length = out.size();
  if (!base64_decode_update(&ctx, &length, reinterpret_cast<uint8_t*>(out.data()), text.size(),
                            text.data()) ||
      !base64_decode_final(&ctx))
    throw SystemError(fmt::format("{}: \"config\" is not base64", path), EINVAL);
  out.resize(length);
  return out;
}

// "1.0.0" -> {1, 0, 0}; unparsable parts are 0.
std::vector<int> version_parts(const std::string& v) {
  std::vector<int> out;
  std::istringstream in(v);
  for (std::string part; std::getline(in, part, '.');) out.push_back(std::atoi(part.c_str()));
  out.resize(3);
  return out;
}

bool at_least(const std::string& v, const std::string& than) {
  return version_parts(v) >= version_parts(than);
}

std::string find_plugin(const std::string& type, const std::vector<std::string>& bin_dirs) {
  for (const auto& dir : bin_dirs) {
    auto path = dir + "/" + type;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

// What the cache keeps besides libcni's own fields, so that DEL and CHECK
// run from the file alone (destroy has nothing else).
struct Attachment {
  nlohmann::json cache;
  std::string path;
  nlohmann::json list;  // the conflist
  const nlohmann::json& own() const { return cache.at("knetlab"); }
  std::string version() const { return own().at("cniVersion"); }
  std::vector<std::string> bin_dirs() const { return own().at("binDirs"); }
  std::chrono::milliseconds timeout() const {
    return std::chrono::seconds(own().value("timeoutSeconds", 30));
  }
};

void write_cache(const Attachment& a) {
  auto tmp = a.path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << a.cache.dump();
    if (!out) throw errno_error("write", tmp, "", errno);
  }
  if (::rename(tmp.c_str(), a.path.c_str()) != 0) throw errno_error("rename", tmp, "", errno);
}

Attachment read_attachment(const std::string& path) {
  Attachment a;
  a.path = path;
  a.cache = CniPlugins::cached(path);
  a.list = nlohmann::json::parse(unbase64(a.cache.at("config"), path));
  return a;
}

// The plugin's configuration as libcni gives it: the conflist's name and
// version injected, the runtime's arguments of the capabilities the plugin
// declares, and the previous result.
std::string plugin_input(const Attachment& a, const nlohmann::json& plugin,
                         const nlohmann::json* prev_result) {
  auto conf = plugin;
  conf["name"] = a.list.at("name");
  conf["cniVersion"] = a.version();
  nlohmann::json runtime = nlohmann::json::object();
  if (plugin.contains("capabilities") && plugin["capabilities"].is_object())
    for (const auto& [name, on] : plugin["capabilities"].items())
      if (on == true && a.cache.contains("capabilityArgs") &&
          a.cache["capabilityArgs"].contains(name))
        runtime[name] = a.cache["capabilityArgs"][name];
  if (!runtime.empty()) conf["runtimeConfig"] = runtime;
  if (prev_result && !prev_result->is_null()) conf["prevResult"] = *prev_result;
  return conf.dump();
}

ProgramCall plugin_call(const Attachment& a, const std::string& command, const std::string& binary,
                        std::string input, std::chrono::milliseconds timeout) {
  const auto& own = a.own();
  std::string args;
  for (const auto& kv : a.cache.at("cniArgs"))
    args += fmt::format("{}{}={}", args.empty() ? "" : ";", kv[0].get<std::string>(),
                        kv[1].get<std::string>());
  std::string dir = own.at("nodeDir");
  ProgramCall call;
  call.netns = own.at("nodeNetns");
  call.argv = {binary};
  call.input = std::move(input);
  call.env = {"CNI_COMMAND=" + command,
              "CNI_CONTAINERID=" + a.cache.at("containerId").get<std::string>(),
              "CNI_NETNS=" + a.cache.at("netns").get<std::string>(),
              "CNI_IFNAME=" + a.cache.at("ifName").get<std::string>(),
              fmt::format("CNI_PATH={}", fmt::join(a.bin_dirs(), ":")),
              "CNI_ARGS=" + args};
  call.binds = {{dir + "/lib", kCniStateDir}, {dir + "/flannel", kFlannelRunDir}};
  call.timeout = timeout;
  call.split_stderr = true;
  return call;
}

// How a plugin's run failed, for a message: its status, the error JSON's
// code, msg and details, the tail of its stderr.
std::string failure_text(const ProgramResult& r, std::chrono::milliseconds timeout) {
  if (r.timed_out) return fmt::format("no answer within {} s; killed", timeout.count() / 1000.0);
  std::string text = fmt::format("exit status {}", r.status);
  if (r.status == 127) text += " (could not be executed)";
  if (r.status == 126) text += " (could not enter the node's namespaces)";
  try {
    auto e = nlohmann::json::parse(r.output);
    if (e.contains("code")) text += fmt::format(", code {}", e["code"].dump());
    if (e.contains("msg")) text += fmt::format(", msg \"{}\"", e["msg"].get<std::string>());
    if (e.contains("details") && !e["details"].get<std::string>().empty())
      text += fmt::format(", details \"{}\"", e["details"].get<std::string>());
  } catch (const std::exception&) {
    if (!r.output.empty()) text += fmt::format(", stdout \"{}\"", r.output.substr(0, 300));
  }
  // Its first line (a Go plugin's panic says what happened there) and its tail.
  auto err = r.errors;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (err.size() > 400) {
    auto first = err.substr(0, std::min<size_t>(err.find('\n'), 200));
    err = first + " ... " + err.substr(err.size() - 200);
  }
  if (!err.empty()) text += fmt::format("; stderr: {}", err);
  return text;
}

std::string plugin_place(const Attachment& a, size_t i) {
  return fmt::format("plugin \"{}\" ({} of {} in the chain of network \"{}\")",
                     a.list["plugins"][i]["type"].get<std::string>(), i + 1,
                     a.list["plugins"].size(), a.list["name"].get<std::string>());
}

// The address the result gives eth0 in the pod (CNI 0.3.0 and later: ips[]
// pointing into interfaces[]; 0.1/0.2: ip4); the first IPv4 address when no
// entry names an interface.
std::optional<Ipv4> result_address(const nlohmann::json& result) {
  auto ipv4 = [](const nlohmann::json& address) -> std::optional<Ipv4> {
    if (!address.is_string()) return std::nullopt;
    const auto& text = address.get_ref<const std::string&>();
    return Ipv4::parse(std::string_view(text).substr(0, text.find('/')));
  };
  if (result.contains("ip4") && result["ip4"].contains("ip")) return ipv4(result["ip4"]["ip"]);
  if (!result.contains("ips")) return std::nullopt;
  std::optional<Ipv4> first;
  for (const auto& ip : result["ips"]) {
    auto address = ipv4(ip.value("address", nlohmann::json()));
    if (!address) continue;
    if (!first) first = address;
    if (!ip.contains("interface") || !result.contains("interfaces")) continue;
    auto index = ip["interface"].get<size_t>();
    if (index < result["interfaces"].size()) {
      const auto& itf = result["interfaces"][index];
      if (itf.value("name", "") == kIfName && !itf.value("sandbox", "").empty()) return address;
    }
  }
  return first;
}

}  // namespace

std::vector<std::string> CniPlugins::prepare(const std::vector<std::string>& conflists,
                                             const std::vector<std::string>& bin_dirs) {
  std::map<std::string, std::set<std::string>> supported;  // binary -> versions
  for (const auto& text : conflists) {
    if (versions_.count(text)) continue;
    auto list = nlohmann::json::parse(text);
    const auto& plugins = list["plugins"];
    std::string wanted = list["cniVersion"];
    std::set<std::string> common;
    for (size_t i = 0; i < plugins.size(); ++i) {
      std::string type = plugins[i]["type"];
      auto binary = find_plugin(type, bin_dirs);
      if (binary.empty())
        throw UserError(fmt::format(
            "CNI plugin \"{}\" ({} of {} in the chain of network \"{}\") is in none of the "
            "binDir folders: {}",
            type, i + 1, plugins.size(), list["name"].get<std::string>(),
            fmt::join(bin_dirs, ", ")));
      if (!supported.count(binary)) {
        ProgramCall call;
        call.argv = {binary};
        call.input = nlohmann::json{{"cniVersion", wanted}}.dump();
        call.env = {"CNI_COMMAND=VERSION"};
        call.timeout = timeout_;
        call.split_stderr = true;
        auto r = programs_.run(call);
        std::set<std::string> versions;
        try {
          if (r.status == 0) {
            auto answer = nlohmann::json::parse(r.output);
            for (const auto& v : answer.at("supportedVersions"))
              versions.insert(v.get<std::string>());
          }
        } catch (const std::exception&) {
        }
        if (versions.empty())
          throw UserError(fmt::format("CNI plugin \"{}\" ({}) did not answer VERSION: {}", type,
                                      binary, failure_text(r, timeout_)));
        supported[binary] = versions;
      }
      const auto& mine = supported[binary];
      if (i == 0) {
        common = mine;
      } else {
        std::set<std::string> both;
        std::set_intersection(common.begin(), common.end(), mine.begin(), mine.end(),
                              std::inserter(both, both.end()));
        common = both;
      }
    }
    if (common.empty())
      throw UserError(fmt::format(
          "the plugins of CNI network \"{}\" ({}) support no CNI version in common",
          list["name"].get<std::string>(), fmt::join(conflist_plugin_types(text), ", ")));
    std::string chosen =
        common.count(wanted)
            ? wanted
            : *std::max_element(common.begin(), common.end(), [](const auto& a, const auto& b) {
                return version_parts(a) < version_parts(b);
              });
    versions_[text] = chosen;
  }
  std::vector<std::string> out;
  for (const auto& text : conflists) out.push_back(versions_.at(text));
  return out;
}

std::string CniPlugins::conflist(const std::string& run_dir, const std::string& node) {
  const auto path = cni_conflist_path(run_dir, node);
  std::ifstream in(path);
  if (!in) throw errno_error("read the conflist", path, "", errno);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {

// libcni's place for an attachment: results/NETWORK-CONTAINERID-IFNAME.
std::string cache_file(const std::string& run_dir, const std::string& node,
                       const nlohmann::json& list, const std::string& container_id) {
  return fmt::format("{}/lib/results/{}-{}-{}", cni_node_dir(run_dir, node),
                     list["name"].get<std::string>(), container_id, kIfName);
}

}  // namespace

std::string CniPlugins::cache_path(const std::string& run_dir, const std::string& lab,
                                   const std::string& node, const std::string& pod_key) {
  return cache_file(run_dir, node, nlohmann::json::parse(conflist(run_dir, node)),
                    cni_container_id(lab, pod_key));
}

Ipv4 CniPlugins::add(const Plan& plan, const PodPlan& pod,
                     const std::function<void(const std::string&)>& cached) {
  const auto& config = *plan.network.cni_config;
  const auto text = conflist(plan.run_dir, pod.node);
  prepare({text}, config.bin_dirs);
  Attachment a;
  a.list = nlohmann::json::parse(text);
  const auto id = cni_container_id(plan.lab, pod.key());
  a.path = cache_file(plan.run_dir, pod.node, a.list, id);
  nlohmann::json capabilities = nlohmann::json::object();
  for (const auto& c : pod.containers)
    for (const auto& p : c.ports)
      if (p.host_port)
        capabilities["portMappings"].push_back(
            nlohmann::json{{"hostPort", p.host_port},
                           {"containerPort", p.container_port},
                           {"protocol", p.protocol == Protocol::udp ? "udp" : "tcp"}});
  // A tenth of a second at the rate as the bucket: kubelet's own burst is
  // unbounded, which hides the shaping from any short measurement.
  for (const auto& [key, word] :
       {std::pair{kIngressBandwidth, "ingress"}, std::pair{kEgressBandwidth, "egress"}})
    if (auto it = pod.annotations.find(key); it != pod.annotations.end()) {
      auto rate = *bandwidth_bits(it->second);
      capabilities["bandwidth"][std::string(word) + "Rate"] = rate;
      capabilities["bandwidth"][std::string(word) + "Burst"] = std::max<int64_t>(rate / 10, 96000);
    }
  a.cache = {{"kind", "cniCacheV1"},
             {"containerId", id},
             {"config", base64(text)},
             {"ifName", kIfName},
             {"networkName", a.list["name"]},
             {"netns", "/run/netns/" + pod.netns},
             {"cniArgs",
              nlohmann::json::array({nlohmann::json::array({"IgnoreUnknown", "1"}),
                                     nlohmann::json::array({"K8S_POD_NAMESPACE", pod.namespace_}),
                                     nlohmann::json::array({"K8S_POD_NAME", pod.name}),
                                     nlohmann::json::array({"K8S_POD_INFRA_CONTAINER_ID", id})})},
             {"capabilityArgs", capabilities},
             {"knetlab",
              {{"pod", pod.key()},
               {"node", pod.node},
               {"nodeNetns", pod.node_netns},
               {"nodeDir", cni_node_dir(plan.run_dir, pod.node)},
               {"binDirs", config.bin_dirs},
               {"cniVersion", versions_.at(text)},
               {"timeoutSeconds", timeout_.count() / 1000}}}};
  std::error_code ec;
  for (const auto* sub : {"/lib/results", "/flannel"})
    std::filesystem::create_directories(cni_node_dir(plan.run_dir, pod.node) + sub, ec);
  for (const auto* target : {kCniStateDir, kFlannelRunDir})
    std::filesystem::create_directories(target, ec);
  write_cache(a);
  cached(a.path);
  nlohmann::json result;
  const auto& plugins = a.list["plugins"];
  for (size_t i = 0; i < plugins.size(); ++i) {
    auto binary = find_plugin(plugins[i]["type"], config.bin_dirs);
    auto r = programs_.run(
        plugin_call(a, "ADD", binary, plugin_input(a, plugins[i], &result), timeout_));
    std::optional<nlohmann::json> out;
    if (r.status == 0 && !r.timed_out) try {
        out = nlohmann::json::parse(r.output);
      } catch (const std::exception&) {
      }
    if (!out || !out->is_object()) {
      auto why =
          fmt::format("pod {}: CNI ADD failed in {}: {}", pod.key(), plugin_place(a, i),
                      r.status == 0 && !r.timed_out
                          ? fmt::format("its result is not JSON: \"{}\"", r.output.substr(0, 200))
                          : failure_text(r, timeout_));
      try {
        del(programs_, a.path);
      } catch (const std::exception& e) {
        why += fmt::format("; the DEL that followed failed too: {}", e.what());
      }
      throw UserError(why);
    }
    result = std::move(*out);
  }
  a.cache["result"] = result;
  write_cache(a);
  auto ip = result_address(result);
  if (!ip) {
    auto why = fmt::format("pod {}: the CNI chain of network \"{}\" gave eth0 no IPv4 address: {}",
                           pod.key(), a.list["name"].get<std::string>(), result.dump());
    del(programs_, a.path);
    throw UserError(why);
  }
  return *ip;
}

void CniPlugins::del(Programs& programs, const std::string& cache_path) {
  if (!std::filesystem::exists(cache_path)) return;
  auto a = read_attachment(cache_path);
  const auto timeout = a.timeout();
  const nlohmann::json* prev = nullptr;
  if (a.cache.contains("result") && at_least(a.version(), "0.4.0")) prev = &a.cache["result"];
  const auto& plugins = a.list["plugins"];
  std::string first;
  for (size_t i = plugins.size(); i-- > 0;) {
    auto binary = find_plugin(plugins[i]["type"], a.bin_dirs());
    auto r =
        programs.run(plugin_call(a, "DEL", binary, plugin_input(a, plugins[i], prev), timeout));
    if ((r.status != 0 || r.timed_out) && first.empty())
      first = fmt::format("pod {}: CNI DEL failed in {}: {}", a.own().at("pod").get<std::string>(),
                          plugin_place(a, i), failure_text(r, timeout));
  }
  if (!first.empty()) throw UserError(first);
  std::filesystem::remove(cache_path);
}

std::vector<CniVerdict> CniPlugins::check(Programs& programs, const std::string& cache_path) {
  auto a = read_attachment(cache_path);
  const auto timeout = a.timeout();
  if (!at_least(a.version(), "0.4.0"))
    throw UserError(fmt::format("network \"{}\" runs CNI {}: CHECK came with 0.4.0",
                                a.list["name"].get<std::string>(), a.version()));
  if (a.list.value("disableCheck", false))
    throw UserError(fmt::format("network \"{}\" sets disableCheck: its plugins are not asked",
                                a.list["name"].get<std::string>()));
  std::vector<CniVerdict> out;
  const auto* prev = a.cache.contains("result") ? &a.cache["result"] : nullptr;
  for (const auto& plugin : a.list["plugins"]) {
    auto binary = find_plugin(plugin["type"], a.bin_dirs());
    auto r = programs.run(plugin_call(a, "CHECK", binary, plugin_input(a, plugin, prev), timeout));
    CniVerdict v{plugin["type"], r.status == 0 && !r.timed_out, ""};
    if (!v.ok) v.message = failure_text(r, timeout);
    out.push_back(v);
    if (!v.ok) break;
  }
  return out;
}

nlohmann::json CniPlugins::cached(const std::string& cache_path) {
  std::ifstream in(cache_path);
  if (!in) throw errno_error("read the CNI cache", cache_path, "", errno);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw SystemError(fmt::format("{}: not a CNI cache record: {}", cache_path, e.what()), EINVAL);
  }
}

}  // namespace knl
