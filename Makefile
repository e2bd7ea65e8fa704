# Thin wrapper over CMake. `make demo` and `make test` are the two set-up commands.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test test-asan test-werror test-cuda demo bench clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

# Tests run two at a time on CI's 2 cores: OpenMP threads sleep instead of spinning at
# barriers there (spinning against a busy sibling process slows tests by 10x or more).
TEST_ENV = OMP_WAIT_POLICY=passive

test: build
	@cd $(BUILD) && $(TEST_ENV) ctest --output-on-failure -j $(JOBS)

# The CUDA tests (on a machine with a GPU; elsewhere they report a skip and pass).
test-cuda: build
	@cd $(BUILD) && ctest --output-on-failure -R cuda

# Warnings as errors (what CI builds with).
test-werror: deps
	@cmake -S . -B build-werror -DWICK_WERROR=ON >/dev/null
	@cmake --build build-werror -j $(JOBS)

# All tests once under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWICK_SANITIZE=ON -DWICK_CUDA=OFF >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && $(TEST_ENV) ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 WICK_ASAN=1 ctest --output-on-failure -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)/wick

bench: build
	@bash scripts/bench.sh $(BUILD)

clean:
	rm -rf build build-asan build-werror
