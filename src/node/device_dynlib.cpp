#include "node/device_dynlib.h"

#include <dlfcn.h>

namespace tars::node {

DynamicLibrary::DynamicLibrary(const std::vector<std::string>& names) {
  for (const auto& name : names) {
    // RTLD_LOCAL: the driver's symbols must not interpose on anything else.
    handle_ = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_) {
      name_ = name;
      error_.clear();
      return;
    }
    // Keep the first failure: it names the library people know (the soname).
    const char* err = ::dlerror();
    if (error_.empty()) error_ = err ? err : name + ": cannot be loaded";
  }
}

DynamicLibrary::~DynamicLibrary() {
  if (handle_ && !keep_) ::dlclose(handle_);
}

void* DynamicLibrary::address(const char* symbol) const {
  if (!handle_) return nullptr;
  return ::dlsym(handle_, symbol);
}

}  // namespace tars::node
