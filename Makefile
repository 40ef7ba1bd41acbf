# clip.c - build, test and benchmark.
#
#   make          ./clip_run and build/libclip.a (public header: model/clip.h)
#   make test     the whole test suite (unit, golden end-to-end, CLI)
#   make demo     classify a bundled sample image with weights/demo.clip
#   make bench    benchmarks (bench/README.md)
#
# Missing system packages are installed by tools/deps.sh (as root) or named in one line.

CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -pthread
CFLAGS  += $(shell pkg-config --cflags openblas 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lm -lpthread
BUILD   ?= build
PYTHON  ?= python3

ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
  AVX2_FLAGS   := -mavx2 -mfma -mf16c
  AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c
else
  AVX2_FLAGS   :=
  AVX512_FLAGS :=
endif

LIB_SRC := $(sort $(wildcard kernels/*.c model/*.c tokenizer/*.c io/*.c))
ifneq ($(ARCH),x86_64)
  LIB_SRC := $(filter-out %_avx2.c %_avx512.c,$(LIB_SRC))
endif
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
DEPS_OK := $(BUILD)/.deps-build

.PHONY: all test demo bench clean deps
LIB := $(BUILD)/libclip.a
CLI ?= clip_run

all: $(CLI) $(LIB)

$(BUILD)/.deps-build:
	@sh tools/deps.sh build
	@mkdir -p $(BUILD) && touch $@
$(BUILD)/.deps-test:
	@sh tools/deps.sh test
	@mkdir -p $(BUILD) && touch $@
deps: $(DEPS_OK)

$(BUILD)/%_avx2.o: %_avx2.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(CLI): $(BUILD)/tools/clip_run.o $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(LIB) | $(BUILD)/.deps-test
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(LIB) $(shell pkg-config --libs check 2>/dev/null || echo -lcheck) $(LDLIBS)

# The test command of the README and of .ci/run.
test: $(BUILD)/.deps-test all $(TEST_BIN)
	@CLIP_RUN=./$(CLI) sh tests/run_tests.sh $(BUILD)

# The README's first command: zero-shot classification and a text-image score on a
# bundled sample image, with the bundled demo model.
demo: all
	./$(CLI) classify weights/demo.clip tests/data/demo/red_circle.png \
	    -l "red circle" -l "blue square" -l "green triangle" -l "yellow star" \
	    -l "purple circle" -l "red star" --top 3
	./$(CLI) score weights/demo.clip tests/data/demo/red_circle.png "a photo of a red circle."
	./$(CLI) score weights/demo.clip tests/data/demo/red_circle.png "a photo of a blue square."

clean:
	rm -rf $(BUILD) $(CLI)

-include $(LIB_OBJ:.o=.d) $(BUILD)/tools/clip_run.d $(TEST_BIN:=.d)
