#!/usr/bin/env bash
# run_pytest.sh SOURCE_DIR LIB PROMPTAD WORK_DIR - the Python package's tests (python/tests, pytest) against the
# build's libpromptad.so and the fixture of make_model.sh. Uses the first python3 with numpy and pytest ($PYTHON,
# python3, /usr/bin/python3); without one the test is skipped (exit 77) unless CI=true. pytest's exit code 5 (no
# test collected) is a failure: the suite must never silently vanish.
set -uo pipefail
src=$1 lib=$2 bin=$3 work=$4
py=""
for cand in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import numpy, pytest' 2>/dev/null; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    msg="no python3 with numpy and pytest (apt-get install python3-numpy python3-pytest)"
    if [ "${CI:-}" = "true" ]; then echo "FAILED: $msg"; exit 1; fi
    echo "SKIPPED: $msg"
    exit 77
fi
export PROMPTAD_LIB=$lib PROMPTAD_BIN=$bin PROMPTAD_TEST_WORK=$work PYTHONPATH="$src/python${PYTHONPATH:+:$PYTHONPATH}"
cd "$work"
"$py" -m pytest -q -p no:cacheprovider "$src/python/tests"
rc=$?
if [ $rc -eq 5 ]; then echo "FAILED: pytest collected no test"; exit 1; fi
exit $rc
