#pragma once
// A shared library opened with dlopen, for the NVIDIA libraries tars uses
// when they are there and does without when they are not (no link-time
// dependency, no CUDA headers).

#include <string>
#include <vector>

namespace tars::node {

class DynamicLibrary {
 public:
  // Tries each name in turn (dlopen's search rules apply to bare names).
  // loaded() tells whether one opened; error() says why none did.
  explicit DynamicLibrary(const std::vector<std::string>& names);
  // Unloads unless keep_loaded() was called.
  ~DynamicLibrary();
  DynamicLibrary(const DynamicLibrary&) = delete;
  DynamicLibrary& operator=(const DynamicLibrary&) = delete;

  bool loaded() const { return handle_ != nullptr; }
  const std::string& name() const { return name_; }    // the name that opened
  const std::string& error() const { return error_; }  // dlerror() of the first try

  // The address of `symbol` cast to the function pointer type Fn, or
  // nullptr when the library lacks it (an older driver).
  template <typename Fn>
  Fn function(const char* symbol) const {
    return reinterpret_cast<Fn>(address(symbol));
  }

  // Never dlclose: for libraries that start threads or register handlers
  // (libcuda) and must outlive every caller.
  void keep_loaded() { keep_ = true; }

 private:
  void* address(const char* symbol) const;

  void* handle_ = nullptr;
  std::string name_;
  std::string error_;
  bool keep_ = false;
};

}  // namespace tars::node
