#pragma once
// The validated model of one topology file: plain values, immutable once
// parse_topology() returns it. Every field here has passed validation; later
// layers never re-check user input. Each object keeps where it was written
// (`where`) so that a later refusal can still name the file and line.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "knetlab/net/ipv4.h"
#include "knetlab/util/enum_names.h"

namespace knl {

// --- the closed sets of the file, each with the words that name its values ---

enum class Cni { vxlan, bgp, bridge, external };
enum class ProxyMode { nftables, iptables };
/// How nftables mode picks an endpoint: `vmap` is kube-proxy's own `numgen
/// random mod N vmap { … }`; `rules` is one `numgen` rule per endpoint
/// (iptables' probabilities) with no anonymous map, for labs of thousands of
/// services (the kernel's cost per anonymous map grows with their number);
/// `map` is not kube-proxy's shape: one `dnat … numgen … map` rule per
/// service and no endpoint chains, for big labs.
enum class NftPicker { vmap, rules, map };
enum class LoadBalancerMode { cloud, bgp };
enum class IpFamily { ipv4, ipv6, dual };
enum class BgpPeering { mesh, tor };
enum class NodeRole { control_plane, worker };
enum class ServiceType { cluster_ip, node_port, load_balancer, external_name };
enum class Protocol { tcp, udp, sctp };
enum class SessionAffinity { none, client_ip };
enum class DnsPolicy { cluster_first, cluster_first_with_host_net, default_, none };
enum class TrafficPolicy { cluster, local };
enum class SelectorOperator { in, not_in, exists, does_not_exist };
enum class PolicyType { ingress, egress };
enum class PathType { prefix, exact, implementation_specific };
enum class ListenerProtocol { http, https };
enum class RouteNamespaces { same, all };
enum class RoutePathType { exact, path_prefix, regular_expression };
enum class ValueMatchType { exact, regular_expression };
enum class RouteFilterType {
  request_header_modifier,
  response_header_modifier,
  request_redirect,
  url_rewrite,
  request_mirror
};
enum class PathModifierType { replace_full_path, replace_prefix_match };

template <>
struct EnumNames<Cni> {
  static constexpr std::array table{std::pair{Cni::vxlan, std::string_view("vxlan")},
                                    std::pair{Cni::bgp, std::string_view("bgp")},
                                    std::pair{Cni::bridge, std::string_view("bridge")},
                                    std::pair{Cni::external, std::string_view("external")}};
};
template <>
struct EnumNames<ProxyMode> {
  static constexpr std::array table{std::pair{ProxyMode::nftables, std::string_view("nftables")},
                                    std::pair{ProxyMode::iptables, std::string_view("iptables")}};
};
template <>
struct EnumNames<NftPicker> {
  static constexpr std::array table{std::pair{NftPicker::vmap, std::string_view("vmap")},
                                    std::pair{NftPicker::rules, std::string_view("rules")},
                                    std::pair{NftPicker::map, std::string_view("map")}};
};
template <>
struct EnumNames<LoadBalancerMode> {
  static constexpr std::array table{std::pair{LoadBalancerMode::cloud, std::string_view("cloud")},
                                    std::pair{LoadBalancerMode::bgp, std::string_view("bgp")}};
};
template <>
struct EnumNames<IpFamily> {
  static constexpr std::array table{std::pair{IpFamily::ipv4, std::string_view("ipv4")},
                                    std::pair{IpFamily::ipv6, std::string_view("ipv6")},
                                    std::pair{IpFamily::dual, std::string_view("dual")}};
};
template <>
struct EnumNames<BgpPeering> {
  static constexpr std::array table{std::pair{BgpPeering::mesh, std::string_view("mesh")},
                                    std::pair{BgpPeering::tor, std::string_view("tor")}};
};
template <>
struct EnumNames<NodeRole> {
  static constexpr std::array table{
      std::pair{NodeRole::control_plane, std::string_view("control-plane")},
      std::pair{NodeRole::worker, std::string_view("worker")}};
};
template <>
struct EnumNames<ServiceType> {
  static constexpr std::array table{
      std::pair{ServiceType::cluster_ip, std::string_view("ClusterIP")},
      std::pair{ServiceType::node_port, std::string_view("NodePort")},
      std::pair{ServiceType::load_balancer, std::string_view("LoadBalancer")},
      std::pair{ServiceType::external_name, std::string_view("ExternalName")}};
};
template <>
struct EnumNames<Protocol> {
  static constexpr std::array table{std::pair{Protocol::tcp, std::string_view("TCP")},
                                    std::pair{Protocol::udp, std::string_view("UDP")},
                                    std::pair{Protocol::sctp, std::string_view("SCTP")}};
};
template <>
struct EnumNames<SessionAffinity> {
  static constexpr std::array table{
      std::pair{SessionAffinity::none, std::string_view("None")},
      std::pair{SessionAffinity::client_ip, std::string_view("ClientIP")}};
};
template <>
struct EnumNames<DnsPolicy> {
  static constexpr std::array table{
      std::pair{DnsPolicy::cluster_first, std::string_view("ClusterFirst")},
      std::pair{DnsPolicy::cluster_first_with_host_net,
                std::string_view("ClusterFirstWithHostNet")},
      std::pair{DnsPolicy::default_, std::string_view("Default")},
      std::pair{DnsPolicy::none, std::string_view("None")}};
};
template <>
struct EnumNames<TrafficPolicy> {
  static constexpr std::array table{std::pair{TrafficPolicy::cluster, std::string_view("Cluster")},
                                    std::pair{TrafficPolicy::local, std::string_view("Local")}};
};

template <>
struct EnumNames<SelectorOperator> {
  static constexpr std::array table{
      std::pair{SelectorOperator::in, std::string_view("In")},
      std::pair{SelectorOperator::not_in, std::string_view("NotIn")},
      std::pair{SelectorOperator::exists, std::string_view("Exists")},
      std::pair{SelectorOperator::does_not_exist, std::string_view("DoesNotExist")}};
};
template <>
struct EnumNames<PolicyType> {
  static constexpr std::array table{std::pair{PolicyType::ingress, std::string_view("Ingress")},
                                    std::pair{PolicyType::egress, std::string_view("Egress")}};
};

template <>
struct EnumNames<PathType> {
  static constexpr std::array table{
      std::pair{PathType::prefix, std::string_view("Prefix")},
      std::pair{PathType::exact, std::string_view("Exact")},
      std::pair{PathType::implementation_specific, std::string_view("ImplementationSpecific")}};
};

template <>
struct EnumNames<ListenerProtocol> {
  static constexpr std::array table{std::pair{ListenerProtocol::http, std::string_view("HTTP")},
                                    std::pair{ListenerProtocol::https, std::string_view("HTTPS")}};
};
template <>
struct EnumNames<RouteNamespaces> {
  static constexpr std::array table{std::pair{RouteNamespaces::same, std::string_view("Same")},
                                    std::pair{RouteNamespaces::all, std::string_view("All")}};
};
template <>
struct EnumNames<RoutePathType> {
  static constexpr std::array table{
      std::pair{RoutePathType::exact, std::string_view("Exact")},
      std::pair{RoutePathType::path_prefix, std::string_view("PathPrefix")},
      std::pair{RoutePathType::regular_expression, std::string_view("RegularExpression")}};
};
template <>
struct EnumNames<ValueMatchType> {
  static constexpr std::array table{
      std::pair{ValueMatchType::exact, std::string_view("Exact")},
      std::pair{ValueMatchType::regular_expression, std::string_view("RegularExpression")}};
};
template <>
struct EnumNames<RouteFilterType> {
  static constexpr std::array table{
      std::pair{RouteFilterType::request_header_modifier,
                std::string_view("RequestHeaderModifier")},
      std::pair{RouteFilterType::response_header_modifier,
                std::string_view("ResponseHeaderModifier")},
      std::pair{RouteFilterType::request_redirect, std::string_view("RequestRedirect")},
      std::pair{RouteFilterType::url_rewrite, std::string_view("URLRewrite")},
      std::pair{RouteFilterType::request_mirror, std::string_view("RequestMirror")}};
};
template <>
struct EnumNames<PathModifierType> {
  static constexpr std::array table{
      std::pair{PathModifierType::replace_full_path, std::string_view("ReplaceFullPath")},
      std::pair{PathModifierType::replace_prefix_match, std::string_view("ReplacePrefixMatch")}};
};

/// "FILE:LINE:COLUMN" of a value in the topology file.
struct Where {
  std::string file;
  unsigned line = 0;
  unsigned column = 0;
  std::string str() const;
};

using Labels = std::map<std::string, std::string>;

/// The ASN of the spine (with racks) or of the LAN's router (without).
inline constexpr uint32_t kSpineAsn = 65000;
/// The largest node pod CIDR (smallest nodeMaskSize) NftPicker::map takes:
/// its hairpin set holds every address of the node's CIDR.
inline constexpr int kMapPickerMaskSize = 20;
/// Where the spine's point-to-point links to the racks' routers are numbered.
inline constexpr const char* kDefaultFabric = "10.255.255.0/24";

struct BgpConfig {
  uint32_t node_asn = 64512;
  BgpPeering peering = BgpPeering::mesh;
  Ipv4Net fabric_subnet = *Ipv4Net::parse(kDefaultFabric);
  bool operator==(const BgpConfig&) const = default;
};

/// How pod CIDRs reach the other nodes with cni = "external".
enum class CniRouting { host_gw, vxlan, none };
template <>
struct EnumNames<CniRouting> {
  static constexpr std::array table{std::pair{CniRouting::host_gw, std::string_view("host-gw")},
                                    std::pair{CniRouting::vxlan, std::string_view("vxlan")},
                                    std::pair{CniRouting::none, std::string_view("none")}};
};

/// [network.cniConfig]: the conflist as written (a template, rendered per
/// node) and where its plugins are.
struct CniConfig {
  std::string conflist;       // its path, relative to the topology file's folder
  std::string conflist_text;  // its text, read when the topology is
  std::vector<std::string> bin_dirs{"/usr/lib/cni"};
  CniRouting routing = CniRouting::host_gw;
  int timeout_seconds = 30;  // a plugin that runs longer is killed and fails
  Where where_conflist, where_bin_dir;
};

struct Network {
  Cni cni = Cni::vxlan;
  ProxyMode kube_proxy_mode = ProxyMode::nftables;
  NftPicker nftables_picker = NftPicker::vmap;
  Ipv4Net pod_subnet = *Ipv4Net::parse("10.244.0.0/16");
  Ipv4Net service_subnet = *Ipv4Net::parse("10.96.0.0/16");
  Ipv4Net node_subnet = *Ipv4Net::parse("172.18.0.0/24");
  int node_mask_size = 24;
  int node_port_min = 30000, node_port_max = 32767;
  Ipv4 lb_pool_first = *Ipv4::parse("172.18.0.200"), lb_pool_last = *Ipv4::parse("172.18.0.250");
  LoadBalancerMode load_balancer_mode = LoadBalancerMode::cloud;
  int mtu = 1500;
  std::string dns_domain = "cluster.local";
  IpFamily ip_family = IpFamily::ipv4;
  std::optional<BgpConfig> bgp;  // present when [network.bgp] was written
  std::optional<CniConfig> cni_config;
  Where where_cni, where_ip_family, where_bgp, where_cni_config, where_load_balancer_mode;
  /// [network.bgp] as written, or its defaults.
  BgpConfig bgp_or_default() const { return bgp.value_or(BgpConfig{}); }
};

struct Rack {
  std::string name;
  Ipv4Net subnet;
  uint32_t asn = 0;
  Where where;
};

struct Node {
  std::string name;
  NodeRole role = NodeRole::worker;
  std::string rack;  // empty without racks
  std::optional<Ipv4Net> pod_cidr;
  Where where;
};

struct Host {
  std::string name;
  std::string rack;
  /// Its names in the outside world's DNS, which the lab's DNS answers.
  std::vector<std::string> dns_names;
  Where where;
};

struct Namespace {
  std::string name;
  Labels labels;
  Where where;
};

struct ContainerPort {
  std::string name;
  int container_port = 0;
  Protocol protocol = Protocol::tcp;
  int host_port = 0;  // 0: none; cni = "external" only (the portmap plugin)
  bool operator==(const ContainerPort&) const = default;
};

struct Readiness {
  std::string http_get;  // a path; empty (and no dns_name) means a TCP connect to `port`
  int port = 0;
  /// A name that must be answered over UDP on `port`: the cluster DNS's own
  /// probe (a file cannot ask for it).
  std::string dns_name;
};

struct Container {
  std::string name;
  std::string image;                 // a folder under images/, or empty with `command`
  std::vector<std::string> command;  // a program of the machine instead of an image
  std::vector<std::string> args;
  std::vector<ContainerPort> ports;
  std::optional<Readiness> readiness;
  Where where, where_image;
};

/// A resolver option of resolv.conf: `name` or `name:value`.
struct DnsOption {
  std::string name;
  std::optional<std::string> value;
  bool operator==(const DnsOption&) const = default;
};

/// A pod's dnsConfig, merged into what its dnsPolicy gives (None: all of it).
struct DnsConfig {
  std::vector<Ipv4> nameservers;
  std::vector<std::string> searches;
  std::vector<DnsOption> options;
  bool operator==(const DnsConfig&) const = default;
};

/// The pod annotations the bandwidth CNI plugin reads (through runtimeConfig).
inline constexpr const char* kIngressBandwidth = "kubernetes.io/ingress-bandwidth";
inline constexpr const char* kEgressBandwidth = "kubernetes.io/egress-bandwidth";
/// A Kubernetes quantity of bits per second ("10M", "1Gi", "500k", "1000"),
/// as kubelet reads those annotations; nullopt when it is not one or is 0.
std::optional<int64_t> bandwidth_bits(std::string_view quantity);

struct PodTemplate {
  Labels labels;
  Labels annotations;  // as written
  bool host_network = false;
  std::string hostname;   // a pod's; a deployment's pods take their own names with a subdomain
  std::string subdomain;  // with a headless service of that name: HOSTNAME.SUBDOMAIN.NS.svc.ZONE
  DnsPolicy dns_policy = DnsPolicy::cluster_first;
  std::optional<DnsConfig> dns_config;
  std::vector<Container> containers;
};

struct Pod {
  std::string name;
  std::string namespace_ = "default";
  std::string node;  // validated: names a node; empty: the scheduler picks one
  PodTemplate spec;
  std::string deployment;  // the owner, empty for a bare pod (the plan's replicas name theirs)
  Where where;
};

struct Deployment {
  std::string name;
  std::string namespace_ = "default";
  int replicas = 1;
  std::vector<std::string> nodes;  // the nodes its pods may go to; empty: every node
  PodTemplate spec;
  bool system = false;  // one of the cluster's own (plan/dns.h): its pods are placed last
  Where where;
};

struct ServicePort {
  std::string name;
  int port = 0;
  int target_port = 0;           // 0 when target_port_name is used
  std::string target_port_name;  // a container port's name
  std::optional<int> node_port;  // fixed by the user
  Protocol protocol = Protocol::tcp;
};

struct Service {
  std::string name;
  std::string namespace_ = "default";
  ServiceType type = ServiceType::cluster_ip;
  Labels selector;
  std::string cluster_ip;  // "", "None" or an address
  SessionAffinity session_affinity = SessionAffinity::none;
  TrafficPolicy external_traffic_policy = TrafficPolicy::cluster;
  TrafficPolicy internal_traffic_policy = TrafficPolicy::cluster;
  std::string external_name;
  std::vector<Ipv4Net> load_balancer_source_ranges;
  std::vector<ServicePort> ports;
  bool system = false;  // one of the cluster's own (plan/dns.h), not the file's
  Where where;
  std::string key() const { return namespace_ + "/" + name; }
};

/// One requirement of a label selector's matchExpressions.
struct SelectorRequirement {
  std::string key;
  SelectorOperator op = SelectorOperator::in;
  std::vector<std::string> values;  // In, NotIn: at least one; Exists, DoesNotExist: none
  bool operator==(const SelectorRequirement&) const = default;
};

/// A Kubernetes label selector: every matchLabels pair and every requirement
/// must hold, so an empty one selects everything (plan/policy.h matches it).
struct LabelSelector {
  Labels match_labels;
  std::vector<SelectorRequirement> match_expressions;
  bool operator==(const LabelSelector&) const = default;
};

struct IpBlock {
  Ipv4Net cidr;
  std::vector<Ipv4Net> except;  // each inside cidr
  bool operator==(const IpBlock&) const = default;
};

/// One entry of a rule's from/to: pods by selectors (a podSelector alone
/// means the policy's namespace; both together mean both must match), or an
/// ipBlock, never both.
struct PolicyPeer {
  std::optional<LabelSelector> pod_selector, namespace_selector;
  std::optional<IpBlock> ip_block;
  bool operator==(const PolicyPeer&) const = default;
};

/// One entry of a rule's ports: every port of `protocol` (port 0 and no
/// name), one port, a range (`end_port`), or a container port by name,
/// resolved on each destination pod.
struct PolicyPort {
  Protocol protocol = Protocol::tcp;
  int port = 0;
  std::string port_name;
  int end_port = 0;  // 0: no range
  bool operator==(const PolicyPort&) const = default;
};

/// A rule allows traffic from/to any of `peers` (all when empty) on any of
/// `ports` (all when empty).
struct PolicyRule {
  std::vector<PolicyPeer> peers;
  std::vector<PolicyPort> ports;
  Where where;
  bool operator==(const PolicyRule& o) const { return peers == o.peers && ports == o.ports; }
};

struct NetworkPolicy {
  std::string name;
  std::string namespace_ = "default";
  LabelSelector pod_selector;
  /// policyTypes as Kubernetes defaults them: Ingress always, Egress when
  /// egress rules are written.
  bool ingress = true, egress = false;
  std::vector<PolicyRule> ingress_rules, egress_rules;
  Where where;
  std::string key() const { return namespace_ + "/" + name; }
  bool affects(PolicyType type) const { return type == PolicyType::ingress ? ingress : egress; }
  const std::vector<PolicyRule>& rules(PolicyType type) const {
    return type == PolicyType::ingress ? ingress_rules : egress_rules;
  }
  bool operator==(const NetworkPolicy& o) const {
    return name == o.name && namespace_ == o.namespace_ && pod_selector == o.pod_selector &&
           ingress == o.ingress && egress == o.egress && ingress_rules == o.ingress_rules &&
           egress_rules == o.egress_rules;
  }
};

/// A service port an ingress sends to: by number, or by the port's name.
struct IngressBackend {
  std::string service;
  int port = 0;
  std::string port_name;
  /// "SERVICE:PORT", the port by its name when it is named.
  std::string str() const {
    return service + ":" + (port_name.empty() ? std::to_string(port) : port_name);
  }
  bool operator==(const IngressBackend&) const = default;
};

struct IngressPath {
  std::string path = "/";
  PathType type = PathType::prefix;
  IngressBackend backend;
  bool operator==(const IngressPath&) const = default;
};

struct IngressRule {
  std::string host;  // empty: every host; "*.example.com": one label
  std::vector<IngressPath> paths;
  bool operator==(const IngressRule&) const = default;
};

/// The nginx.ingress.kubernetes.io/ annotations the controller serves, read.
struct IngressAnnotations {
  std::string rewrite_target;  // with $1… of the path's regex
  bool use_regex = false;
  bool ssl_redirect = true;  // for TLS hosts
  bool force_ssl_redirect = false;
  bool canary = false;
  int canary_weight = 0;  // percent
  std::string canary_by_header, canary_by_header_value;
  bool affinity_cookie = false;
  std::string session_cookie_name = "INGRESSCOOKIE";
  std::vector<Ipv4Net> whitelist;  // empty: everyone
  bool operator==(const IngressAnnotations&) const = default;
};

/// An Ingress. The controller (plan/ingress.h) serves those of class
/// "nginx"; others are kept and listed.
struct Ingress {
  std::string name, namespace_ = "default";
  std::string class_name = "nginx";
  Labels annotations;  // as written
  IngressAnnotations options;
  std::vector<std::vector<std::string>> tls;  // each entry's hosts
  std::optional<IngressBackend> default_backend;
  std::vector<IngressRule> rules;
  Where where;
  std::string key() const { return namespace_ + "/" + name; }
  bool served() const { return class_name == "nginx"; }
  bool operator==(const Ingress& o) const {
    return name == o.name && namespace_ == o.namespace_ && class_name == o.class_name &&
           annotations == o.annotations && options == o.options && tls == o.tls &&
           default_backend == o.default_backend && rules == o.rules;
  }
};

/// Something a file says that Kubernetes accepts but that does not do what
/// it seems to: printed at its place by validate, deploy and apply.
struct Warning {
  Where where;
  std::string message;
};

/// A Gateway's listener: a port (shared by listeners of different
/// hostnames), its protocol and the hostname it serves (empty: any).
struct Listener {
  std::string name;
  int port = 80;
  ListenerProtocol protocol = ListenerProtocol::http;
  std::string hostname;  // "*.example.com" matches any name ending in ".example.com"
  bool operator==(const Listener&) const = default;
};

/// A Gateway. Those of class "knetlab" get a data plane (plan/gateway.h);
/// others are kept and listed.
struct Gateway {
  std::string name, namespace_ = "default";
  std::string class_name = "knetlab";
  std::vector<Listener> listeners;
  RouteNamespaces allowed_routes = RouteNamespaces::same;
  Where where;
  std::string key() const { return namespace_ + "/" + name; }
  bool served() const { return class_name == "knetlab"; }
  bool operator==(const Gateway& o) const {
    return name == o.name && namespace_ == o.namespace_ && class_name == o.class_name &&
           listeners == o.listeners && allowed_routes == o.allowed_routes;
  }
};

/// An HTTPRoute's parentRef: a Gateway, and one of its listeners when
/// `section` is set.
struct ParentRef {
  std::string name, namespace_, section;
  bool operator==(const ParentRef&) const = default;
};

/// A header or query parameter match.
struct ValueMatch {
  std::string name, value;
  ValueMatchType type = ValueMatchType::exact;
  bool operator==(const ValueMatch&) const = default;
};

struct RouteMatch {
  RoutePathType path_type = RoutePathType::path_prefix;
  std::string path = "/";
  std::vector<ValueMatch> headers, query_params;
  std::string method;  // empty: any
  bool operator==(const RouteMatch&) const = default;
};

struct HeaderValue {
  std::string name, value;
  bool operator==(const HeaderValue&) const = default;
};

/// A RequestHeaderModifier's or ResponseHeaderModifier's changes.
struct HeaderChanges {
  std::vector<HeaderValue> set, add;
  std::vector<std::string> remove;
  bool operator==(const HeaderChanges&) const = default;
};

struct PathModifier {
  PathModifierType type = PathModifierType::replace_full_path;
  std::string value;
  bool operator==(const PathModifier&) const = default;
};

/// A service port a route sends to, in the route's namespace.
struct BackendRef {
  std::string name;
  int port = 0;
  int weight = 1;
  bool operator==(const BackendRef&) const = default;
};

/// One filter of a rule; the fields its type uses are set.
struct RouteFilter {
  RouteFilterType type = RouteFilterType::request_header_modifier;
  HeaderChanges headers;             // the header modifiers
  std::string scheme, hostname;      // RequestRedirect; hostname also URLRewrite
  int port = 0;                      // RequestRedirect; 0: as the gateway API defaults it
  int status_code = 302;             // RequestRedirect
  std::optional<PathModifier> path;  // RequestRedirect, URLRewrite
  std::optional<BackendRef> mirror;  // RequestMirror
  bool operator==(const RouteFilter&) const = default;
};

struct RouteRule {
  std::vector<RouteMatch> matches;  // never empty: a rule without matches has PathPrefix "/"
  std::vector<RouteFilter> filters;
  std::vector<BackendRef> backends;
  bool operator==(const RouteRule&) const = default;
};

struct HttpRoute {
  std::string name, namespace_ = "default";
  std::vector<ParentRef> parents;
  std::vector<std::string> hostnames;  // empty: its listeners' hostnames
  std::vector<RouteRule> rules;
  Where where;
  std::string key() const { return namespace_ + "/" + name; }
  bool operator==(const HttpRoute& o) const {
    return name == o.name && namespace_ == o.namespace_ && parents == o.parents &&
           hostnames == o.hostnames && rules == o.rules;
  }
};

struct Topology {
  std::string file;
  std::string name;
  Network network;
  std::vector<Rack> racks;
  std::vector<Node> nodes;
  std::vector<Host> hosts;
  std::vector<Namespace> namespaces;  // always holds "default" first
  std::vector<Deployment> deployments;
  std::vector<Pod> pods;  // bare pods: a deployment's are made and placed by the plan
  std::vector<Service> services;
  std::vector<Ingress> ingresses;
  std::vector<Gateway> gateways;
  std::vector<HttpRoute> http_routes;
  std::vector<NetworkPolicy> network_policies;
  std::vector<Warning> warnings;
};

}  // namespace knl
