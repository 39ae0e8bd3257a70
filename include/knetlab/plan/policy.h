#pragma once
// NetworkPolicy, decided: which pods a policy selects, what it allows a
// connection (the model that `knetlab check --policies` compares real
// packets with), and the nftables table that enforces the policies on each
// node. Pure; the policy reconciler applies the tables.
//
// A node's table, `ip network-policies`, sees its own pods' traffic after a
// Service's DNAT and before any SNAT:
// - base chain `egress` (forward hook) and `egress-to-node` (input hook):
//   a new connection from a local pod in the map `egress-pods` jumps to that
//   pod's chain `pod-NS/NAME-egress`;
// - base chain `ingress` (forward hook): a new connection to a local pod in
//   `ingress-pods` jumps to `pod-NS/NAME-ingress`;
// - a pod's chain jumps to the chain of each policy that selects it,
//   `policy-NS/NAME-ingress` or `-egress`, whose rules accept (with a
//   counter) what a rule of that policy allows, then drops with a counter;
// - each rule's peers and ports are sets named after it:
//   `policy-NS/NAME-ingress-N-pods` (the peers' pod IPs), `-cidrs` (ipBlocks,
//   their excepts cut out), `-ports` (protocol . port ranges) and `-named`
//   (address . protocol . port of a named container port).
// Established and related packets pass first: replies of allowed
// connections, and connections that a later change would deny, go on. The
// node's own traffic to its pods leaves by the output hook and passes.

#include <map>
#include <string>
#include <vector>

#include "knetlab/plan/nft.h"
#include "knetlab/plan/plan.h"

namespace knl {

/// The label Kubernetes gives every namespace, its name as the value.
inline constexpr const char* kNamespaceNameLabel = "kubernetes.io/metadata.name";
/// The table on every node of a lab with network policies.
inline constexpr const char* kPolicyTable = "ip network-policies";

/// A pod as network policies see it.
struct PolicyPod {
  std::string namespace_, name, node;
  Ipv4 ip;
  Labels labels;
  bool host_network = false;
  std::vector<ContainerPort> ports;  // every container's
  std::string key() const { return namespace_ + "/" + name; }
};

/// What policies are evaluated against.
struct PolicyWorld {
  std::vector<NetworkPolicy> policies;
  std::map<std::string, Labels> namespaces;  // name -> labels, kNamespaceNameLabel included
  std::vector<PolicyPod> pods;
};

/// Each namespace's labels with kNamespaceNameLabel added.
std::map<std::string, Labels> namespace_labels(const std::vector<Namespace>& namespaces);
/// The world of a planned lab: its policies, namespaces and every pod.
PolicyWorld policy_world(const Plan& plan);

bool selector_matches(const LabelSelector& selector, const Labels& labels);
/// As kubectl prints a selector: "app=web,pod in (b,c),!debug"; "" for an
/// empty one.
std::string selector_str(const LabelSelector& selector);

/// Whether `policy` selects `pod`: same namespace, its podSelector matches,
/// and the pod has a network of its own (hostNetwork pods are never isolated).
bool policy_selects(const NetworkPolicy& policy, const PolicyPod& pod);
/// Whether `peer`, in a rule of a policy of namespace `policy_namespace`,
/// selects `pod` by its selectors (an ipBlock peer selects no pod; no peer
/// selects a hostNetwork pod, whose address is its node's).
bool peer_selects(const PolicyWorld& world, const std::string& policy_namespace,
                  const PolicyPeer& peer, const PolicyPod& pod);
/// Whether `port` of a rule allows `protocol`/`number` toward `destination`
/// (a named port is looked up in its containers; none without a pod).
bool port_allows(const PolicyPort& port, Protocol protocol, int number,
                 const PolicyPod* destination);

/// One end of a connection: a pod, or an address that is no pod's (a
/// node's, a host's); `node` names the node an address or a hostNetwork pod
/// belongs to.
struct PolicyEnd {
  const PolicyPod* pod = nullptr;
  Ipv4 ip;
  std::string node;
};
PolicyEnd policy_end(const PolicyPod& pod);

/// What Kubernetes' semantics give a new connection.
struct PolicyVerdict {
  bool allowed = true;
  /// Policy keys that isolate the source for egress and the destination
  /// for ingress, and among them those with a rule that allows it.
  std::vector<std::string> egress_isolated_by, ingress_isolated_by;
  std::vector<std::string> egress_allowed_by, ingress_allowed_by;
};
/// A connection from `from` to `to` on `protocol`/`port`, `through_service`
/// when it was DNATed from a Service's address. A node's own traffic to its
/// pods is always allowed, and so is a pod's to its own address, which
/// never leaves the pod; through a Service it leaves the pod and is
/// hairpinned by its node, where the policies hold as for any other pod.
PolicyVerdict policy_verdict(const PolicyWorld& world, const PolicyEnd& from, const PolicyEnd& to,
                             Protocol protocol, int port, bool through_service = false);

/// The chain of `policy` for `type`: "policy-NS/NAME-ingress".
std::string policy_chain(const NetworkPolicy& policy, PolicyType type);

/// The fixed part of a node's table: the table, its base chains and maps.
std::string policy_nft_base(const std::string& lab, const std::string& node);
/// Every other chain, set and element of each of `nodes`' tables, by node
/// name; a node gets the chains of only the policies that select its pods.
std::map<std::string, NftPiece> policy_nft(const PolicyWorld& world,
                                           const std::vector<std::string>& nodes);

}  // namespace knl
