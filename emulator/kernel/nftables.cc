#include "knetlab/kernel/nftables.h"

#include <fcntl.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "knetlab/kernel/netns.h"
#include "knetlab/util/error.h"
#include "library.h"

namespace knl {

namespace {

// libnftables, loaded the first time a lab needs it (library.h): most
// commands (destroy, get, exec, a lab without services) never use it.
struct Libnftables {
  decltype(&nft_ctx_new) ctx_new;
  decltype(&nft_ctx_free) ctx_free;
  decltype(&nft_ctx_buffer_output) buffer_output;
  decltype(&nft_ctx_buffer_error) buffer_error;
  decltype(&nft_ctx_get_output_buffer) get_output_buffer;
  decltype(&nft_ctx_get_error_buffer) get_error_buffer;
  decltype(&nft_run_cmd_from_buffer) run_cmd_from_buffer;
};

const Libnftables& libnftables() {
  static const Libnftables lib = [] {
    const Library library("libnftables.so.1", "libnftables1");
    Libnftables l;
    library.load(l.ctx_new, "nft_ctx_new");
    library.load(l.ctx_free, "nft_ctx_free");
    library.load(l.buffer_output, "nft_ctx_buffer_output");
    library.load(l.buffer_error, "nft_ctx_buffer_error");
    library.load(l.get_output_buffer, "nft_ctx_get_output_buffer");
    library.load(l.get_error_buffer, "nft_ctx_get_error_buffer");
    library.load(l.run_cmd_from_buffer, "nft_run_cmd_from_buffer");
    return l;
  }();
  return lib;
}

// What a refused run throws: nft's own message names the line.
SystemError refusal(const std::string& netns, nft_ctx* ctx) {
  return SystemError(fmt::format("load nftables rules in netns {}: {}", netns,
                                 libnftables().get_error_buffer(ctx)),
                     0);
}

}  // namespace

void to_json(nlohmann::json& j, const NftLoadResult& r) {
  j = {{"applied", r.applied}, {"error", r.error}};
}
void from_json(const nlohmann::json& j, NftLoadResult& r) {
  j.at("applied").get_to(r.applied);
  j.at("error").get_to(r.error);
}

namespace {

// Moves the calling thread into network namespace `netns`; SystemError
// naming it and errno when it is missing or cannot be entered.
void enter(const std::string& netns) {
  Fd fd = open_netns(netns);
  if (::setns(fd.get(), CLONE_NEWNET) != 0)
    throw errno_error("enter", "network namespace", netns, errno);
}

// Runs the transactions, in order, through `run`, which throws a refusal;
// what it applied and the first refusal (or `run`'s other failure).
NftLoadResult run_each(const std::vector<std::string>& transactions,
                       const std::function<void(const std::string&)>& run) {
  NftLoadResult result;
  try {
    for (const auto& t : transactions) {
      run(t);
      ++result.applied;
    }
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

// A small load's transactions, in this process, through the kept context of
// its namespace (made if missing), one such load at a time: libnftables does
// not promise that contexts on several threads are independent of each other.
NftLoadResult load_in_this_process(const NftLoad& load,
                                   const std::vector<std::string>& transactions,
                                   NftSessions& sessions) {
  static std::mutex one_at_a_time;
  std::lock_guard lock(one_at_a_time);
  auto& session = sessions[load.netns];
  return run_each(transactions, [&](const std::string& t) {
    if (!session) session = std::make_unique<NftSession>(load.netns);
    session->run(t);
  });
}

// In the child: enters the namespace (the thread that forked it may not have;
// the child has no other thread to do it, as run_in_netns would) and runs the
// transactions through a libnftables context of its own, then writes its
// NftLoadResult, as JSON, to `out`.
[[noreturn]] void load_in_child(const NftLoad& load, const std::vector<std::string>& transactions,
                                int out) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Of the descriptors it was forked with, the child keeps only `out`: a pipe
  // another thread's load had open would not see its end until this exits.
  const auto kept = static_cast<unsigned>(out);
  ::close_range(3, kept - 1, 0);
  ::close_range(kept + 1, ~0U, 0);
  const auto& nft = libnftables();
  nft_ctx* ctx = nullptr;  // never freed: the child's exit frees it with the rest
  const NftLoadResult result = run_each(transactions, [&](const std::string& t) {
    if (!ctx) {
      enter(load.netns);
      ctx = nft.ctx_new(NFT_CTX_DEFAULT);
      if (!ctx)
        throw SystemError(fmt::format("create nftables context in netns {}", load.netns), 0);
      nft.buffer_output(ctx), nft.buffer_error(ctx);
    }
    if (nft.run_cmd_from_buffer(ctx, t.c_str()) != 0) throw refusal(load.netns, ctx);
  });
  const auto text = nlohmann::json(result).dump();
  for (size_t at = 0; at < text.size();) {
    auto n = ::write(out, text.data() + at, text.size() - at);
    if (n <= 0) break;
    at += static_cast<size_t>(n);
  }
  ::_exit(0);
}

// The transactions in a forked child; what it reports, or the signal that
// killed it. Fork or pipe failures throw SystemError.
NftLoadResult load_in_a_child(const NftLoad& load, const std::vector<std::string>& transactions) {
  int pipe[2];
  if (::pipe2(pipe, O_CLOEXEC) != 0)
    throw errno_error("create pipe", "nftables load", load.netns, errno);
  Fd in(pipe[0]), out(pipe[1]);
  pid_t pid = ::fork();
  if (pid < 0) throw errno_error("fork", "nftables load", load.netns, errno);
  if (pid == 0) load_in_child(load, transactions, out.get());
  out.reset();
  std::string text;
  char buffer[4096];
  for (;;) {
    auto n = ::read(in.get(), buffer, sizeof buffer);
    if (n > 0)
      text.append(buffer, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR)
      break;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  NftLoadResult result;
  if (WIFSIGNALED(status))
    result.error = fmt::format(
        "load nftables rules in netns {}: the loading process was killed by signal {} ({})",
        load.netns, WTERMSIG(status), ::strsignal(WTERMSIG(status)));
  else
    try {
      result = nlohmann::json::parse(text).get<NftLoadResult>();
    } catch (const std::exception& e) {
      result.error = fmt::format(
          "load nftables rules in netns {}: no result from the loading process (exit status "
          "{}): {}",
          load.netns, WEXITSTATUS(status), e.what());
    }
  return result;
}

// One load, on a thread that may enter namespaces: the copy over netlink from
// this thread, the transactions (if any) in a child, whose libnftables
// context, with its copy of the ruleset, goes with it, or in this process
// when the load copies nothing and they are smaller than kNftLoadInChildBytes
// (the ruleset a context learns is then no bigger than they are).
NftLoadResult run_load(const NftLoad& load, const NftTablesCopy* copy, NftSessions& sessions) {
  auto transactions = load.transactions();
  NftLoadResult result;
  if (copy) {
    try {
      enter(load.netns);
      copy->into(load.netns, load.copy->elements);
      ++result.applied;
    } catch (const std::exception& e) {
      result.error = e.what();
      return result;
    }
  }
  if (transactions.empty()) return result;
  size_t bytes = 0;
  for (const auto& t : transactions) bytes += t.size();
  auto rest = !copy && bytes < kNftLoadInChildBytes
                  ? load_in_this_process(load, transactions, sessions)
                  : load_in_a_child(load, transactions);
  rest.applied += result.applied;
  return rest;
}

}  // namespace

std::vector<NftLoadResult> nft_load_at_once(const std::vector<NftLoad>& loads, size_t jobs,
                                            NftSessions& sessions) {
  libnftables();  // loaded once, before the forks, and its failure reported here
  std::vector<NftLoadResult> results(loads.size());
  // Each copy's source is dumped once, by the first tasks: a task starts
  // only after every task before it, so no load waits on a dump not started.
  std::map<std::pair<std::string, std::vector<std::string>>, std::unique_ptr<NftTablesCopy>> copies;
  std::vector<NftTablesCopy*> dumps;
  std::vector<const NftTablesCopy*> copy_of(loads.size());
  for (size_t i = 0; i < loads.size(); ++i) {
    if (!loads[i].copy) continue;
    auto& copy = copies[{loads[i].copy->from, loads[i].copy->tables}];
    if (!copy) {
      copy = std::make_unique<NftTablesCopy>(loads[i].copy->from, loads[i].copy->tables);
      dumps.push_back(copy.get());
    }
    copy_of[i] = copy.get();
  }
  run_on_own_threads(
      dumps.size() + loads.size(),
      [&](size_t task) {
        if (task < dumps.size()) return dumps[task]->dump();
        const size_t i = task - dumps.size();
        results[i] = run_load(loads[i], copy_of[i], sessions);
      },
      // A dump takes a thread beyond `jobs`: a copy that waits on it leaves
      // its CPU to the dump rather than idle.
      {}, jobs + dumps.size());
  return results;
}

NftSession::NftSession(const std::string& netns) : netns_(netns), fd_(open_netns(netns)) {
  const auto& nft = libnftables();
  run_in_netns(fd_.get(), [&] { ctx_ = nft.ctx_new(NFT_CTX_DEFAULT); });
  if (!ctx_) throw SystemError(fmt::format("create nftables context in netns {}", netns), 0);
  nft.buffer_output(ctx_);
  nft.buffer_error(ctx_);
}

NftSession::~NftSession() {
  if (ctx_) run_in_netns(fd_.get(), [&] { libnftables().ctx_free(ctx_); });
}

void NftSession::run(const std::string& commands) {
  const auto& nft = libnftables();
  int rc = 0;
  run_in_netns(fd_.get(), [&] { rc = nft.run_cmd_from_buffer(ctx_, commands.c_str()); });
  if (rc != 0) throw refusal(netns_, ctx_);
}

std::string NftSession::list(const std::string& command) {
  run(command);
  return libnftables().get_output_buffer(ctx_);
}

}  // namespace knl
