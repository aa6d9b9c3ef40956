#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Sum a meson test log into one closing line, 'N passed, N failed'.

A Criterion binary counts its own test cases (its Synthesis line); any
other test counts as one. A binary that died before its summary (timeout,
crash) counts as one more failure, so a run that tested nothing shows."""
import json
import re
import sys

SYNTH = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| "
                   r"Failing: (\d+) \| Crashing: (\d+)")


def main(path):
    passed = failed = 0
    with open(path) as f:
        for line in f:
            t = json.loads(line)
            out = (t.get("stdout") or "") + (t.get("stderr") or "")
            m = SYNTH.findall(out)
            ok = t["result"] == "OK"
            if m:
                tested, passing, failing, crashing = map(int, m[-1])
                passed += passing
                failed += failing + crashing
                if not ok and failing + crashing == 0:
                    failed += 1
            elif ok:
                passed += 1
            else:
                failed += 1
                print(f"{t['name']}: {t['result']}", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
