#include "knetlab/kernel/nftables.h"

#include <dlfcn.h>
#include <nftables/libnftables.h>

#include <fmt/format.h>

#include <type_traits>

#include "knetlab/kernel/netns.h"
#include "knetlab/util/error.h"

namespace knl {

namespace {

// libnftables, loaded the first time a lab needs it: loading it and the
// libraries it pulls in would slow every knetlab command, and most commands
// (destroy, get, exec, a lab without services) never use it.
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
    constexpr const char* kSoname = "libnftables.so.1";
    void* handle = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      throw SystemError(fmt::format("load {} ({}): install it with `apt-get install libnftables1` "
                                    "(scripts/setup does)",
                                    kSoname, ::dlerror()),
                        ENOENT);
    Libnftables l;
    auto load = [&](auto& function, const char* name) {
      void* address = ::dlsym(handle, name);
      if (!address)
        throw SystemError(fmt::format("{} has no {}: {}", kSoname, name, ::dlerror()), ENOENT);
      function = reinterpret_cast<std::remove_reference_t<decltype(function)>>(address);
    };
    load(l.ctx_new, "nft_ctx_new");
    load(l.ctx_free, "nft_ctx_free");
    load(l.buffer_output, "nft_ctx_buffer_output");
    load(l.buffer_error, "nft_ctx_buffer_error");
    load(l.get_output_buffer, "nft_ctx_get_output_buffer");
    load(l.get_error_buffer, "nft_ctx_get_error_buffer");
    load(l.run_cmd_from_buffer, "nft_run_cmd_from_buffer");
    return l;
  }();
  return lib;
}

}  // namespace

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
  if (rc != 0) {
    std::string error = nft.get_error_buffer(ctx_);
    throw SystemError(fmt::format("load nftables rules in netns {}: {}", netns_, error), 0);
  }
}

std::string NftSession::list(const std::string& command) {
  run(command);
  return libnftables().get_output_buffer(ctx_);
}

}  // namespace knl
