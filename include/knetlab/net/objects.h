#pragma once
// The kernel objects a lab is made of, as values: what the planner asks for
// and what the kernel layer creates. Neutral ground, so that neither layer
// depends on the other.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "knetlab/net/ipv4.h"

namespace knl {

enum class NetnsRole { lan, node, host, pod, router };

struct NetnsSpec {
  std::string name;  // under /run/netns
  NetnsRole role;
  bool operator==(const NetnsSpec&) const = default;
};

enum class LinkKind { bridge, veth, vxlan };

/// A link created by a netlink socket inside `netns`. A veth's peer is created
/// directly in `peer_netns` (never moved afterwards).
struct LinkSpec {
  LinkKind kind;
  std::string netns, name;
  int mtu = 1500;
  std::string mac;       // empty: the kernel picks
  std::string master;    // a bridge in `netns`, or empty
  bool hairpin = false;  // the bridge may send a frame back out this port
  std::string peer_netns, peer_name;
  // vxlan
  uint32_t vni = 0;
  Ipv4 local;
  int port = 0;
  std::string underlay;  // the device the tunnel leaves by
  bool operator==(const LinkSpec&) const = default;
};

struct AddressSpec {
  std::string netns, dev;
  Ipv4 ip;
  int prefix = 32;
  bool operator==(const AddressSpec&) const = default;
};

struct RouteSpec {
  std::string netns;
  Ipv4Net dst;  // 0.0.0.0/0 for the default route
  Ipv4 via;
  std::string dev;
  bool onlink = false;
  /// Several gateways on `dev` (ECMP) instead of `via`.
  std::vector<Ipv4> nexthops;
  bool replace = false;  // replace a route to the same destination
  bool operator==(const RouteSpec&) const = default;
};

struct NeighbourSpec {
  std::string netns, dev;
  Ipv4 ip;
  std::string mac;
  bool operator==(const NeighbourSpec&) const = default;
};

/// A bridge forwarding entry on a vxlan device: frames for `mac` go to `dst`.
struct FdbSpec {
  std::string netns, dev, mac;
  Ipv4 dst;
  bool operator==(const FdbSpec&) const = default;
};

struct SysctlSpec {
  std::string netns, key, value;  // key as under /proc/sys, e.g. net/ipv4/ip_forward
  /// A key of a module that may not be loaded (br_netfilter's): skipped
  /// when the namespace has no such key.
  bool if_present = false;
  bool operator==(const SysctlSpec&) const = default;
};

struct FileSpec {
  std::string path, content;
  bool operator==(const FileSpec&) const = default;
};

/// A route of a namespace's main table as the kernel reports it.
struct KernelRoute {
  Ipv4Net dst;
  int protocol = 0;  // RTPROT_*: 186 is bgp
  int nexthops = 0;
};

/// nftables set elements that differ between namespaces, by table name
/// (without its family), then by set: each key the concatenation of its IPv4
/// fields.
using NftSetElements = std::map<std::string, std::map<std::string, std::vector<std::vector<Ipv4>>>>;

}  // namespace knl
