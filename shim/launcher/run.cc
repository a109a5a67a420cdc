#include "shim/launcher/run.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "shim/launcher/common.h"
#include "shim/launcher/settings.h"

namespace coldheap::launcher {
namespace {

// A `coldheap run` option and the variable it sets.
struct RunOption {
  absl::string_view flag;
  absl::string_view variable;
  absl::string_view operand;  // in the usage text
  absl::string_view example;  // for "needs a value, e.g. ..."
  absl::string_view help;
  // Non-empty: the value comes only after '=' ("--dense=zstd:9"); the flag
  // alone means this value, so "--dense PROGRAM" never takes PROGRAM.
  absl::string_view implied = "";
};

constexpr RunOption kRunOptions[] = {
    {"--cold-age", "COLDHEAP_COLD_AGE", "D", "30s",
     "compress a page left untouched this long; 0 compresses every resident "
     "page at each scan"},
    {"--target", "COLDHEAP_TARGET", "SIZE|P%", "512M",
     "budget for resident heap + pool: a size (512M, 4G) or a percentage of "
     "the heap (60%)"},
    {"--zpool", "COLDHEAP_ZPOOL", "NAME", "zsmalloc",
     "the pool that stores compressed pages: zsmalloc or zbud"},
    {"--compressor", "COLDHEAP_COMPRESSOR", "NAME", "lz4", "lz4 or zstd"},
    {"--scan-interval", "COLDHEAP_SCAN_INTERVAL", "D", "1s",
     "time between two scans for cold pages, and between two updates of "
     "what 'coldheap stat' shows"},
    {"--stats", "COLDHEAP_STATS", "FILE", "/tmp/run-%p.stats",
     "also write the statistics to FILE, each scan and at exit (%p: the "
     "process id), or to stderr at exit with 'stderr'; prometheus:FILE "
     "writes Prometheus's exposition format, prometheus:DIR/ writes "
     "DIR/coldheap_PID.prom for node_exporter's textfile collector"},
    {"--dense", "COLDHEAP_DENSE", "[=zstd[:LEVEL]|off]", "zstd:9",
     "recompress pages that stay long in the pool with zstd at LEVEL (1 to "
     "19) and a dictionary trained on the program's pages; --dense alone is "
     "zstd at the default level",
     "zstd"},
};

constexpr absl::string_view kRunHelpHint = "see 'coldheap run --help'";

const RunOption* FindRunOption(absl::string_view flag) {
  for (const RunOption& option : kRunOptions) {
    if (option.flag == flag) return &option;
  }
  return nullptr;
}

// `text` wrapped at `width` columns, every line after the first indented
// by `indent` spaces (the first is already at `indent`).
std::string Wrap(absl::string_view text, size_t indent, size_t width) {
  std::string out;
  size_t column = indent;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (column > indent && column + 1 + word.size() > width) {
      absl::StrAppend(&out, "\n", std::string(indent, ' '));
      column = indent;
    } else if (column > indent) {
      out += ' ';
      ++column;
    }
    absl::StrAppend(&out, word);
    column += word.size();
  }
  return out;
}

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string RealPath(const std::string& path) {
  char buffer[PATH_MAX];
  return realpath(path.c_str(), buffer) != nullptr ? std::string(buffer)
                                                   : path;
}

std::string Dirname(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return ".";
  return slash == 0 ? "/" : std::string(path.substr(0, slash));
}

// The launcher's executable, symlinks resolved; "" if unknown.
std::string SelfExe() {
  char buffer[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
}

// Where FindLibrary looks, in order, without $COLDHEAP_LIB.
std::vector<std::string> LibraryCandidates(const char* argv0) {
  std::vector<std::string> exes;
  std::string self = SelfExe();
  if (!self.empty()) exes.push_back(self);
  if (argv0 != nullptr && strchr(argv0, '/') != nullptr) {
    std::string invoked = argv0;
    if (invoked.front() != '/') {
      char cwd[PATH_MAX];
      if (getcwd(cwd, sizeof(cwd)) != nullptr) {
        invoked = absl::StrCat(cwd, "/", invoked);
      }
    }
    if (invoked != self) exes.push_back(invoked);
  }
  std::vector<std::string> candidates;
  for (const std::string& exe : exes) {
    std::string dir = Dirname(exe);
    candidates.push_back(absl::StrCat(dir, "/", kLibraryName));
    // Bazel's output tree: bazel-bin/shim/launcher/coldheap beside
    // bazel-bin/shim/libcoldheap.so (its runfiles tree may not exist yet
    // when a test starts it).
    candidates.push_back(absl::StrCat(dir, "/../", kLibraryName));
    candidates.push_back(absl::StrCat(dir, "/../lib/coldheap/", kLibraryName));
    candidates.push_back(absl::StrCat(dir, "/../lib/", kLibraryName));
    candidates.push_back(
        absl::StrCat(exe, ".runfiles/coldheap/shim/", kLibraryName));
  }
  if (const char* runfiles = getenv("RUNFILES_DIR");
      runfiles != nullptr && *runfiles != '\0') {
    candidates.push_back(
        absl::StrCat(runfiles, "/coldheap/shim/", kLibraryName));
  }
  return candidates;
}

// A path ld.so can take from LD_PRELOAD: it splits at spaces and colons.
absl::StatusOr<std::string> Preloadable(const std::string& path) {
  std::string real = RealPath(path);
  if (real.find_first_of(" :") != std::string::npos) {
    return absl::FailedPreconditionError(absl::StrCat(
        real, " cannot go into LD_PRELOAD (it has a space or a "
        "colon); install ", kLibraryName, " elsewhere and set COLDHEAP_LIB"));
  }
  return real;
}

// The message for a failed execvp of `program`, and its exit code.
int ReportExecFailure(const std::string& program, int error) {
  int code = error == ENOENT ? kExitNotFound : kExitCannotRun;
  if (error == ENOENT && program.find('/') == std::string::npos) {
    const char* path = getenv("PATH");
    return ReportError(
        code, absl::StrCat("'", program, "' not found on PATH (",
                           path != nullptr ? path : "unset", ")"));
  }
  return ReportError(code, absl::StrCat("cannot run '", program,
                                        "': ", strerror(error)));
}

}  // namespace

absl::StatusOr<RunRequest> ParseRunArgs(const std::vector<std::string>& args) {
  RunRequest request;
  bool saw_separator = false;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "--") {
      saw_separator = true;
      ++i;
      break;
    }
    if (word == "-h" || word == "--help") {
      request.help = true;
      return request;
    }
    if (word.size() < 2 || word[0] != '-') break;  // PROGRAM
    absl::string_view flag = word;
    absl::string_view inline_value;
    bool has_inline_value = false;
    if (size_t equals = flag.find('='); equals != absl::string_view::npos) {
      inline_value = flag.substr(equals + 1);
      flag = flag.substr(0, equals);
      has_inline_value = true;
    }
    const RunOption* option = FindRunOption(flag);
    if (option == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "run: unknown option '", flag, "' (", kRunHelpHint, ")"));
    }
    std::string value;
    if (has_inline_value) {
      value = std::string(inline_value);
    } else if (!option->implied.empty()) {
      value = std::string(option->implied);
    } else if (i + 1 < args.size() && args[i + 1] != "--") {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("run: ", option->flag, " needs a value, e.g. ",
                       option->flag, " ", option->example));
    }
    absl::StatusOr<shim::Config> checked =
        ParseSetting(option->variable, value);
    if (!checked.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "run: ", option->flag, " ", checked.status().message()));
    }
    request.settings.emplace_back(std::string(option->variable), value);
  }
  request.program.assign(args.begin() + static_cast<ptrdiff_t>(i), args.end());
  if (request.program.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "run: no program ", saw_separator ? "after '--'" : "to run",
        " (usage: coldheap run [OPTIONS] -- PROGRAM [ARGS...]; ", kRunHelpHint,
        ")"));
  }
  return request;
}

std::string RunUsage() {
  constexpr size_t kIndent = 22;
  constexpr size_t kWidth = 79;
  std::string options;
  for (const RunOption& option : kRunOptions) {
    std::string head = absl::StrCat("  ", option.flag,
                                    option.implied.empty() ? " " : "",
                                    option.operand);
    // A head too long for the column puts the help on the next line.
    if (head.size() + 1 > kIndent) {
      absl::StrAppend(&head, "\n", std::string(kIndent, ' '));
    } else {
      head.resize(kIndent, ' ');
    }
    std::string help = absl::StrCat(option.help, " [", option.variable);
    std::string default_value = DefaultSetting(option.variable);
    if (!default_value.empty()) {
      absl::StrAppend(&help, ", default ", default_value);
    }
    absl::StrAppend(&options, head, Wrap(absl::StrCat(help, "]"), kIndent, kWidth),
                    "\n");
  }
  absl::StrAppend(&options, "  -h, --help", std::string(kIndent - 12, ' '),
                  "print this text\n");
  return absl::StrCat(
      "Usage: coldheap run [OPTIONS] [--] PROGRAM [ARGS...]\n"
      "\n"
      "Runs PROGRAM with libcoldheap.so preloaded: heap pages it leaves\n"
      "untouched for the cold age are compressed into an in-memory pool and\n"
      "restored on their next touch. The library is added to any LD_PRELOAD\n"
      "already set. Each option sets the COLDHEAP_* variable shown with it;\n"
      "settings without an option (COLDHEAP_LOG, COLDHEAP_MAX_POOL_PERCENT,\n"
      "...) are read from the environment as usual.\n"
      "\n"
      "PYTHONMALLOC=malloc is set too unless PYTHONMALLOC is already set:\n"
      "CPython's own allocator keeps small objects in arenas it maps itself,\n"
      "which coldheap never sees.\n"
      "\n"
      "Options:\n",
      options,
      "\n"
      "D is a duration: numbers with ms, s, m or h (500ms, 30s, 1h30m).\n"
      "SIZE is a whole number of bytes with an optional K, M, G or T\n"
      "(binary: 1K = 1024). --opt=VALUE works too.\n"
      "\n"
      "libcoldheap.so is taken from $COLDHEAP_LIB (the file or its\n"
      "directory), else from beside this program, its ../lib/coldheap/ or\n"
      "../lib/, or its Bazel runfiles.\n"
      "\n"
      "While PROGRAM runs, 'coldheap stat PID' shows its statistics; PID is\n"
      "the launcher's own, as PROGRAM replaces it.\n"
      "\n"
      "Exit status: PROGRAM's; 2 for a bad command line, 1 if libcoldheap.so\n"
      "is not found, 126 if PROGRAM cannot be run, 127 if it is not found.\n");
}

std::string ComposePreload(absl::string_view existing,
                           absl::string_view library) {
  bool spaces_only = existing.find(' ') != absl::string_view::npos &&
                     existing.find(':') == absl::string_view::npos;
  std::vector<absl::string_view> objects;
  for (absl::string_view object :
       absl::StrSplit(existing, absl::ByAnyChar(" :"), absl::SkipEmpty())) {
    absl::string_view base = object.substr(object.rfind('/') + 1);
    if (base != kLibraryName) objects.push_back(object);
  }
  objects.push_back(library);
  return absl::StrJoin(objects, spaces_only ? " " : ":");
}

absl::StatusOr<std::string> FindLibrary(const char* argv0) {
  if (const char* given = getenv("COLDHEAP_LIB");
      given != nullptr && *given != '\0') {
    std::string path = given;
    if (IsDirectory(path)) path = absl::StrCat(path, "/", kLibraryName);
    if (!IsFile(path)) {
      return absl::NotFoundError(
          absl::StrCat("COLDHEAP_LIB='", given, "' is not ", kLibraryName,
                       " nor a directory holding it"));
    }
    return Preloadable(path);
  }
  std::vector<std::string> candidates = LibraryCandidates(argv0);
  for (const std::string& candidate : candidates) {
    if (IsFile(candidate)) return Preloadable(candidate);
  }
  return absl::NotFoundError(absl::StrCat(
      "cannot find ", kLibraryName, " (looked for ",
      absl::StrJoin(candidates, ", "), "); set COLDHEAP_LIB to its path"));
}

int RunCommand(const std::vector<std::string>& args, const char* argv0) {
  absl::StatusOr<RunRequest> request = ParseRunArgs(args);
  if (!request.ok()) return ReportError(kExitUsage, request.status().message());
  if (request->help) {
    fputs(RunUsage().c_str(), stdout);
    return kExitOk;
  }
  absl::StatusOr<std::string> library = FindLibrary(argv0);
  if (!library.ok()) return ReportError(kExitFailure, library.status().message());

  const char* existing = getenv("LD_PRELOAD");
  std::string preload =
      ComposePreload(existing != nullptr ? existing : "", *library);
  setenv("LD_PRELOAD", preload.c_str(), 1);
  for (const auto& [name, value] : request->settings) {
    setenv(name.c_str(), value.c_str(), 1);
  }
  // The library does not know this variable and would warn about it.
  unsetenv("COLDHEAP_LIB");
  // CPython's pymalloc takes its small objects (512 bytes and under: most
  // of a Python heap) from 1 MiB arenas it maps itself, where the shim never
  // sees them; with malloc they are jemalloc's, in the region. It costs
  // Python some speed (README, "Python"); a value the user set is kept.
  setenv("PYTHONMALLOC", "malloc", /*overwrite=*/0);

  std::vector<char*> argv;
  for (std::string& word : request->program) argv.push_back(word.data());
  argv.push_back(nullptr);
  fflush(stdout);
  execvp(argv[0], argv.data());
  return ReportExecFailure(request->program[0], errno);
}

}  // namespace coldheap::launcher
