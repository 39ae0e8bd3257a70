// rtnetlink through libnl-route-3. One socket per namespace, opened inside it
// once and kept, so no thread of ours ever switches namespaces to talk to it.

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sys/ioctl.h>

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "knetlab/kernel/kernel.h"
#include "knetlab/kernel/netns.h"
#include "knetlab/kernel/nftables.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

// One move-only owner per libnl object type, released exactly once.
template <typename T, void (*Release)(T*)>
struct Releaser {
  void operator()(T* p) const { Release(p); }
};
using Socket = std::unique_ptr<nl_sock, Releaser<nl_sock, nl_socket_free>>;
using Link = std::unique_ptr<rtnl_link, Releaser<rtnl_link, rtnl_link_put>>;
using Addr = std::unique_ptr<nl_addr, Releaser<nl_addr, nl_addr_put>>;
using Address = std::unique_ptr<rtnl_addr, Releaser<rtnl_addr, rtnl_addr_put>>;
using Route = std::unique_ptr<rtnl_route, Releaser<rtnl_route, rtnl_route_put>>;
using Neigh = std::unique_ptr<rtnl_neigh, Releaser<rtnl_neigh, rtnl_neigh_put>>;

SystemError nl_failure(const std::string& op, const std::string& object, const std::string& netns,
                       int err) {
  // libnl reports NLE_* codes, not errno values.
  return SystemError(fmt::format("{} {} in netns {}: {} (libnl error {})", op, object, netns,
                                 nl_geterror(err), -err),
                     -err);
}

Addr ipv4_addr(Ipv4 ip, int prefix) {
  uint32_t be = htonl(ip.value);
  Addr a(nl_addr_build(AF_INET, &be, sizeof be));
  nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

Addr mac_addr(const std::string& mac) {
  nl_addr* a = nullptr;
  if (int err = nl_addr_parse(mac.c_str(), AF_LLC, &a); err < 0)
    throw SystemError(fmt::format("parse MAC address {}: {}", mac, nl_geterror(err)), -err);
  return Addr(a);
}

// A socket for requests whose answers are acks or errors, all far smaller
// than libnl's buffer: each is read with one recvmsg, instead of a look at
// its size first (MSG_PEEK) and a second read.
Socket request_socket() {
  Socket sock(nl_socket_alloc());
  if (!sock) throw SystemError("allocate rtnetlink socket: out of memory", ENOMEM);
  nl_socket_disable_msg_peek(sock.get());
  return sock;
}

// A change that brings interface `ifindex` up.
Link up_change(int ifindex) {
  Link change(rtnl_link_alloc());
  rtnl_link_set_ifindex(change.get(), ifindex);
  rtnl_link_set_flags(change.get(), IFF_UP);
  return change;
}

// The IPv4 routes of `netns`'s main table, from a socket of their own.
std::vector<KernelRoute> main_routes(const std::string& netns) {
  Fd fd = open_netns(netns);
  Socket sock(nl_socket_alloc());
  int err = 0;
  run_in_netns(fd.get(), [&] { err = nl_connect(sock.get(), NETLINK_ROUTE); });
  if (err < 0) throw nl_failure("open rtnetlink socket", "", netns, err);
  nl_cache* raw = nullptr;
  if (err = rtnl_route_alloc_cache(sock.get(), AF_INET, 0, &raw); err < 0)
    throw nl_failure("list routes", "", netns, err);
  std::unique_ptr<nl_cache, Releaser<nl_cache, nl_cache_free>> cache(raw);
  std::vector<KernelRoute> routes;
  for (auto* obj = nl_cache_get_first(cache.get()); obj; obj = nl_cache_get_next(obj)) {
    auto* route = reinterpret_cast<rtnl_route*>(obj);
    if (rtnl_route_get_table(route) != RT_TABLE_MAIN) continue;
    auto* dst = rtnl_route_get_dst(route);
    uint32_t be = 0;
    if (nl_addr_get_len(dst) == sizeof be)
      std::memcpy(&be, nl_addr_get_binary_addr(dst), sizeof be);
    routes.push_back({Ipv4Net{Ipv4{ntohl(be)}, static_cast<int>(nl_addr_get_prefixlen(dst))},
                      rtnl_route_get_protocol(route), rtnl_route_get_nnexthops(route)});
  }
  return routes;
}

class NetlinkKernel final : public Kernel {
 public:
  void create_netns(const std::vector<NetnsSpec>& namespaces, std::vector<bool>& created,
                    const std::function<void(size_t)>& inside) override {
    std::vector<std::string> names;
    for (const auto& ns : namespaces) names.push_back(ns.name);
    create_named_netns(
        names,
        [&](size_t i) {
          // The namespace's handles are opened in passing, by the thread
          // inside it, for the first thread that uses them to take.
          Namespace made;
          made.fd.reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
          if (!made.fd) throw errno_error("open network namespace", names[i], "", errno);
          made.sock = request_socket();
          if (int err = nl_connect(made.sock.get(), NETLINK_ROUTE); err < 0)
            throw nl_failure("open rtnetlink socket", "", names[i], err);
          // A new namespace's loopback is always interface 1.
          auto lo = up_change(1);
          if (int err = rtnl_link_change(made.sock.get(), lo.get(), lo.get(), 0); err < 0)
            throw nl_failure("set up link", "lo", names[i], err);
          // A pod's eth0 gets no IPv6 link-local address (the lab is IPv4):
          // its duplicate address detection and MLD reports would be
          // flooded to every port of its node's bridge. Set as the
          // namespace's default before eth0 exists: set on eth0 with the
          // request that brings it up, the kernel applies it after the up
          // flag, too late when eth0 was just made.
          if (namespaces[i].role == NetnsRole::pod) {
            constexpr std::string_view kNone = "1";
            Fd mode(::open("/proc/sys/net/ipv6/conf/default/addr_gen_mode", O_WRONLY | O_CLOEXEC));
            if (!mode || ::write(mode.get(), kNone.data(), kNone.size()) < 0)
              throw errno_error("set sysctl", "net.ipv6.conf.default.addr_gen_mode=1", names[i],
                                errno);
          }
          std::lock_guard lock(mutex_);
          sockets_.insert_or_assign({std::thread::id{}, names[i]}, std::move(made));
        },
        inside, created);
  }

  void delete_netns(const std::string& name) override {
    forget(name);
    delete_named_netns(name);
  }

  void add_link(const LinkSpec& spec) override {
    auto& ns = in(spec.netns);
    Link link;
    std::string object = spec.name;
    switch (spec.kind) {
      case LinkKind::bridge:
        link.reset(rtnl_link_alloc());
        rtnl_link_set_type(link.get(), "bridge");
        object = "bridge " + spec.name;
        break;
      case LinkKind::veth: {
        link.reset(rtnl_link_veth_alloc());
        Link peer(rtnl_link_veth_get_peer(link.get()));
        auto& peer_ns = in(spec.peer_netns);
        rtnl_link_set_name(peer.get(), spec.peer_name.c_str());
        rtnl_link_set_mtu(peer.get(), static_cast<unsigned>(spec.mtu));
        rtnl_link_set_ns_fd(peer.get(), peer_ns.fd.get());
        // One queue each way, asked for: a veth otherwise gets one per CPU
        // and is cut to one once registered, which waits for an expedited
        // RCU grace period while holding the RTNL lock (each end, each pair).
        for (auto* end : {link.get(), peer.get()}) {
          rtnl_link_set_num_tx_queues(end, 1);
          rtnl_link_set_num_rx_queues(end, 1);
        }
        object = fmt::format("veth {} (peer {} in netns {})", spec.name, spec.peer_name,
                             spec.peer_netns);
        break;
      }
      case LinkKind::vxlan:
        link.reset(rtnl_link_vxlan_alloc());
        rtnl_link_vxlan_set_id(link.get(), spec.vni);
        rtnl_link_vxlan_set_local(link.get(), ipv4_addr(spec.local, 32).get());
        rtnl_link_vxlan_set_port(link.get(), static_cast<uint32_t>(spec.port));
        rtnl_link_vxlan_set_learning(link.get(), 0);
        rtnl_link_vxlan_set_link(link.get(), index(spec.netns, spec.underlay));
        object = "vxlan " + spec.name;
        break;
    }
    rtnl_link_set_name(link.get(), spec.name.c_str());
    rtnl_link_set_mtu(link.get(), static_cast<unsigned>(spec.mtu));
    if (!spec.mac.empty()) rtnl_link_set_addr(link.get(), mac_addr(spec.mac).get());
    if (!spec.master.empty())
      rtnl_link_set_master(link.get(), static_cast<int>(index(spec.netns, spec.master)));
    rtnl_link_set_flags(link.get(), IFF_UP);
    if (int err = rtnl_link_add(ns.sock.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
      throw nl_failure("create link", object, spec.netns, err);
    // The kernel refuses to bring a veth's peer up while creating the pair.
    if (spec.kind == LinkKind::veth) {
      auto& peer_ns = in(spec.peer_netns);
      auto up = up_change(static_cast<int>(index(spec.peer_netns, spec.peer_name)));
      if (int err = rtnl_link_change(peer_ns.sock.get(), up.get(), up.get(), 0); err < 0)
        throw nl_failure("set up link", spec.peer_name, spec.peer_netns, err);
    }
    // A pod reaching itself through a service leaves and re-enters by its
    // own port (flannel's bridge plugin sets hairpinMode too).
    if (spec.hairpin) {
      Link port(rtnl_link_alloc());
      rtnl_link_set_ifindex(port.get(), static_cast<int>(index(spec.netns, spec.name)));
      rtnl_link_set_family(port.get(), AF_BRIDGE);
      rtnl_link_bridge_set_flags(port.get(), RTNL_BRIDGE_HAIRPIN_MODE);
      if (int err = rtnl_link_change(ns.sock.get(), port.get(), port.get(), 0); err < 0)
        throw nl_failure("set hairpin mode on bridge port", spec.name, spec.netns, err);
    }
  }

  void add_address(const AddressSpec& spec) override {
    auto& ns = in(spec.netns);
    Address addr(rtnl_addr_alloc());
    rtnl_addr_set_ifindex(addr.get(), static_cast<int>(index(spec.netns, spec.dev)));
    rtnl_addr_set_local(addr.get(), ipv4_addr(spec.ip, spec.prefix).get());
    if (int err = rtnl_addr_add(ns.sock.get(), addr.get(), 0); err < 0)
      throw nl_failure("add address",
                       fmt::format("{}/{} on {}", spec.ip.str(), spec.prefix, spec.dev), spec.netns,
                       err);
  }

  void add_route(const RouteSpec& spec) override {
    auto& ns = in(spec.netns);
    Route route(rtnl_route_alloc());
    rtnl_route_set_family(route.get(), AF_INET);
    rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
    rtnl_route_set_dst(route.get(), ipv4_addr(spec.dst.network, spec.dst.prefix).get());
    auto gateways = spec.nexthops.empty() ? std::vector<Ipv4>{spec.via} : spec.nexthops;
    for (const auto& gateway : gateways) {
      rtnl_nexthop* nh = rtnl_route_nh_alloc();
      rtnl_route_nh_set_ifindex(nh, static_cast<int>(index(spec.netns, spec.dev)));
      rtnl_route_nh_set_gateway(nh, ipv4_addr(gateway, 32).get());
      if (spec.onlink) rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
      rtnl_route_add_nexthop(route.get(), nh);  // the route owns nh from here
    }
    int flags = NLM_F_CREATE | (spec.replace ? NLM_F_REPLACE : NLM_F_EXCL);
    if (int err = rtnl_route_add(ns.sock.get(), route.get(), flags); err < 0) {
      std::vector<std::string> via;
      for (const auto& g : gateways) via.push_back(g.str());
      throw nl_failure(
          "add route",
          fmt::format("{} via {} dev {}", spec.dst.str(), fmt::join(via, ","), spec.dev),
          spec.netns, err);
    }
  }

  void delete_route(const std::string& netns, const Ipv4Net& dst) override {
    auto& ns = in(netns);
    Route route(rtnl_route_alloc());
    rtnl_route_set_family(route.get(), AF_INET);
    rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
    rtnl_route_set_dst(route.get(), ipv4_addr(dst.network, dst.prefix).get());
    int err = rtnl_route_delete(ns.sock.get(), route.get(), 0);
    if (err < 0 && err != -NLE_OBJ_NOTFOUND)
      throw nl_failure("delete route", dst.str(), netns, err);
  }

  void add_neighbour(const NeighbourSpec& spec) override {
    auto& ns = in(spec.netns);
    Neigh neigh(rtnl_neigh_alloc());
    rtnl_neigh_set_ifindex(neigh.get(), static_cast<int>(index(spec.netns, spec.dev)));
    rtnl_neigh_set_family(neigh.get(), AF_INET);
    rtnl_neigh_set_dst(neigh.get(), ipv4_addr(spec.ip, 32).get());
    rtnl_neigh_set_lladdr(neigh.get(), mac_addr(spec.mac).get());
    rtnl_neigh_set_state(neigh.get(), NUD_PERMANENT);
    if (int err = rtnl_neigh_add(ns.sock.get(), neigh.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0)
      throw nl_failure("add neighbour",
                       fmt::format("{} lladdr {} dev {}", spec.ip.str(), spec.mac, spec.dev),
                       spec.netns, err);
  }

  void add_fdb(const FdbSpec& spec) override {
    auto& ns = in(spec.netns);
    Neigh entry(rtnl_neigh_alloc());
    rtnl_neigh_set_ifindex(entry.get(), static_cast<int>(index(spec.netns, spec.dev)));
    // The remote VTEP is an IPv4 address in an AF_BRIDGE entry: libnl wants the
    // address before the family, or it refuses the mismatch.
    rtnl_neigh_set_dst(entry.get(), ipv4_addr(spec.dst, 32).get());
    rtnl_neigh_set_family(entry.get(), AF_BRIDGE);
    rtnl_neigh_set_lladdr(entry.get(), mac_addr(spec.mac).get());
    rtnl_neigh_set_state(entry.get(), NUD_PERMANENT);
    rtnl_neigh_set_flags(entry.get(), NTF_SELF);
    if (int err = rtnl_neigh_add(ns.sock.get(), entry.get(), NLM_F_CREATE | NLM_F_APPEND); err < 0)
      throw nl_failure("add fdb entry",
                       fmt::format("{} dst {} dev {}", spec.mac, spec.dst.str(), spec.dev),
                       spec.netns, err);
  }

  std::vector<KernelRoute> list_routes(const std::string& netns) override {
    return main_routes(netns);
  }

  void nft_apply(const std::string& netns, const std::string& script) override {
    auto& session = nft_[netns];
    if (!session) session = std::make_unique<NftSession>(netns);
    session->run(script);
  }

  void nft_renew(const std::string& netns) override {
    // The new context is made now, off the path of the next transaction.
    nft_[netns] = std::make_unique<NftSession>(netns);
  }

  std::vector<NftLoadResult> nft_load(const std::vector<NftLoad>& loads) override {
    for (const auto& load : loads) nft_.erase(load.netns);
    return nft_load_at_once(loads, std::max(1u, std::thread::hardware_concurrency()), nft_);
  }

  void release_handles() override {
    std::lock_guard lock(mutex_);
    sockets_.clear();
    indexes_.clear();
  }

  void set_sysctl(const SysctlSpec& spec) override {
    auto& ns = in(spec.netns);
    auto path = "/proc/sys/" + spec.key;
    // /proc/sys/net shows the namespace of the thread that opens it.
    run_in_netns(ns.fd.get(), [&] {
      Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
      if (!fd && errno == ENOENT && spec.if_present) return;
      if (!fd || ::write(fd.get(), spec.value.data(), spec.value.size()) < 0)
        throw errno_error("set sysctl", fmt::format("{}={}", spec.key, spec.value), spec.netns,
                          errno);
    });
  }

 private:
  struct Namespace {
    Fd fd;
    Socket sock;
  };

  // Closes every thread's handles in `netns`.
  void forget(const std::string& netns) {
    std::lock_guard lock(mutex_);
    std::erase_if(indexes_, [&](const auto& entry) { return entry.first.first == netns; });
    std::erase_if(sockets_, [&](const auto& entry) { return entry.first.second == netns; });
  }

  // The calling thread's handles in `netns`: a netlink socket answers the
  // thread that asked, one request at a time, so no two threads share one.
  Namespace& in(const std::string& netns) {
    const std::pair key{std::this_thread::get_id(), netns};
    {
      std::lock_guard lock(mutex_);
      if (auto it = sockets_.find(key); it != sockets_.end()) return it->second;
      // Those create_netns opened go to the first thread that asks.
      if (auto it = sockets_.find({std::thread::id{}, netns}); it != sockets_.end()) {
        auto handles = sockets_.extract(it);
        handles.key() = key;
        return sockets_.insert(std::move(handles)).position->second;
      }
    }
    Namespace ns{open_netns(netns), request_socket()};
    int err = 0;
    run_in_netns(ns.fd.get(), [&] { err = nl_connect(ns.sock.get(), NETLINK_ROUTE); });
    if (err < 0) throw nl_failure("open rtnetlink socket", "", netns, err);
    std::lock_guard lock(mutex_);
    return sockets_.insert_or_assign(key, std::move(ns)).first->second;
  }

  uint32_t index(const std::string& netns, const std::string& name) {
    auto key = std::pair{netns, name};
    {
      std::lock_guard lock(mutex_);
      if (auto it = indexes_.find(key); it != indexes_.end()) return it->second;
    }
    // Asked of the namespace's socket by ioctl, which returns the index
    // alone: a RTM_GETLINK answer carries every attribute of the link (its
    // IPv4 and IPv6 settings among them), for the kernel to build and libnl
    // to parse.
    ifreq request{};
    if (name.size() >= sizeof request.ifr_name)
      throw errno_error("look up link", name, netns, ENAMETOOLONG);
    std::memcpy(request.ifr_name, name.c_str(), name.size());
    if (::ioctl(nl_socket_get_fd(in(netns).sock.get()), SIOCGIFINDEX, &request) != 0)
      throw errno_error("look up link", name, netns, errno);
    auto idx = static_cast<uint32_t>(request.ifr_ifindex);
    std::lock_guard lock(mutex_);
    indexes_[key] = idx;
    return idx;
  }

  std::mutex mutex_;  // guards the two maps, not what their entries hold
  // By the thread that uses them; std::thread::id() for those no thread took yet.
  std::map<std::pair<std::thread::id, std::string>, Namespace> sockets_;
  std::map<std::pair<std::string, std::string>, uint32_t> indexes_;
  NftSessions nft_;
};

}  // namespace

std::unique_ptr<Kernel> make_netlink_kernel() {
  return std::make_unique<NetlinkKernel>();
}

}  // namespace knl
