#pragma once
// Cluster DNS as Kubernetes runs it, decided without touching anything: the
// cluster's own objects (kube-system/coredns behind kube-system/kube-dns at
// .10 of serviceSubnet, and default/kubernetes at .1), the records the
// Kubernetes DNS specification defines for a lab, the DNS server's files
// (Knot DNS: its configuration and its zone), the knotc transaction that
// changes one set of records into another, and each pod's resolv.conf and
// /etc/hosts as the kubelet writes them.
//
// The lab's DNS holds one zone, the root: the cluster's names under
// dnsDomain, the reverse names under in-addr.arpa and the outside world's
// names (hosts' dnsNames) together, so that an ExternalName's CNAME comes
// with its target's address and any other name is NXDOMAIN at once, never
// forwarded out of the lab.

#include <map>
#include <string>
#include <vector>

#include "knetlab/plan/plan.h"

namespace knl {

inline constexpr const char* kDnsNamespace = "kube-system";
inline constexpr const char* kDnsDeployment = "coredns";
inline constexpr const char* kDnsService = "kube-dns";
inline constexpr const char* kDnsImage = "dns";
inline constexpr int kDnsTtl = 5;

/// Adds the cluster's own objects to `topology`, marked `system`: namespace
/// kube-system (when the file has none), the deployment kube-system/coredns
/// (2 replicas, k8s-app=kube-dns, image `dns`), the services
/// kube-system/kube-dns (.10; 53/UDP `dns`, 53/TCP `dns-tcp`) and
/// default/kubernetes (.1; 443/TCP `https` to the control-plane nodes' 6443);
/// and the ingress controller's (add_ingress_objects, plan/ingress.h).
void add_cluster_objects(Topology& topology);

/// Whether `ns` holds only the cluster's own objects (kube-system,
/// ingress-nginx): listings and policy tables leave it out unless asked.
bool is_cluster_namespace(const std::string& ns);

/// The node's resolv.conf in a lab: the cluster DNS is the only resolver a
/// lab has, named without a search path (dnsPolicy Default starts from it).
std::string node_resolv_conf(const Network& network);

/// A pod's /etc/resolv.conf by the kubelet's rules: ClusterFirst (and
/// ClusterFirstWithHostNet) give the cluster DNS, the search path
/// NS.svc.ZONE svc.ZONE ZONE and ndots:5; a hostNetwork pod with
/// ClusterFirst, and Default, get the node's; None gets dnsConfig alone.
/// dnsConfig's nameservers and searches are appended (no repeats; at most 3
/// nameservers and 32 searches) and its options replace those of the same name.
std::string pod_resolv_conf(const Network& network, const std::string& ns, const PodTemplate& spec);

/// A pod's /etc/hosts as the kubelet writes it: localhost, and the pod's
/// address with its hostname (HOSTNAME.SUBDOMAIN.NS.svc.ZONE first with a subdomain).
std::string pod_hosts_file(const Network& network, const PodPlan& pod);

enum class DnsType { a, cname, ptr, srv, txt };
template <>
struct EnumNames<DnsType> {
  static constexpr std::array table{std::pair{DnsType::a, std::string_view("A")},
                                    std::pair{DnsType::cname, std::string_view("CNAME")},
                                    std::pair{DnsType::ptr, std::string_view("PTR")},
                                    std::pair{DnsType::srv, std::string_view("SRV")},
                                    std::pair{DnsType::txt, std::string_view("TXT")}};
};

/// One resource record of the lab's zone (class IN, TTL kDnsTtl). Names are
/// absolute, with their final dot.
struct DnsRecord {
  std::string name;
  DnsType type = DnsType::a;
  std::string data;  // as in a zone file: an address, a name, "PRIO WEIGHT PORT TARGET", "\"TEXT\""
  auto operator<=>(const DnsRecord&) const = default;
};

/// The records of the lab's zone by what they come from: "service:NS/NAME",
/// "pod:NS/NAME" and "lab" (the zone's own, dns-version, the hosts' names).
/// A reconciler recomputes only the groups a change touches.
using DnsRecordSets = std::map<std::string, std::vector<DnsRecord>>;

/// Every group's records for `plan` with `endpoints` (the ready ones).
DnsRecordSets dns_records(const Plan& plan, const EndpointMap& endpoints);
/// One service's records: A (the ClusterIP, or one per ready endpoint of a
/// headless service with HOSTNAME.SVC.NS.svc.ZONE for each), SRV per named
/// port, PTR, or the CNAME of an ExternalName.
std::vector<DnsRecord> service_dns_records(const Plan& plan, const ServicePlan& service,
                                           const ServiceEndpoints& endpoints);
/// A pod's A-B-C-D.NS.pod.ZONE (none for a hostNetwork pod).
std::vector<DnsRecord> pod_dns_records(const Plan& plan, const PodPlan& pod);
/// The group name of a service's and of a pod's records.
std::string dns_group_of_service(const ServicePlan& service);
std::string dns_group_of_pod(const std::string& pod_key);

/// The endpoints every service has once all its pods are ready: what a DNS
/// pod's zone is first written with (a deploy waits for every pod to be ready).
EndpointMap endpoints_all_ready(const Plan& plan);

/// The zone file of the lab's root zone: SOA, NS and every record of `records`.
std::string dns_zone_file(const Plan& plan, const DnsRecordSets& records);
/// Where a DNS pod's files are: its zone, knotd's configuration, its control socket.
std::string dns_zone_path(const PodPlan& pod);
std::string dns_config_path(const PodPlan& pod);
std::string dns_socket_path(const PodPlan& pod);
/// knotd's configuration for DNS pod `pod`: UDP and TCP on port 53, its
/// files and database in the pod's folder, the zone file kept up to date
/// with every change (a restarted server reads it back).
std::string knot_config(const PodPlan& pod);

/// The knotc commands of one transaction that turn `from` into `to`
/// (records missing from `to` unset, new ones set); empty when equal.
std::string knotc_transaction(const std::vector<DnsRecord>& from, const std::vector<DnsRecord>& to);

/// The files of DNS pod `pod` in `plan` (configuration and zone), its
/// services' endpoints taken as all ready.
std::vector<FileSpec> dns_pod_files(const Plan& plan, const PodPlan& pod);

}  // namespace knl
