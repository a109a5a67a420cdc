// glibc's set*id() functions and initgroups() (which calls setgroups()
// inside glibc, out of our reach), each run between BeginCredentialChange
// and EndCredentialChange. The real function is glibc's, found with
// RTLD_NEXT on first use: it keeps the SIGSETXID broadcast that the
// program's own threads need.
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>

#include "shim/credentials.h"

namespace coldheap::shim {
namespace {

template <typename... Args>
int ChangeCredentials(const char* name, std::atomic<void*>& real,
                      Args... args) {
  void* fn = real.load(std::memory_order_acquire);
  if (fn == nullptr) {
    fn = dlsym(RTLD_NEXT, name);
    if (fn == nullptr) {
      errno = ENOSYS;
      return -1;
    }
    real.store(fn, std::memory_order_release);
  }
  BeginCredentialChange();
  const int result = reinterpret_cast<int (*)(Args...)>(fn)(args...);
  const int error = errno;
  EndCredentialChange();
  errno = error;
  return result;
}

}  // namespace
}  // namespace coldheap::shim

#define COLDHEAP_EXPORT extern "C" __attribute__((visibility("default")))

using coldheap::shim::ChangeCredentials;

COLDHEAP_EXPORT int setuid(uid_t uid) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("setuid", real, uid);
}

COLDHEAP_EXPORT int setgid(gid_t gid) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("setgid", real, gid);
}

COLDHEAP_EXPORT int seteuid(uid_t euid) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("seteuid", real, euid);
}

COLDHEAP_EXPORT int setegid(gid_t egid) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("setegid", real, egid);
}

COLDHEAP_EXPORT int setreuid(uid_t ruid, uid_t euid) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("setreuid", real, ruid, euid);
}

COLDHEAP_EXPORT int setregid(gid_t rgid, gid_t egid) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("setregid", real, rgid, egid);
}

COLDHEAP_EXPORT int setresuid(uid_t ruid, uid_t euid, uid_t suid) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("setresuid", real, ruid, euid, suid);
}

COLDHEAP_EXPORT int setresgid(gid_t rgid, gid_t egid, gid_t sgid) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("setresgid", real, rgid, egid, sgid);
}

COLDHEAP_EXPORT int setgroups(size_t size, const gid_t* list) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("setgroups", real, size, list);
}

COLDHEAP_EXPORT int initgroups(const char* user, gid_t group) {
  static std::atomic<void*> real{nullptr};
  return ChangeCredentials("initgroups", real, user, group);
}
