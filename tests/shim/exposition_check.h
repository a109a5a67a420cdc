// Checks of Prometheus text exposition (format 0.0.4) for the tests of
// shim/prometheus and `coldheap stat --format=prometheus`: a grammar check
// of our own, and Prometheus's `promtool check metrics`.
#ifndef COLDHEAP_TESTS_SHIM_EXPOSITION_CHECK_H_
#define COLDHEAP_TESTS_SHIM_EXPOSITION_CHECK_H_

#include <string>
#include <vector>

namespace coldheap::exposition {

// What is wrong with `text` by the format's rules (sample and comment line
// syntax; one HELP and TYPE per family, TYPE before its samples; a family's
// samples together; no repeated series; histograms with le buckets that
// ascend, counts that never drop, a +Inf bucket equal to _count and a
// _sum) and by the conventions coldheap follows (HELP and TYPE on every
// family, counters end in _total, every sample has a pid label). Empty when
// all is well.
std::vector<std::string> ExpositionProblems(const std::string& text);

// `promtool check metrics` run on `text`: its exit code and what it printed
// (lint findings included). exit_code is -1, with the reason in output, when
// promtool is not installed (Debian's prometheus package has it;
// third_party/install_deps.sh installs it).
struct PromtoolResult {
  int exit_code;
  std::string output;
};
PromtoolResult Promtool(const std::string& text);

}  // namespace coldheap::exposition

#endif  // COLDHEAP_TESTS_SHIM_EXPOSITION_CHECK_H_
