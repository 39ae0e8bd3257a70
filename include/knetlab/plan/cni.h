#pragma once
// cni = "external": what the plan knows of the CNI plugins' work before any
// runs: each node's conflist rendered from the template, where each node's
// CNI state lives, each pod's sandbox ID. Running the plugins is
// realize/cni.h's.

#include <string>
#include <vector>

#include "knetlab/plan/plan.h"

namespace knl {

/// A node's CNI folder: `lib/` is its /var/lib/cni, `flannel/` its
/// /run/flannel, `net.conflist` its rendered conflist.
std::string cni_node_dir(const std::string& run_dir, const std::string& node);
std::string cni_conflist_path(const std::string& run_dir, const std::string& node);

/// The MTU of the pods' interfaces: the overlay's when packets are
/// encapsulated between nodes, the underlay's otherwise.
int pod_mtu(const Network& network);

/// The conflist template with `{{podCIDR}}`, `{{podSubnet}}`, `{{nodeIP}}`,
/// `{{node}}`, `{{mtu}}` and `{{lab}}` filled in for `node`. Throws
/// UserError at the conflist's line in the topology when the template names
/// another placeholder or the result is not a conflist: a JSON object with a
/// `name`, a `cniVersion` and a non-empty `plugins` list of objects with a
/// `type`.
std::string render_conflist(const Network& network, const std::string& lab, const NodePlan& node);

/// The plugin types of a rendered conflist, in chain order.
std::vector<std::string> conflist_plugin_types(const std::string& conflist);

/// flannel's subnet.env for `node`, which flannel's CNI plugin reads.
std::string flannel_subnet_env(const Network& network, const NodePlan& node);

/// The pod's sandbox ID, as kubelet gives CNI_CONTAINERID: 64 hex digits,
/// the same for the same lab and pod.
std::string cni_container_id(const std::string& lab, const std::string& pod_key);

}  // namespace knl
