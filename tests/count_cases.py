"""Prints "passed failed" summed over Bazel test.xml files (JUnit XML).

A target that failed without writing test cases (a crash, a timeout) counts
as one failure, so a broken binary can never look green.
"""
import sys
import xml.etree.ElementTree as ET

passed = failed = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        failed += 1
        continue
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    cases = fails = 0
    for suite in suites:
        for case in suite.iter("testcase"):
            if case.get("status") == "notrun":
                continue
            cases += 1
            if case.find("failure") is not None or case.find("error") is not None:
                fails += 1
    if cases == 0:
        bad = root.find(".//failure") is not None or root.find(".//error") is not None
        failed += 1 if bad else 0
        passed += 0 if bad else 1
        continue
    passed += cases - fails
    failed += fails
print(passed, failed)
