#pragma once
// kube-proxy: services + endpoints -> one node's NAT rules, in the shapes
// kube-proxy itself writes, so that what a trainee lists in a lab is what a
// real cluster shows.
//
// nftables mode follows pkg/proxy/nftables (table "ip kube-proxy", maps
// service-ips / service-nodeports / no-endpoint-*, chains service-, local-,
// external-, firewall-, endpoint-, affinity sets). Each service is rendered
// on its own so a sync touches only the services whose endpoints changed.
//
// iptables mode follows pkg/proxy/iptables (KUBE-SERVICES, KUBE-SVC-…,
// KUBE-SEP-…, KUBE-EXT-…, KUBE-SVL-…, KUBE-FW-…, KUBE-NODEPORTS,
// KUBE-MARK-MASQ, KUBE-POSTROUTING), as iptables-restore input.

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "knetlab/plan/nft.h"
#include "knetlab/plan/plan.h"

namespace knl {

/// The node a ruleset is for.
struct ProxyNode {
  std::string name;
  Ipv4 ip;             // the node IP: NodePorts answer on it
  Ipv4Net pod_subnet;  // kube-proxy's --cluster-cidr
  Ipv4Net service_subnet;
  Ipv4Net node_pods;  // the node's own pod CIDR: NftPicker::map masquerades hairpins in it
  NftPicker picker = NftPicker::vmap;  // Network::nftables_picker
  /// nftables tables the services are spread over: `kube-proxy`, then
  /// `kube-proxy-1` … (see nft_tables_for()).
  int shards = 1;
};

/// `node` of `plan`, as kube-proxy's rules see it, its tables sized for
/// `endpoints` (the lab's when its kube-proxy starts; they stay).
ProxyNode proxy_node(const Plan& plan, const NodePlan& node, const EndpointMap& endpoints);

/// Whether nftables mode gives `s` kube-proxy's endpoint chains: always but
/// with NftPicker::map, which keeps them only for session affinity (its sets
/// are per endpoint).
inline bool nft_endpoint_chains(NftPicker picker, const ServicePlan& s) {
  return picker != NftPicker::map || s.affinity;
}

/// How many tables a lab of `services` services and about `chains` service
/// and endpoint chains uses: one (kube-proxy's own shape) up to 1000 services
/// and 10000 chains, then one per 1000 services or 10000 chains, whichever
/// needs more. Each commit walks every chain of the ruleset and revalidates
/// every chain of the tables it changed that a base chain reaches, so a
/// one-service change costs what its table holds. The further tables hold
/// only the services' NAT (see nft_base()).
int nft_tables_for(size_t services, size_t chains);
/// "ip kube-proxy" for shard 0, "ip kube-proxy-K" for shard K.
std::string nft_table(int shard);

// --- names and hashes --------------------------------------------------------

/// kube-proxy nftables: first 8 characters of base32(sha256(name)), "-", name.
std::string nft_hash_name(const std::string& name);
/// "ns/svc/tcp/port" for a service port.
std::string nft_service_base(const ServicePlan& service, const ServicePortPlan& port);
/// kube-proxy iptables: first 16 characters of base32(sha256(text)).
std::string iptables_hash(const std::string& text);
/// "ns/svc:port", or "ns/svc" for an unnamed port (kube-proxy's ServicePortName).
std::string service_port_name(const ServicePlan& service, const ServicePortPlan& port);

// --- nftables ----------------------------------------------------------------

/// What `service` with `endpoints` needs on `node`; empty when kube-proxy
/// writes nothing for it (headless, ExternalName).
NftPiece nft_service(const ProxyNode& node, const ServicePlan& service,
                     const ServiceEndpoints& endpoints);

/// The tables with their base chains, maps and static rules (the first
/// sync). The first table is kube-proxy's whole table; its filter maps
/// (cluster-ips, no-endpoint-*, firewall-ips), its firewall chains and its
/// masquerading serve every service. A further table has only NAT base chains
/// at prerouting and output, which look packets up in its NAT maps: a new
/// connection passes one more base chain per table, where whole tables would
/// add their filter chains to every packet.
std::string nft_base(const ProxyNode& node);

/// What makes one node's base tables differ from another's: the elements of
/// these sets (its node IP in every nodeport-ips, its pods' hairpin pairs).
/// Every table of the node is a key.
NftSetElements nft_node_elements(const ProxyNode& node);

/// kube-proxy's NftTableOf: a service's filter maps and firewall chains
/// (cluster-ips, no-endpoint-*, firewall-*) are in the first table whichever
/// table holds its NAT chains.
std::string nft_table_of(const std::string& name, const std::string& table);

/// One transaction of a node's nftables sync, and the services it brings to
/// their new state once the kernel has taken it.
struct NftStep {
  std::string script;
  std::vector<std::pair<std::string, NftPiece>> services;  // by service key
  std::vector<std::string> stale_chains, stale_sets;       // flushed now, to delete later
  std::vector<std::string> created;                        // no longer stale
};

/// Bytes of chain blocks per transaction of a node's first load (see
/// nft_sync): the kernel's cost of a transaction grows faster than its size.
inline constexpr size_t kFirstLoadBytes = 100000;

/// The transactions that take `node`'s tables from `applied` (by service
/// key) to what the `changed` services need with `endpoints`. A first load
/// (of every service) begins with the base tables (nft_base), then goes
/// about kFirstLoadBytes of chains at a time, and ends with one transaction
/// of every set and map element and the chains of services with sets; only
/// that last step carries the services. A later sync is one transaction of
/// chain blocks, and none when nothing differs.
std::vector<NftStep> nft_sync(const ProxyNode& node, const std::map<std::string, NftPiece>& applied,
                              const std::vector<const ServicePlan*>& changed,
                              const EndpointMap& endpoints, bool first);

/// A node's first load done by copying the tables of another node, whose
/// services were loaded as `copied`, with this node's nft_node_elements():
/// a first step without script stands for the copy and records `copied`;
/// the steps after it bring the services whose rules differ on `node`. Only
/// a Local traffic policy makes them differ, so only those services are
/// rendered again.
std::vector<NftStep> nft_after_copy(const ProxyNode& node,
                                    const std::map<std::string, NftPiece>& copied,
                                    const std::vector<const ServicePlan*>& services,
                                    const EndpointMap& endpoints);

// --- iptables ----------------------------------------------------------------

/// One service's part of a node's iptables rules.
struct IptablesService {
  std::vector<std::string> chains;  // its KUBE-SVC/SVL/SEP/EXT/FW chains (nat)
  // Its rules in the shared chains (its own chains' rules are only written).
  std::string nat_services, nat_nodeports, filter_services, filter_external, filter_firewall;
};

/// What a node's last iptables sync left, for the next to write only what changed.
struct IptablesSynced {
  std::map<std::string, IptablesService> services;  // by service key
  std::map<std::string, std::string> shared;        // "TABLE CHAIN" -> the rules last written
};

/// iptables-restore input (--noflush) for the nat and filter tables, as
/// kube-proxy's partial sync writes it. The shared chains (KUBE-SERVICES,
/// KUBE-NODEPORTS, KUBE-FORWARD...) are declared (so flushed) and refilled
/// when their rules differ from `previous`'s; the per-service chains
/// (KUBE-SVC-, -SVL-, -SEP-, -EXT-, -FW-) only of the services whose keys are
/// in `written` (every service when it is null), the others' parts taken from
/// `previous` without being made again; chains of `previous` no service has
/// any more are deleted. Without `previous` (a first sync)
/// everything is written, with the jumps from the built-in chains. Fills
/// `now` with what the node holds once the text is loaded.
std::string iptables_ruleset(const ProxyNode& node, const std::vector<ServicePlan>& services,
                             const EndpointMap& endpoints, const IptablesSynced* previous,
                             IptablesSynced& now, const std::set<std::string>* written = nullptr);

// --- conntrack ---------------------------------------------------------------

/// What kube-proxy deletes from every node's conntrack table when a UDP
/// service's endpoints change, each as conntrack's argv: the entries toward
/// a removed endpoint (a client on a fixed port would keep talking to it),
/// and, when a service without endpoints got some, the entries that recorded
/// its rejection. Nothing for TCP and SCTP ports, whose connections end.
std::vector<std::vector<std::string>> udp_conntrack_deletions(const ServicePlan& service,
                                                              const ServiceEndpoints& before,
                                                              const ServiceEndpoints& after);

}  // namespace knl
