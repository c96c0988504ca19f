# Touchpoint: the two commands (README). A thin layer over CMake and deploy/.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_SECONDS ?= 10
JOBS ?= $(shell nproc)
# Tests mostly wait on timers and sockets: twice the cores keeps them busy.
TEST_JOBS ?= $(shell echo $$(( $$(nproc) * 2 )))

.PHONY: all deps build run stop test test-asan fuzz bench bench-report clean

all: build

deps:
	bash deploy/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	bash deploy/run-local.sh $(abspath $(BUILD))

stop:
	bash deploy/stop-local.sh

# The whole suite, then again built with AddressSanitizer and UBSan (the
# chaos tests a little smaller there: ASan is several times slower; the
# cluster/ re-runs of integration suites on a Redis Cluster only once, in
# the first pass, and so the checks of the deployment files and the README,
# which run none of our C code that a sanitizer would watch), then a short
# fuzz.
test: build
	cd $(BUILD) && ctest -j $(TEST_JOBS) --output-on-failure
	$(MAKE) test-asan
	$(MAKE) fuzz FUZZ_SECONDS=5

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTP_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  CHAOS_EVENTS=3000 CHAOS_REMINDERS=3000 ctest -j $(TEST_JOBS) --output-on-failure \
	  -E '^cluster/|integration/test_deploy_|integration/test_readme_'

# Each libFuzzer target for FUZZ_SECONDS, clang + ASan + UBSan (tests/fuzz/).
fuzz: deps
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: build
	bash bench/ingest/run.sh $(abspath $(BUILD))

# Every bench, one Markdown report (bench/report/REPORT.md); quick sizes.
bench-report: build
	TP_BUILD_DIR=$(abspath $(BUILD)) bash bench/report/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
