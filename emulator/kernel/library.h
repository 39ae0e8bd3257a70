#pragma once
// Shared libraries that knetlab loads when first used (libnftables,
// libnftnl): linking them would cost every command their loading, and most
// commands never use them. Private to emulator/kernel/.

#include <dlfcn.h>

#include <fmt/format.h>

#include <cerrno>
#include <type_traits>

#include "knetlab/util/error.h"

namespace knl {

/// A library opened with dlopen(RTLD_NOW | RTLD_LOCAL); SystemError (ENOENT)
/// naming it and the Debian package that has it when it cannot be.
class Library {
 public:
  Library(const char* soname, const char* package) : soname_(soname) {
    handle_ = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle_)
      throw SystemError(fmt::format("load {} ({}): install it with `apt-get install {}` "
                                    "(scripts/setup does)",
                                    soname, ::dlerror(), package),
                        ENOENT);
  }
  /// Sets `function` to the library's `name`; SystemError when it has none.
  template <class F>
  void load(F& function, const char* name) const {
    void* address = ::dlsym(handle_, name);
    if (!address)
      throw SystemError(fmt::format("{} has no {}: {}", soname_, name, ::dlerror()), ENOENT);
    function = reinterpret_cast<F>(address);
  }

 private:
  const char* soname_;
  void* handle_ = nullptr;
};

}  // namespace knl
