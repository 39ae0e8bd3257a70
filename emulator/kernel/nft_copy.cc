// Copying nftables tables from one namespace into another through libnftnl:
// the kernel's own description of every object, dumped and sent back as it
// is, so the copy is what libnftables made for the first namespace.

// Before the kernel headers, whose linux/in.h would clash with it.
#include <netinet/in.h>

#include "knetlab/kernel/netns.h"
#include "knetlab/kernel/nftables.h"
#include "library.h"

#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>

#include "knetlab/util/error.h"

namespace knl {

namespace {

// libnftnl, loaded when first used (library.h), as nftnl_NAME is NAME here.
// clang-format off
#define KNL_NFTNL_FUNCTIONS(X)                                                                 \
  X(table_alloc) X(table_free) X(table_nlmsg_parse) X(table_get_str) X(table_unset)            \
  X(table_set_str) X(table_nlmsg_build_payload)                                                \
  X(chain_alloc) X(chain_free) X(chain_nlmsg_parse) X(chain_get_str) X(chain_unset)            \
  X(chain_nlmsg_build_payload)                                                                 \
  X(rule_alloc) X(rule_free) X(rule_nlmsg_parse) X(rule_get_str) X(rule_set_str)               \
  X(rule_unset) X(rule_nlmsg_build_payload) X(expr_foreach) X(expr_get_str) X(expr_is_set)     \
  X(set_alloc) X(set_free) X(set_nlmsg_parse) X(set_get_str) X(set_get_u32) X(set_set_str)     \
  X(set_set_u32) X(set_unset) X(set_nlmsg_build_payload) X(set_elems_nlmsg_parse)              \
  X(set_elems_nlmsg_build_payload) X(set_elems_nlmsg_build_payload_iter)                       \
  X(set_elems_iter_create) X(set_elems_iter_cur) X(set_elems_iter_destroy)                     \
  X(set_elem_alloc) X(set_elem_set) X(set_elem_add)                                            \
  X(nlmsg_build_hdr) X(batch_begin) X(batch_end)
// clang-format on
struct Libnftnl {
#define KNL_NFTNL_FIELD(name) decltype(&nftnl_##name) name;
  KNL_NFTNL_FUNCTIONS(KNL_NFTNL_FIELD)
#undef KNL_NFTNL_FIELD
};

const Libnftnl& nl() {
  static const Libnftnl lib = [] {
    const Library library("libnftnl.so.11", "libnftnl11");
    Libnftnl l;
#define KNL_NFTNL_LOAD(name) library.load(l.name, "nftnl_" #name);
    KNL_NFTNL_FUNCTIONS(KNL_NFTNL_LOAD)
#undef KNL_NFTNL_LOAD
    return l;
  }();
  return lib;
}
#undef KNL_NFTNL_FUNCTIONS

struct Free {
  void operator()(nftnl_table* p) const { nl().table_free(p); }
  void operator()(nftnl_chain* p) const { nl().chain_free(p); }
  void operator()(nftnl_rule* p) const { nl().rule_free(p); }
  void operator()(nftnl_set* p) const { nl().set_free(p); }
};
using Table = std::unique_ptr<nftnl_table, Free>;
using Chain = std::unique_ptr<nftnl_chain, Free>;
using Rule = std::unique_ptr<nftnl_rule, Free>;
using Set = std::unique_ptr<nftnl_set, Free>;

// The largest nf_tables message: a set element list nest is at most 64 KiB.
constexpr size_t kMessageMax = 65536 + 4096;
// Bytes of rules per transaction: few for the chains that bind anonymous
// sets, since the kernel walks the whole transaction for every anonymous set
// a rule binds; many for the others, since every commit walks every chain of
// the namespace.
constexpr size_t kRuleBytesPerTransaction = 1024 * 1024;
constexpr size_t kPlainRuleBytesPerTransaction = 16 * 1024 * 1024;

SystemError failure(const std::string& from, const std::string& what, int error) {
  return SystemError(
      fmt::format("copy nftables tables from netns {}: {}: {}", from, what, std::strerror(error)),
      error);
}

// A netfilter netlink socket in the calling thread's namespace.
Fd open_socket(const std::string& from) {
  Fd s(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
    throw failure(from, "open a netfilter netlink socket", errno);
  return s;
}

// Sends `length` bytes at `data` to the kernel.
bool send_to_kernel(int s, const void* data, size_t length) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  return ::sendto(s, data, length, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) ==
         static_cast<ssize_t>(length);
}

// Runs a dump request built by `build` and calls `parse` on every answer.
template <class Build, class Parse>
void dump(const std::string& from, int s, uint16_t type, const std::string& what, Build&& build,
          Parse&& parse) {
  std::vector<char> buffer(kMessageMax);
  // Dumps run on several threads at once: each keeps its own number.
  static std::atomic<uint32_t> last_seq = 0;
  const uint32_t seq = ++last_seq;
  auto* request = nl().nlmsg_build_hdr(buffer.data(), type, NFPROTO_IPV4, NLM_F_DUMP, seq);
  build(request);
  if (!send_to_kernel(s, request, request->nlmsg_len)) throw failure(from, "dump " + what, errno);
  buffer.resize(1 << 20);
  for (;;) {
    auto n = ::recv(s, buffer.data(), buffer.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw failure(from, "dump " + what, errno);
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (err->error != 0) throw failure(from, "dump " + what, -err->error);
        continue;
      }
      if (!parse(h)) throw failure(from, "read the dump of " + what, EPROTO);
    }
  }
}

// The copied tables' objects but their rules, in the order of the kernel's
// dumps.
struct Ruleset {
  std::vector<Table> tables;
  std::vector<Chain> chains;
  std::vector<Set> sets;  // with their elements
};

// Dumps the tables, chains and sets of `tables` and the elements of every set
// that no rule updates.
Ruleset dump_objects(const std::string& from, const std::vector<std::string>& tables, int s) {
  Ruleset r;
  const std::set<std::string> wanted(tables.begin(), tables.end());
  auto in_wanted = [&](const char* table) { return table && wanted.count(table); };
  // Dumps every object of `type` into `out`, keeping those of a wanted table.
  auto keep = [&](auto& out, uint16_t type, const char* what, auto alloc, auto parse,
                  auto table_of) {
    dump(
        from, s, type, what, [](nlmsghdr*) {},
        [&](const nlmsghdr* h) {
          typename std::decay_t<decltype(out)>::value_type object(alloc());
          if (parse(h, object.get()) < 0) return false;
          if (in_wanted(table_of(object.get()))) out.push_back(std::move(object));
          return true;
        });
  };
  keep(r.tables, NFT_MSG_GETTABLE, "tables", nl().table_alloc, nl().table_nlmsg_parse,
       [](const nftnl_table* t) { return nl().table_get_str(t, NFTNL_TABLE_NAME); });
  if (r.tables.size() != wanted.size()) throw failure(from, "find every table", ENOENT);
  keep(r.chains, NFT_MSG_GETCHAIN, "chains", nl().chain_alloc, nl().chain_nlmsg_parse,
       [](const nftnl_chain* c) { return nl().chain_get_str(c, NFTNL_CHAIN_TABLE); });
  keep(r.sets, NFT_MSG_GETSET, "sets", nl().set_alloc, nl().set_nlmsg_parse,
       [](const nftnl_set* set) { return nl().set_get_str(set, NFTNL_SET_TABLE); });
  for (auto& set : r.sets) {
    const bool dynamic = nl().set_get_u32(set.get(), NFTNL_SET_FLAGS) & NFT_SET_EVAL;
    const std::string name = nl().set_get_str(set.get(), NFTNL_SET_NAME);
    if (dynamic) continue;
    dump(
        from, s, NFT_MSG_GETSETELEM, "elements of set " + name,
        [&](nlmsghdr* nlh) { nl().set_elems_nlmsg_build_payload(nlh, set.get()); },
        [&](const nlmsghdr* h) { return nl().set_elems_nlmsg_parse(h, set.get()) >= 0; });
  }
  return r;
}

// The rules of `table`, in the kernel's order; one table a dump, since the
// kernel's rule dump walks every rule it dumped before each part of its answer.
std::vector<Rule> dump_rules(const std::string& from, const std::string& table, int s) {
  std::vector<Rule> rules;
  dump(
      from, s, NFT_MSG_GETRULE, "rules of table " + table,
      [&](nlmsghdr* nlh) {
        Rule filter(nl().rule_alloc());
        nl().rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
        nl().rule_nlmsg_build_payload(nlh, filter.get());
      },
      [&](const nlmsghdr* h) {
        Rule rule(nl().rule_alloc());
        if (nl().rule_nlmsg_parse(h, rule.get()) < 0) return false;
        rules.push_back(std::move(rule));
        return true;
      });
  return rules;
}

// Transactions as netlink batches, each from BATCH_BEGIN to BATCH_END.
class Batches {
 public:
  /// Appends one message of `type`, its payload written by `build`.
  template <class Build>
  void add(uint16_t type, uint16_t flags, Build&& build) {
    if (open_.empty()) begin();
    auto* nlh = nl().nlmsg_build_hdr(scratch_.data(), type, NFPROTO_IPV4, flags, seq_++);
    build(nlh);
    open_.append(scratch_.data(), nlh->nlmsg_len);
  }
  /// Ends the transaction under way, if any.
  void close() {
    if (open_.empty()) return;
    auto* nlh = nl().batch_end(scratch_.data(), seq_++);
    open_.append(scratch_.data(), nlh->nlmsg_len);
    done_.push_back(std::move(open_));
    open_.clear();
  }
  /// Appends messages rendered by another Batches' messages().
  void append(const std::string& messages) {
    if (messages.empty()) return;
    if (open_.empty()) begin();
    open_ += messages;
  }
  size_t open_bytes() const { return open_.size(); }
  /// Moves out the transactions ended so far.
  std::vector<std::string> take() { return std::exchange(done_, {}); }
  /// The messages of the transaction under way, without its BATCH_BEGIN.
  std::string messages() const { return open_.empty() ? "" : open_.substr(begin_bytes_); }

 private:
  void begin() {
    auto* nlh = nl().batch_begin(scratch_.data(), seq_++);
    open_.append(scratch_.data(), nlh->nlmsg_len);
    begin_bytes_ = nlh->nlmsg_len;
  }
  size_t begin_bytes_ = 0;
  std::vector<char> scratch_ = std::vector<char>(kMessageMax);
  uint32_t seq_ = 1;
  std::string open_;
  std::vector<std::string> done_;
};

// Every element message of `set` (elements as many as fit a message each).
void add_elements(Batches& out, const nftnl_set* set) {
  if (nftnl_set_elems_iter* probe = nl().set_elems_iter_create(set)) {
    const bool empty = nl().set_elems_iter_cur(probe) == nullptr;
    nl().set_elems_iter_destroy(probe);
    if (empty) return;
  }
  nftnl_set_elems_iter* it = nl().set_elems_iter_create(set);
  int more = 1;
  while (more > 0)
    out.add(NFT_MSG_NEWSETELEM, NLM_F_CREATE,
            [&](nlmsghdr* nlh) { more = nl().set_elems_nlmsg_build_payload_iter(nlh, it); });
  nl().set_elems_iter_destroy(it);
}

// The sets a rule names (lookups and dynamic updates).
std::vector<std::string> sets_named(nftnl_rule* rule) {
  std::vector<std::string> names;
  nl().expr_foreach(
      rule,
      [](nftnl_expr* e, void* data) {
        auto* out = static_cast<std::vector<std::string>*>(data);
        const std::string_view kind = nl().expr_get_str(e, NFTNL_EXPR_NAME);
        if (kind == "lookup" && nl().expr_is_set(e, NFTNL_EXPR_LOOKUP_SET))
          out->push_back(nl().expr_get_str(e, NFTNL_EXPR_LOOKUP_SET));
        else if (kind == "dynset" && nl().expr_is_set(e, NFTNL_EXPR_DYNSET_SET_NAME))
          out->push_back(nl().expr_get_str(e, NFTNL_EXPR_DYNSET_SET_NAME));
        return 0;
      },
      &names);
  return names;
}

// Anonymous sets by table and name.
using Anonymous = std::map<std::pair<std::string, std::string>, nftnl_set*>;

// Renders into `out` the tables, chains and named sets of `r` (a table a
// refused earlier load left behind is replaced), and finds its anonymous sets.
void render_objects(Ruleset& r, Batches& out, Anonymous& anonymous) {
  for (auto& t : r.tables) {
    nl().table_unset(t.get(), NFTNL_TABLE_HANDLE);
    nl().table_unset(t.get(), NFTNL_TABLE_USE);
    const std::string name = nl().table_get_str(t.get(), NFTNL_TABLE_NAME);
    auto bare = [&](nlmsghdr* nlh) {
      Table only(nl().table_alloc());
      nl().table_set_str(only.get(), NFTNL_TABLE_NAME, name.c_str());
      nl().table_nlmsg_build_payload(nlh, only.get());
    };
    out.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, bare);
    out.add(NFT_MSG_DELTABLE, 0, bare);
    out.add(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL,
            [&](nlmsghdr* nlh) { nl().table_nlmsg_build_payload(nlh, t.get()); });
  }
  for (auto& c : r.chains) {
    for (auto attr : {NFTNL_CHAIN_HANDLE, NFTNL_CHAIN_USE, NFTNL_CHAIN_BYTES, NFTNL_CHAIN_PACKETS,
                      NFTNL_CHAIN_FLAGS})
      nl().chain_unset(c.get(), attr);
    out.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL,
            [&](nlmsghdr* nlh) { nl().chain_nlmsg_build_payload(nlh, c.get()); });
  }
  uint32_t id = 1;
  for (auto& set : r.sets) {
    nl().set_unset(set.get(), NFTNL_SET_HANDLE);
    nl().set_set_u32(set.get(), NFTNL_SET_ID, id++);
    const std::string table = nl().set_get_str(set.get(), NFTNL_SET_TABLE);
    const std::string name = nl().set_get_str(set.get(), NFTNL_SET_NAME);
    if (nl().set_get_u32(set.get(), NFTNL_SET_FLAGS) & NFT_SET_ANONYMOUS)
      anonymous[{table, name}] = set.get();
    else
      out.add(NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL,
              [&](nlmsghdr* nlh) { nl().set_nlmsg_build_payload(nlh, set.get()); });
  }
}

// Renders `rules` (those of `table`): the rules of chains that bind anonymous
// sets into `bind`, in transactions of kRuleBytesPerTransaction, each after
// the sets it binds; the others into `plain`, in transactions of
// kPlainRuleBytesPerTransaction. A chain's rules keep their order.
void render_rules(const std::string& table, std::vector<Rule>& rules, const Anonymous& anonymous,
                  Batches& bind, Batches& plain) {
  // Chain names as the rules hold them, alive as long as `rules`.
  std::unordered_set<std::string_view> binding;
  std::vector<std::vector<nftnl_set*>> bound(rules.size());
  for (size_t i = 0; i < rules.size(); ++i) {
    for (const auto& name : sets_named(rules[i].get()))
      if (auto it = anonymous.find({table, name}); it != anonymous.end())
        bound[i].push_back(it->second);
    if (!bound[i].empty()) binding.insert(nl().rule_get_str(rules[i].get(), NFTNL_RULE_CHAIN));
  }
  for (size_t i = 0; i < rules.size(); ++i) {
    auto* rule = rules[i].get();
    nl().rule_unset(rule, NFTNL_RULE_HANDLE);
    nl().rule_unset(rule, NFTNL_RULE_POSITION);
    const bool binds = binding.count(nl().rule_get_str(rule, NFTNL_RULE_CHAIN));
    auto& out = binds ? bind : plain;
    for (auto* set : bound[i]) {
      out.add(NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL,
              [&](nlmsghdr* nlh) { nl().set_nlmsg_build_payload(nlh, set); });
      add_elements(out, set);
    }
    out.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
            [&](nlmsghdr* nlh) { nl().rule_nlmsg_build_payload(nlh, rule); });
    if (out.open_bytes() >= (binds ? kRuleBytesPerTransaction : kPlainRuleBytesPerTransaction))
      out.close();
  }
}

// Sends one transaction; the kernel handles it within the send, so every
// answer (only errors: no message asks for an acknowledgement) is queued
// when the send returns.
void send(const std::string& from, const std::string& netns, int s,
          const std::string& transaction) {
  int size = static_cast<int>(transaction.size() + 65536);
  if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
    throw failure(from, "size the send buffer", errno);
  if (!send_to_kernel(s, transaction.data(), transaction.size()))
    throw failure(from, "send to netns " + netns, errno);
  std::vector<char> buffer(kMessageMax);
  for (;;) {
    auto n = ::recv(s, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw failure(from, "read the answer of netns " + netns, errno);
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left))
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (err->error != 0) throw failure(from, "netns " + netns + " refused it", -err->error);
      }
  }
}

}  // namespace

// What a copy sends, rendered once and published part by part as dump()
// goes: the objects' transactions in order, then, once done, each named set's
// element messages.
struct NftTablesCopy::Rendered {
  struct NamedSet {
    std::string table, name, elements;
  };
  std::mutex mutex;
  std::condition_variable more;
  std::deque<std::string> objects;  // a deque: into() keeps references while it grows
  std::vector<NamedSet> sets;
  bool done = false;
  std::exception_ptr failure;

  /// Appends `transactions` to the objects.
  void publish(std::vector<std::string> transactions) {
    std::lock_guard lock(mutex);
    for (auto& t : transactions) objects.push_back(std::move(t));
    more.notify_all();
  }
  /// Ends the copy: with the named sets when `error` is null, or failed.
  void finish(std::vector<NamedSet> named, std::exception_ptr error = nullptr) {
    std::lock_guard lock(mutex);
    sets = std::move(named);
    failure = error;
    done = true;
    more.notify_all();
  }
  /// The `i`th transaction of the objects, waiting for it (dump() must have
  /// started or start on another thread); nullptr when the objects end before
  /// it; throws what dump() failed with.
  const std::string* object(size_t i) {
    std::unique_lock lock(mutex);
    more.wait(lock, [&] { return done || objects.size() > i; });
    if (failure) std::rethrow_exception(failure);
    return i < objects.size() ? &objects[i] : nullptr;
  }
};

NftTablesCopy::NftTablesCopy(const std::string& from, const std::vector<std::string>& tables)
    : from_(from), tables_(tables), rendered_(std::make_unique<Rendered>()) {}

NftTablesCopy::~NftTablesCopy() = default;

void NftTablesCopy::dump() noexcept {
  auto& out = *rendered_;
  try {
    // A socket stays in the namespace it was opened in.
    Fd s;
    run_in_netns(open_netns(from_).get(), [&] { s = open_socket(from_); });
    auto ruleset = dump_objects(from_, tables_, s.get());
    Batches batches;
    Anonymous anonymous;
    render_objects(ruleset, batches, anonymous);
    batches.close();
    out.publish(batches.take());
    // Every chain exists once the objects are in, so a table's plain rules
    // may go before its binding ones; each table's are published once dumped.
    Batches plain;
    for (const auto& table : tables_) {
      auto rules = dump_rules(from_, table, s.get());
      render_rules(table, rules, anonymous, batches, plain);
      plain.close();
      batches.close();
      out.publish(plain.take());
      out.publish(batches.take());
    }
    std::vector<Rendered::NamedSet> sets;
    for (auto& set : ruleset.sets) {
      const auto flags = nl().set_get_u32(set.get(), NFTNL_SET_FLAGS);
      if (flags & NFT_SET_ANONYMOUS) continue;
      Batches elements;
      add_elements(elements, set.get());
      sets.push_back({nl().set_get_str(set.get(), NFTNL_SET_TABLE),
                      nl().set_get_str(set.get(), NFTNL_SET_NAME), elements.messages()});
    }
    out.finish(std::move(sets));
  } catch (...) {
    out.finish({}, std::current_exception());
  }
}

void NftTablesCopy::into(const std::string& netns, const NftSetElements& replaced) const {
  Fd to = open_socket(from_);
  for (size_t i = 0; const std::string* t = rendered_->object(i); ++i)
    send(from_, netns, to.get(), *t);
  // Last the named sets' elements, which make the services reachable.
  Batches last;
  for (const auto& set : rendered_->sets) {
    const std::vector<std::vector<Ipv4>>* keys = nullptr;
    if (auto table = replaced.find(set.table); table != replaced.end())
      if (auto found = table->second.find(set.name); found != table->second.end())
        keys = &found->second;
    if (!keys) {
      last.append(set.elements);
      continue;
    }
    Set mine(nl().set_alloc());
    nl().set_set_str(mine.get(), NFTNL_SET_TABLE, set.table.c_str());
    nl().set_set_str(mine.get(), NFTNL_SET_NAME, set.name.c_str());
    for (const auto& fields : *keys) {
      std::vector<uint32_t> key;
      for (const auto& ip : fields) key.push_back(htonl(ip.value));
      nftnl_set_elem* e = nl().set_elem_alloc();
      nl().set_elem_set(e, NFTNL_SET_ELEM_KEY, key.data(), key.size() * sizeof(uint32_t));
      nl().set_elem_add(mine.get(), e);
    }
    add_elements(last, mine.get());
  }
  last.close();
  for (const auto& t : last.take()) send(from_, netns, to.get(), t);
}

}  // namespace knl
