# clip.c - build, test and benchmark.
#
#   make          ./clip_run and build/libclip.a (public header: model/clip.h)
#   make test     the whole test suite: unit, golden end-to-end and CLI tests, then the same
#                 under AddressSanitizer + UBSan, valgrind over the CLI, and every fuzz target
#   make check-fast  only the normal suite (unit, golden end-to-end, CLI), for development
#   make asan     the normal suite, built with -fsanitize=address,undefined ($(BUILD)/asan)
#   make valgrind valgrind memcheck over every clip_run command (tests/valgrind.sh)
#   make fuzz     build the libFuzzer targets (tests/fuzz) and run each FUZZ_SECONDS (60)
#   make demo     classify a bundled sample image with weights/demo.clip
#   make demo-model  retrain the demo model from scratch and measure it (weights/README.md)
#   make bench    benchmarks (bench/README.md)
#   make arm64    ./clip_run-arm64 and the unit tests for aarch64 (cross-built in $(BUILD)/arm64;
#                 `make test` runs them under qemu-aarch64). `make CC=aarch64-linux-gnu-gcc`
#                 is a whole aarch64 build in place; on an ARM board plain `make` is.
#
# Missing system packages are installed by tools/deps.sh (as root) or named in one line.

CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -pthread
# The target architecture is the compiler's, not the build host's: `make CC=aarch64-linux-gnu-gcc`
# builds for ARM on an x86 machine. Each instruction set's kernels live in their own files
# (kernels/*_avx2.c, *_avx512.c, *_neon.c), compiled with that set's flags and only for its
# architecture; the code picks among the compiled ones at run time (kernels/cpu.c).
TARGET := $(shell $(CC) -dumpmachine 2>/dev/null)
ifneq ($(filter x86_64-% amd64-%,$(TARGET)),)
  ARCH := x86_64
else ifneq ($(filter aarch64-% arm64-%,$(TARGET)),)
  ARCH := aarch64
else
  ARCH := $(firstword $(subst -, ,$(TARGET)))
endif
# pkg-config answers for the target: a cross build reads the target's multiarch directory
# (Debian: /usr/lib/aarch64-linux-gnu/pkgconfig), not the build host's.
ifeq ($(origin PKG_CONFIG),undefined)
  ifeq ($(ARCH),$(shell uname -m))
    PKG_CONFIG := pkg-config
  else
    PKG_CONFIG := PKG_CONFIG_LIBDIR=/usr/lib/$(TARGET)/pkgconfig:/usr/share/pkgconfig pkg-config
  endif
endif
# No BLAS header or library is needed to build: kernels/blas_loader.c opens OpenBLAS's
# runtime library (dlopen) only for --gemm openblas.
LDLIBS  += -lsqlite3 -ldl -lm -lpthread
BUILD   ?= build
PYTHON  ?= python3
# Sanitizer variants build the same sources with SANITIZE=address,undefined (see `asan`).
ifneq ($(SANITIZE),)
  CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
  # One exception, in the system's stb headers only (we cannot patch them): on some corrupt
  # progressive JPEGs its bit reader shifts by more than 31 (tests/data/regressions/).
  # x86 and ARM mask the count, so the decoder reads garbage bits and fails or decodes
  # garbage; its bounds checks, which ASan still watches, are unaffected.
  STB_SANITIZE := -fno-sanitize=shift
endif

AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c
# ASIMD (NEON) is part of the aarch64 baseline: the *_neon.c files need no flag. Kernels
# for the optional extensions (dotprod, i8mm: see cpu_features() in kernels/kernels.h)
# carry target attributes on their functions (kernels/quant_neon.c), so the binary stays
# ARMv8.0 and calls them only where the hwcaps say the CPU has the extension.
NEON_FLAGS   :=
# Debian's aarch64 gcc 12.2 crashes (internal compiler error in vect_transform_reduction)
# vectorising a max-of-fabs loop in tests/test_image.c; the tests need no vectorised loops.
TEST_CFLAGS  :=
ifeq ($(ARCH),aarch64)
  TEST_CFLAGS += -fno-tree-loop-vectorize
endif

LIB_SRC := $(sort $(wildcard kernels/*.c model/*.c tokenizer/*.c io/*.c))
ifneq ($(ARCH),x86_64)
  LIB_SRC := $(filter-out %_avx2.c %_avx512.c,$(LIB_SRC))
endif
ifneq ($(ARCH),aarch64)
  LIB_SRC := $(filter-out %_neon.c,$(LIB_SRC))
endif
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
# clip_run: tools/clip_run.c (main, command table), cli_common.c (shared), cmd_*.c (commands)
CLI_SRC := $(sort $(wildcard tools/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
DEPS_OK := $(BUILD)/.deps-build

.PHONY: all lib test-bin test check-fast asan asan-build valgrind fuzz fuzz-build demo bench clean deps \
        arm64 arm64-build
LIB := $(BUILD)/libclip.a
CLI ?= clip_run

all: $(CLI) $(LIB)
lib: $(LIB)
test-bin: $(TEST_BIN)

# Each stamp depends on deps.sh: a checkout whose deps.sh asks for more is checked again.
$(BUILD)/.deps-build: tools/deps.sh
	@sh tools/deps.sh build
	@mkdir -p $(BUILD) && touch $@
$(BUILD)/.deps-test: tools/deps.sh
	@sh tools/deps.sh test
	@mkdir -p $(BUILD) && touch $@
deps: $(DEPS_OK)

$(BUILD)/%_avx2.o: %_avx2.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%_neon.o: %_neon.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(NEON_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/io/stb_image_impl.o: CFLAGS += $(STB_SANITIZE)
# stb_image_write's JPEG bit writer shifts a signed int left past bit 31 on ordinary input
# (its bit buffer, stbiw__jpg_writeBits): the same exemption, the same reason.
$(BUILD)/io/stb_image_write_impl.o: CFLAGS += $(STB_SANITIZE)

$(LIB): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(CLI): $(CLI_OBJ) $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(LIB) | $(BUILD)/.deps-test
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TEST_CFLAGS) -MMD -MP -o $@ $< $(LIB) $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck) $(LDLIBS)

# ---- Tests ------------------------------------------------------------------------------
# tests/run_tests.sh runs the stages it is given and ends with one line "N passed, N failed,
# N skipped"
# summing them all. Sanitized and fuzzing builds are variants of the same sources in their
# own directories: $(BUILD)/asan (gcc, -fsanitize=address,undefined) and $(BUILD)/fuzz
# (clang, -fsanitize=fuzzer,address,undefined; tests/fuzz/fuzz_*.c).
ASAN_BUILD   := $(BUILD)/asan
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
RUN_TESTS     = CLIP_RUN=./$(CLI) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" \
                sh tests/run_tests.sh $(BUILD)

# The test command of the README and of .ci/run: every stage.
test: $(BUILD)/.deps-test $(BUILD)/.deps-fuzz all $(TEST_BIN) asan-build fuzz-build arm64-build
	@$(RUN_TESTS) normal asan valgrind fuzz arm64

check-fast: $(BUILD)/.deps-test all $(TEST_BIN)
	@$(RUN_TESTS) normal

asan-build: $(BUILD)/.deps-test
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CLI=$(ASAN_BUILD)/clip_run OPT=-O1 \
	    SANITIZE=address,undefined all test-bin
asan: $(BUILD)/.deps-test asan-build
	@$(RUN_TESTS) asan

valgrind: $(BUILD)/.deps-fuzz all
	@$(RUN_TESTS) valgrind

$(BUILD)/.deps-fuzz: tools/deps.sh
	@sh tools/deps.sh fuzz
	@mkdir -p $(BUILD) && touch $@
fuzz-build: $(BUILD)/.deps-fuzz
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) \
	    OPT="-O1 -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION" SANITIZE=fuzzer-no-link,address,undefined lib
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libclip.a
	$(FUZZ_CC) -O1 -g -std=c11 -D_GNU_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
	    -fsanitize=fuzzer,address,undefined \
	    -fno-omit-frame-pointer -fno-sanitize-recover=all -o $@ $< $(FUZZ_BUILD)/libclip.a $(LDLIBS)
fuzz: $(BUILD)/.deps-test fuzz-build
	@$(RUN_TESTS) fuzz

# ---- ARM (aarch64) ----------------------------------------------------------------------
# `make arm64` cross-builds clip_run and the unit tests for aarch64 in $(BUILD)/arm64, with
# the CLI as ./clip_run-arm64 (run it under qemu-aarch64, or copy it to a board). Check for
# arm64 comes from Debian's multiarch (tools/deps.sh arm), found through its pkg-config
# directory (PKG_CONFIG above). On an aarch64 machine the same target builds natively.
ARM64_BUILD := $(BUILD)/arm64
ARM64_CLI   := clip_run-arm64
ifeq ($(ARCH),aarch64)
  ARM64_CC  ?= $(CC)
else
  ARM64_CC  ?= aarch64-linux-gnu-gcc
endif
$(BUILD)/.deps-arm:
	@sh tools/deps.sh arm
	@mkdir -p $(BUILD) && touch $@
arm64: $(BUILD)/.deps-arm
	@$(MAKE) --no-print-directory CC="$(ARM64_CC)" BUILD=$(ARM64_BUILD) CLI=$(ARM64_CLI) all test-bin
# For `make test`: where the cross tools cannot be installed, the arm64 stage is skipped
# (and says so in its count); a build that fails with the tools present fails the run.
arm64-build:
	@rm -f $(ARM64_BUILD)/UNAVAILABLE
	@if sh tools/deps.sh arm; then $(MAKE) --no-print-directory arm64; else \
	    mkdir -p $(ARM64_BUILD) && echo "cross tools missing (tools/deps.sh arm)" > $(ARM64_BUILD)/UNAVAILABLE; fi

# The README's first command: zero-shot classification and a text-image score on a
# bundled sample image, with the bundled demo model.
demo: all
	./$(CLI) classify weights/demo.clip tests/data/demo/red_circle.png \
	    -l "red circle" -l "blue square" -l "green triangle" -l "yellow star" \
	    -l "purple circle" -l "red star" --top 3
	./$(CLI) score weights/demo.clip tests/data/demo/red_circle.png "a photo of a red circle."
	./$(CLI) score weights/demo.clip tests/data/demo/red_circle.png "a photo of a blue square."

# Retrain the demo model from scratch with the committed recipe and seed (~18 minutes on 2
# cores, weights/README.md), convert it and measure it as weights/demo.clip is measured:
# clip_run on the bundled samples, PyTorch against clip_run. weights/ is left as it is:
# the new model is $(DEMO_OUT)/demo.clip. TRAIN_ARGS adds options ("--steps 30 --images 2000"
# for a smoke test of the whole chain).
DEMO_OUT ?= $(BUILD)/demo-model
demo-model: all
	@sh tools/deps.sh train
	/usr/bin/python3 tools/train_demo.py --seed 0 --out $(DEMO_OUT) $(TRAIN_ARGS)
	/usr/bin/python3 tools/convert.py $(DEMO_OUT)/demo.pt --config $(DEMO_OUT)/open_clip_config.json \
	    --vocab $(DEMO_OUT)/merges.txt -o $(DEMO_OUT)/demo.clip
	/usr/bin/python3 tools/compare_torch.py --model $(DEMO_OUT)/demo.clip --clip-run ./$(CLI)

# Benchmarks (bench/README.md): hyperfine over clip_run on a ViT-B/32-shaped random-weight
# model; bench-peers also times PyTorch and ONNX Runtime on the same weights, side by side.
.PHONY: bench-peers bench-search bench-pagecache demo-model
$(BUILD)/.deps-bench: tools/deps.sh
	@sh tools/deps.sh bench
	@mkdir -p $(BUILD) && touch $@
bench: $(BUILD)/.deps-bench $(CLI)
	$(PYTHON) bench/run_bench.py --clip-run $(CLI)
bench-peers: $(BUILD)/.deps-bench $(CLI)
	sh bench/peers/deps.sh
	$(PYTHON) bench/run_bench.py --clip-run $(CLI) --peers
bench-search: $(BUILD)/.deps-bench $(CLI)
	$(PYTHON) bench/search_bench.py --clip-run $(CLI)
bench-pagecache: $(BUILD)/.deps-bench $(CLI)
	$(PYTHON) bench/pagecache_bench.py --clip-run $(CLI)

clean:
	rm -rf $(BUILD) $(CLI) $(ARM64_CLI)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)
