// Checks for caller bugs (double free, foreign handle) that cannot be
// reported through a return value. Debug builds (no NDEBUG, as in
// --config=asan) abort with a message; release builds compile them out. Uses
// write(2), never malloc or stdio: it runs inside allocation paths.
#ifndef COLDHEAP_POOL_DEBUG_CHECK_H_
#define COLDHEAP_POOL_DEBUG_CHECK_H_

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace coldheap::pool {

[[noreturn]] inline void DebugCheckFailed(const char* message) {
  static constexpr char kPrefix[] = "coldheap pool: ";
  (void)!write(STDERR_FILENO, kPrefix, sizeof(kPrefix) - 1);
  (void)!write(STDERR_FILENO, message, strlen(message));
  (void)!write(STDERR_FILENO, "\n", 1);
  abort();
}

}  // namespace coldheap::pool

#ifdef NDEBUG
#define ZPOOL_DCHECK(cond, message) \
  do {                              \
  } while (false && (cond))
#else
#define ZPOOL_DCHECK(cond, message)                               \
  do {                                                            \
    if (!(cond)) ::coldheap::pool::DebugCheckFailed(message);     \
  } while (false)
#endif

#endif  // COLDHEAP_POOL_DEBUG_CHECK_H_
