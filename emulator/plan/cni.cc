#include "knetlab/plan/cni.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "knetlab/topology/schema.h"
#include "knetlab/util/hash.h"

namespace knl {

std::string cni_node_dir(const std::string& run_dir, const std::string& node) {
  return fmt::format("{}/cni/{}", run_dir, node);
}

std::string cni_conflist_path(const std::string& run_dir, const std::string& node) {
  return cni_node_dir(run_dir, node) + "/net.conflist";
}

int pod_mtu(const Network& network) {
  bool overlay = network.cni == Cni::vxlan || (network.cni == Cni::external && network.cni_config &&
                                               network.cni_config->routing == CniRouting::vxlan);
  return overlay ? network.mtu - 50 : network.mtu;
}

std::string render_conflist(const Network& network, const std::string& lab, const NodePlan& node) {
  const auto& config = *network.cni_config;
  auto fail = [&](const std::string& why) {
    fail_at(config.where_conflist, "", fmt::format("conflist {}: {}", config.conflist, why));
  };
  const std::pair<std::string_view, std::string> values[] = {
      {"podCIDR", node.pod_cidr.str()},
      {"podSubnet", network.pod_subnet.str()},
      {"nodeIP", node.ip.str()},
      {"node", node.name},
      {"mtu", std::to_string(pod_mtu(network))},
      {"lab", lab}};
  const auto& text = config.conflist_text;
  std::string out;
  size_t at = 0;
  for (auto open = text.find("{{"); open != std::string::npos; open = text.find("{{", at)) {
    auto close = text.find("}}", open);
    if (close == std::string::npos) fail("a \"{{\" is never closed with \"}}\"");
    auto name = std::string_view(text).substr(open + 2, close - open - 2);
    const auto* value = std::find_if(std::begin(values), std::end(values),
                                     [&](const auto& v) { return v.first == name; });
    if (value == std::end(values))
      fail(
          fmt::format("unknown placeholder {{{{{}}}}} (known: podCIDR, podSubnet, nodeIP, node, "
                      "mtu, lab)",
                      name));
    out.append(text, at, open - at);
    out += value->second;
    at = close + 2;
  }
  out.append(text, at);
  nlohmann::json list;
  try {
    list = nlohmann::json::parse(out);
  } catch (const nlohmann::json::exception& e) {
    fail(fmt::format("not JSON once rendered for node \"{}\": {}", node.name, e.what()));
  }
  if (!list.is_object()) fail("a conflist is a JSON object");
  for (const auto* key : {"name", "cniVersion"})
    if (!list.contains(key) || !list[key].is_string() || list[key].get<std::string>().empty())
      fail(fmt::format("a conflist needs a \"{}\" string", key));
  if (!list.contains("plugins") || !list["plugins"].is_array() || list["plugins"].empty())
    fail("a conflist needs a non-empty \"plugins\" list (a single plugin's .conf is not a list)");
  size_t i = 0;
  for (const auto& plugin : list["plugins"]) {
    ++i;
    if (!plugin.is_object() || !plugin.contains("type") || !plugin["type"].is_string() ||
        plugin["type"].get<std::string>().empty() ||
        plugin["type"].get<std::string>().find('/') != std::string::npos)
      fail(fmt::format("plugin {} of the chain needs a \"type\": the name of its binary", i));
  }
  return out;
}

std::vector<std::string> conflist_plugin_types(const std::string& conflist) {
  std::vector<std::string> out;
  auto list = nlohmann::json::parse(conflist);
  for (const auto& plugin : list["plugins"]) out.push_back(plugin["type"].get<std::string>());
  return out;
}

std::string flannel_subnet_env(const Network& network, const NodePlan& node) {
  return fmt::format(
      "FLANNEL_NETWORK={}\nFLANNEL_SUBNET={}/{}\nFLANNEL_MTU={}\nFLANNEL_IPMASQ=true\n",
      network.pod_subnet.str(), node.pod_cidr.at(1).str(), node.pod_cidr.prefix, pod_mtu(network));
}

std::string cni_container_id(const std::string& lab, const std::string& pod_key) {
  std::string out;
  for (int part = 0; part < 8; ++part)
    out += fmt::format("{:08x}", fnv1a(fmt::format("{}/{}/{}", part, lab, pod_key)));
  return out;
}

}  // namespace knl
