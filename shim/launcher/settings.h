// COLDHEAP_* values given to the `coldheap` command as options, checked and
// described by the shim's own code, so the command accepts, rejects and
// explains exactly what the library will.
//
// The library's parser (ParseConfig, shim/config.h) reports a bad value on
// fd 2 instead of returning it: it must not allocate. So ParseSetting runs it
// on a one-entry environment with fd 2 redirected into a pipe, and turns the
// line it wrote, e.g.
//   coldheap: COLDHEAP_COLD_AGE='30x' is not a duration (accepted: ...);
//   using the default 30s
// into the reason "'30x' is not a duration (accepted: ...)". DefaultSetting
// reads the defaults the same way from LogConfig(kDefaultConfig). Launcher
// code only: the redirect is not thread-safe, and this allocates.
#ifndef COLDHEAP_SHIM_LAUNCHER_SETTINGS_H_
#define COLDHEAP_SHIM_LAUNCHER_SETTINGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shim/config.h"

namespace coldheap::launcher {

// The configuration the library would read from an environment holding only
// `name`=`value`. InvalidArgument, with the parser's reason as the message,
// when the parser rejects the value (or does not know `name`).
absl::StatusOr<shim::Config> ParseSetting(absl::string_view name,
                                          absl::string_view value);

// The default of the variable `name` as the library prints it ("30s",
// "zsmalloc", "none"); "" if `name` is not a known variable.
std::string DefaultSetting(absl::string_view name);

}  // namespace coldheap::launcher

#endif  // COLDHEAP_SHIM_LAUNCHER_SETTINGS_H_
