// Failures on purpose, for tests: the test build's os:: layer asks the
// injector before each kernel call whether to fail it, and with which errno.
// Compiled only with COLDHEAP_FAULT_INJECTION (bazel --config=faultinject);
// the release library has neither this code nor its variable.
//
//   COLDHEAP_TEST_FAULT=RULE[;RULE...]
//   RULE = SITE:ERRNO:WHEN
//   SITE   an os::SiteName ("move", "copy", "pool_map", "file_write", ...),
//          or "*" for every site
//   ERRNO  a name (ENOMEM, EAGAIN, EBUSY, EINTR, ENOSPC, EIO, EMFILE, ...)
//          or a number
//   WHEN   N     the Nth call of that site only (1-based)
//          N+    every call from the Nth on
//          1/K   each call with probability 1/K (a hash of the site and the
//                call's number: the same calls fail in every run)
//
// Calls are counted per site, per process: a forked child inherits the
// parent's counts, so "thread_create:EAGAIN:4" in a process whose start made
// three threads fails the first thread each forked child makes.
//
// Allocation-free: the variable is read with getenv and parsed into fixed
// arrays on first use, so Check is safe in the fault handler.
#ifndef COLDHEAP_SHIM_FAULT_INJECTOR_H_
#define COLDHEAP_SHIM_FAULT_INJECTOR_H_

#include <cstdint>

#include "shim/os.h"

namespace coldheap::os::fault_injection {

// Counts a call of `site`: the errno to fail it with, or 0 to make it.
int Check(Site site);

// Calls failed on purpose so far.
uint64_t InjectedCount();

}  // namespace coldheap::os::fault_injection

#endif  // COLDHEAP_SHIM_FAULT_INJECTOR_H_
