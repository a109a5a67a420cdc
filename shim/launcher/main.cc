// coldheap: the command users put on PATH.
//   coldheap run [OPTIONS] [--] PROGRAM [ARGS...]   shim/launcher/run.h
//   coldheap stat [--watch [--interval D]] PID      shim/launcher/stat.h
//   coldheap help [COMMAND], coldheap --help
// The shim itself is LD_PRELOAD=libcoldheap.so PROGRAM; this program only
// prepares that and reads what the shim reports. It is an ordinary program:
// it allocates, and checks option values with the shim's own parser
// (shim/launcher/settings.h).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "shim/launcher/common.h"
#include "shim/launcher/run.h"
#include "shim/launcher/stat.h"

namespace coldheap::launcher {
namespace {

constexpr char kUsage[] =
    "Usage: coldheap COMMAND [ARGS...]\n"
    "\n"
    "coldheap compresses the cold heap pages of one program in memory, as\n"
    "zswap does for the whole system, without swap or root: it runs the\n"
    "program with libcoldheap.so preloaded.\n"
    "\n"
    "Commands:\n"
    "  run [OPTIONS] [--] PROGRAM [ARGS...]   run PROGRAM under coldheap\n"
    "  stat [--watch [--interval D]] PID      show the statistics of a\n"
    "                                         process running under coldheap\n"
    "  help [COMMAND]                         print this text, or COMMAND's\n"
    "\n"
    "'coldheap help COMMAND' or 'coldheap COMMAND --help' describes a command.\n"
    "Every setting is a COLDHEAP_* environment variable the library reads at\n"
    "start; COLDHEAP_LOG=info prints the settings in effect.\n"
    "\n"
    "Examples:\n"
    "  coldheap run --cold-age 30s --target 60% -- ./server --port 8080\n"
    "  coldheap stat 4242\n"
    "  coldheap stat --watch 4242\n";

constexpr absl::string_view kCommands = "run, stat, help";

int Help(const std::vector<std::string>& args) {
  if (args.empty()) {
    fputs(kUsage, stdout);
    return kExitOk;
  }
  if (args.size() > 1) {
    return ReportError(kExitUsage, "help: one command at most, e.g. "
                                   "'coldheap help run'");
  }
  if (args[0] == "run") {
    fputs(RunUsage().c_str(), stdout);
    return kExitOk;
  }
  if (args[0] == "stat") {
    fputs(StatUsage().c_str(), stdout);
    return kExitOk;
  }
  return ReportError(kExitUsage, absl::StrCat("help: unknown command '",
                                              args[0], "' (commands: ",
                                              kCommands, ")"));
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    fputs(kUsage, stderr);
    return kExitUsage;
  }
  std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "run") return RunCommand(args, argv[0]);
  if (command == "stat") return StatCommand(args);
  if (command == "help") return Help(args);
  if (command == "-h" || command == "--help") return Help({});
  if (!command.empty() && command[0] == '-') {
    return ReportError(kExitUsage,
                       absl::StrCat("unknown option '", command,
                                    "' (see 'coldheap --help')"));
  }
  return ReportError(kExitUsage,
                     absl::StrCat("unknown command '", command, "' (commands: ",
                                  kCommands, "; see 'coldheap --help')"));
}

}  // namespace
}  // namespace coldheap::launcher

int main(int argc, char** argv) {
  return coldheap::launcher::Main(argc, argv);
}
