# Touchpoint: the two commands (README). A thin layer over CMake and deploy/.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)

.PHONY: all deps build run stop test test-asan bench clean

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

# The whole suite, then again built with AddressSanitizer and UBSan.
test: build
	cd $(BUILD) && ctest -j 2 --output-on-failure
	$(MAKE) test-asan

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTP_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest -j 2 --output-on-failure

bench: build
	bash bench/ingest/run.sh $(abspath $(BUILD))

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
