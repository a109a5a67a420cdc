#include "tests/shim/exposition_check.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace coldheap::exposition {
namespace {

const std::regex kHelp(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) ((?:[^\\\n]|\\[\\n])*))");
const std::regex kType(
    R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
// name{labels} value [timestamp]
const std::regex kSample(
    R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?[0-9]+))?)");
const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)")re");

const std::regex kFloat(R"([-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?)");

bool ParseValue(const std::string& text, double* value) {
  if (text == "+Inf" || text == "-Inf" || text == "NaN") {
    *value = text == "-Inf" ? -INFINITY : INFINITY;
    return true;
  }
  return std::regex_match(text, kFloat) && absl::SimpleAtod(text, value);
}

// The labels `a="1",b="2"` as a map; false on a syntax error, a reserved
// name (__*) or a name given twice.
bool ParseLabels(const std::string& text,
                 std::map<std::string, std::string>* labels) {
  size_t pos = 0;
  while (pos < text.size()) {
    std::smatch m;
    std::string rest = text.substr(pos);
    if (!std::regex_search(rest, m, kLabel,
                           std::regex_constants::match_continuous)) {
      return false;
    }
    if (absl::StartsWith(m[1].str(), "__")) return false;
    if (!labels->emplace(m[1].str(), m[2].str()).second) return false;
    pos += static_cast<size_t>(m.length(0));
    if (pos == text.size()) break;
    if (text[pos] != ',') return false;
    ++pos;  // a trailing comma is allowed
  }
  return true;
}

// The family a sample belongs to, given the families' types so far.
std::string FamilyOf(const std::string& name,
                     const std::map<std::string, std::string>& types) {
  for (absl::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (!absl::EndsWith(name, suffix)) continue;
    std::string base = name.substr(0, name.size() - suffix.size());
    auto it = types.find(base);
    if (it != types.end() &&
        (it->second == "histogram" || it->second == "summary")) {
      return base;
    }
  }
  return name;
}

struct Histogram {
  std::vector<std::pair<double, double>> buckets;  // (le, count), file order
  bool has_sum = false;
  bool has_count = false;
  double count = 0;
};

}  // namespace

std::vector<std::string> ExpositionProblems(const std::string& text) {
  std::vector<std::string> problems;
  auto problem = [&](size_t line, const std::string& what) {
    problems.push_back(absl::StrCat("line ", line, ": ", what));
  };
  if (!text.empty() && text.back() != '\n') problems.push_back("no final newline");
  std::map<std::string, std::string> types;
  std::set<std::string> helps, finished, series;
  std::map<std::string, Histogram> histograms;  // by family and labels sans le
  std::string current;  // family whose samples come now
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string line(lines[i]);
    size_t n = i + 1;
    std::smatch m;
    if (absl::StartsWith(line, "# HELP ")) {
      if (!std::regex_match(line, m, kHelp)) {
        problem(n, "malformed HELP");
      } else if (!helps.insert(m[1].str()).second) {
        problem(n, "second HELP for " + m[1].str());
      }
      continue;
    }
    if (absl::StartsWith(line, "# TYPE ")) {
      if (!std::regex_match(line, m, kType)) {
        problem(n, "malformed TYPE");
        continue;
      }
      std::string family = m[1].str();
      if (types.count(family) || finished.count(family) || current == family) {
        problem(n, "TYPE for " + family + " after its samples or twice");
      }
      types[family] = m[2].str();
      if (m[2].str() == "counter" && !absl::EndsWith(family, "_total")) {
        problem(n, "counter " + family + " does not end in _total");
      }
      if (!helps.count(family)) problem(n, "no HELP before TYPE of " + family);
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;  // a comment
    if (!std::regex_match(line, m, kSample)) {
      problem(n, "not a sample: " + line);
      continue;
    }
    std::string name = m[1].str();
    std::map<std::string, std::string> labels;
    double value;
    if (!ParseLabels(m[2].str(), &labels)) problem(n, "bad labels: " + line);
    if (!ParseValue(m[3].str(), &value)) problem(n, "bad value: " + line);
    if (!labels.count("pid")) problem(n, "no pid label: " + line);
    std::string family = FamilyOf(name, types);
    if (!types.count(family)) problem(n, "no TYPE for " + family);
    if (family != current) {
      if (finished.count(family)) problem(n, family + "'s samples are split");
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    if (!series.insert(absl::StrCat(name, "{", m[2].str(), "}")).second) {
      problem(n, "repeated series: " + line);
    }
    if (types[family] != "histogram") continue;
    std::string le = labels.count("le") ? labels["le"] : "";
    labels.erase("le");
    std::string key = family;
    for (const auto& [k, v] : labels) absl::StrAppend(&key, ",", k, "=", v);
    Histogram& h = histograms[key];
    if (name == family + "_bucket") {
      double bound;
      if (le.empty() || !ParseValue(le, &bound)) {
        problem(n, "bucket without a numeric le: " + line);
        continue;
      }
      h.buckets.emplace_back(bound, value);
    } else if (name == family + "_sum") {
      h.has_sum = true;
    } else if (name == family + "_count") {
      h.has_count = true;
      h.count = value;
    } else {
      problem(n, "histogram sample that is no bucket, sum or count: " + line);
    }
  }
  for (const auto& [key, h] : histograms) {
    for (size_t b = 1; b < h.buckets.size(); ++b) {
      if (h.buckets[b].first <= h.buckets[b - 1].first) {
        problems.push_back(key + ": le does not ascend");
      }
      if (h.buckets[b].second < h.buckets[b - 1].second) {
        problems.push_back(key + ": bucket counts drop");
      }
    }
    if (h.buckets.empty() || !std::isinf(h.buckets.back().first)) {
      problems.push_back(key + ": no +Inf bucket");
    } else if (!h.has_count || h.count != h.buckets.back().second) {
      problems.push_back(key + ": _count is not the +Inf bucket");
    }
    if (!h.has_sum) problems.push_back(key + ": no _sum");
  }
  return problems;
}

PromtoolResult Promtool(const std::string& text) {
  const char* promtool = "/usr/bin/promtool";
  if (access(promtool, X_OK) != 0) {
    return {-1, "promtool is not installed (Debian's prometheus package; "
                "third_party/install_deps.sh installs it)"};
  }
  const char* base = getenv("TEST_TMPDIR");
  std::string dir = base != nullptr ? base : "/tmp";
  std::string input = absl::StrCat(dir, "/promtool-in-", getpid());
  std::string output = absl::StrCat(dir, "/promtool-out-", getpid());
  std::ofstream(input) << text;
  std::string command = absl::StrCat(promtool, " check metrics < '", input,
                                     "' > '", output, "' 2>&1");
  int status = system(command.c_str());
  std::stringstream printed;
  printed << std::ifstream(output).rdbuf();
  unlink(input.c_str());
  unlink(output.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, printed.str()};
}

}  // namespace coldheap::exposition
