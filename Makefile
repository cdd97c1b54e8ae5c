# Makefile: builds the GLA / Mamba trainers, the dev/ kernel harnesses, the CPU and GPU tests and the
# data tools, and runs them (`make test`). Every source list comes from $(wildcard ...), so a file that
# does not exist yet is simply not built: the build never fails because a piece has not landed.
#
#   make [all]            everything that has a source here (trainers, dev/, tests, data/bpe)
#   make train_gla        one trainer (also train_mamba)
#   make dev              every dev/<name>.cu -> dev/<name>
#   make test             build what the tests need (keep going past a broken file), run test/run_tests.sh
#   make asan             CPU tests under -fsanitize=address,undefined
#   make sanitize         GPU tests under compute-sanitizer memcheck, racecheck, initcheck (needs a GPU)
#   make clean
#
# Knobs: GPU_ARCH=90 (default: lowest compute capability that nvidia-smi reports, 90 without a GPU;
# 90a works too), DEBUG=1 (-G -g -O0), USE_CUDNN=0/1 and USE_NCCL=0/1 (default: on when the header
# and the library are both found), CUDA_HOME=/usr/local/cuda, NVCC=..., CC=gcc.

SHELL := /bin/bash
.DEFAULT_GOAL := all
.SUFFIXES:
.DELETE_ON_ERROR:

# ---------------------------------------------------------------------------------------------------
# toolchain and architecture

NVCC_IN_PATH := $(shell command -v nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(wildcard /usr/local/cuda/bin/nvcc),/usr/local/cuda,$(patsubst %/bin/nvcc,%,$(NVCC_IN_PATH)))
NVCC ?= $(if $(wildcard $(CUDA_HOME)/bin/nvcc),$(CUDA_HOME)/bin/nvcc,nvcc)
ifeq ($(origin CC),default)
  CC := gcc
endif
CLANG ?= clang

# llm.c lost its arch detection to a missing $(shell ...) and silently built for nvcc's default
# (sm_75 on CUDA 13); here the query is filtered to "M.m" lines so a failing nvidia-smi cannot
# leak an error message into the flags.
ifeq ($(origin GPU_ARCH),undefined)
  GPU_ARCH := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null \
                | grep -E '^[0-9]+\.[0-9]+$$' | sort -n | head -n1 | tr -d '.')
  ifeq ($(GPU_ARCH),)
    GPU_ARCH := 90
  endif
endif

# ---------------------------------------------------------------------------------------------------
# optional libraries: found by looking for the header AND the linkable .so (not via dpkg)

SEARCH_INC := $(CUDA_HOME)/include /usr/include /usr/include/x86_64-linux-gnu /usr/local/include
SEARCH_LIB := $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib $(CUDA_HOME)/targets/x86_64-linux/lib \
              /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib
find_header = $(firstword $(wildcard $(addsuffix /$(1),$(SEARCH_INC))))
find_lib    = $(firstword $(wildcard $(addsuffix /lib$(1).so,$(SEARCH_LIB))))
# -I / -L for a found file, except the compilers' own default directories
inc_flag = $(if $(filter-out /usr/include/ $(CUDA_HOME)/include/,$(dir $(1))),-I$(patsubst %/,%,$(dir $(1))))
lib_flag = $(if $(filter-out /usr/lib/x86_64-linux-gnu/ $(CUDA_HOME)/lib64/,$(dir $(1))),-L$(patsubst %/,%,$(dir $(1))))

CUDNN_H   := $(call find_header,cudnn.h)
CUDNN_LIB := $(call find_lib,cudnn)
NCCL_H    := $(call find_header,nccl.h)
NCCL_LIB  := $(call find_lib,nccl)
CUDNN_FOUND := $(if $(and $(CUDNN_H),$(CUDNN_LIB)),1,0)
NCCL_FOUND  := $(if $(and $(NCCL_H),$(NCCL_LIB)),1,0)
USE_CUDNN ?= $(CUDNN_FOUND)
USE_NCCL  ?= $(NCCL_FOUND)

# ---------------------------------------------------------------------------------------------------
# flags

COMMON_H := $(wildcard common/*.h common/*.cuh)
TEST_H   := $(wildcard test/*.h)
DEV_H    := $(wildcard dev/*.h)

CFLAGS_BASE := -std=c11 -Wall -Wextra -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64 -Icommon -Itest
CFLAGS ?= -O2
LDLIBS_C := -lm -lpthread

ifeq ($(DEBUG),1)
  NVCC_OPT := -G -g -O0
else
  NVCC_OPT := -O3 -lineinfo
endif
NVCC_FLAGS := $(NVCC_OPT) -std=c++17 -gencode arch=compute_$(GPU_ARCH),code=sm_$(GPU_ARCH) \
              -Xcompiler -Wall -Icommon -Itest -Idev $(NVCC_EXTRA)
# --as-needed: an auto-detected library that no code calls does not become a runtime dependency
NVCC_LDLIBS := -Xlinker --as-needed -lcublasLt -lcublas

ifeq ($(USE_CUDNN),1)
  ifeq ($(CUDNN_FOUND),0)
    $(error USE_CUDNN=1 but cudnn.h / libcudnn.so were not found under $(SEARCH_INC) / $(SEARCH_LIB))
  endif
  NVCC_FLAGS  += -DUSE_CUDNN $(call inc_flag,$(CUDNN_H))
  NVCC_LDLIBS += $(call lib_flag,$(CUDNN_LIB)) -lcudnn
endif
ifeq ($(USE_NCCL),1)
  ifeq ($(NCCL_FOUND),0)
    $(error USE_NCCL=1 but nccl.h / libnccl.so were not found under $(SEARCH_INC) / $(SEARCH_LIB))
  endif
  NVCC_FLAGS  += -DUSE_NCCL $(call inc_flag,$(NCCL_H))
  NVCC_LDLIBS += $(call lib_flag,$(NCCL_LIB)) -lnccl
endif
NVCC_LDLIBS += -lpthread -lm

yesno = $(if $(filter 1,$(1)),yes,no)
ifeq ($(MAKELEVEL),0)
  ifeq ($(filter clean,$(MAKECMDGOALS)),)
    $(info build: nvcc=$(NVCC) arch=sm_$(GPU_ARCH) cuDNN=$(call yesno,$(USE_CUDNN)) NCCL=$(call yesno,$(USE_NCCL)) debug=$(call yesno,$(DEBUG)))
  endif
endif

# ---------------------------------------------------------------------------------------------------
# what exists

TRAINERS  := $(patsubst %.cu,%,$(wildcard train_gla.cu train_mamba.cu))
DEV_BINS  := $(patsubst %.cu,%,$(wildcard dev/*.cu))
CPU_TESTS := $(patsubst %.c,%,$(wildcard test/test_*.c))
GPU_TESTS := $(patsubst %.cu,%,$(wildcard test/test_*.cu))
DATA_BINS := $(patsubst %.c,%,$(wildcard data/bpe.c))
FUZZ_SRCS := $(wildcard test/fuzz_*.c)
# libFuzzer needs clang + compiler-rt; probed only when there is something to fuzz. UBSan must not
# recover in the fuzzers: a report that only prints would not stop libFuzzer or fail the run.
ifneq ($(FUZZ_SRCS),)
  FUZZ_OK := $(shell echo 'int LLVMFuzzerTestOneInput(const char* d, unsigned long n) { (void)d; (void)n; return 0; }' \
               | $(CLANG) -x c -fsanitize=fuzzer - -o /tmp/.fuzzprobe.$$$$ >/dev/null 2>&1 && echo 1; rm -f /tmp/.fuzzprobe.$$$$)
endif
FUZZ_BINS := $(if $(FUZZ_OK),$(patsubst %.c,%,$(FUZZ_SRCS)))
ASAN_DIR  := build/asan
ASAN_BINS := $(patsubst test/%,$(ASAN_DIR)/%,$(CPU_TESTS))

.PHONY: all dev test test-bins asan sanitize fuzz clean

all: $(TRAINERS) $(DEV_BINS) $(CPU_TESTS) $(GPU_TESTS) $(DATA_BINS)
dev: $(DEV_BINS)
fuzz: $(FUZZ_BINS)

# ---------------------------------------------------------------------------------------------------
# rules (single translation unit per binary; every binary depends on all shared headers). Each recipe
# first deletes its target: a failed compile must not leave an old binary behind to be tested.

train_gla: train_gla.cu $(COMMON_H)
	@rm -f $@
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(NVCC_LDLIBS)
train_mamba: train_mamba.cu $(COMMON_H)
	@rm -f $@
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(NVCC_LDLIBS)

$(DEV_BINS): dev/%: dev/%.cu $(COMMON_H) $(TEST_H) $(DEV_H)
	@rm -f $@
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(NVCC_LDLIBS)

$(GPU_TESTS): test/%: test/%.cu $(COMMON_H) $(TEST_H)
	@rm -f $@
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(NVCC_LDLIBS)
# the model tests compile the trainers' model code into themselves
test/test_gla: train_gla.cu
test/test_mamba: train_mamba.cu

$(CPU_TESTS): test/%: test/%.c $(COMMON_H) $(TEST_H)
	@rm -f $@
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $< -o $@ $(LDLIBS_C)

$(DATA_BINS): data/%: data/%.c $(COMMON_H)
	@rm -f $@
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $< -o $@ $(LDLIBS_C)

$(ASAN_BINS): $(ASAN_DIR)/%: test/%.c $(COMMON_H) $(TEST_H)
	@mkdir -p $(ASAN_DIR)
	$(CC) $(CFLAGS_BASE) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	    -fno-sanitize-recover=undefined $< -o $@ $(LDLIBS_C)

$(FUZZ_BINS): test/%: test/%.c $(COMMON_H) $(TEST_H)
	$(CLANG) $(CFLAGS_BASE) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    $< -o $@ $(LDLIBS_C)

# ---------------------------------------------------------------------------------------------------
# test entry points

test-bins: $(TRAINERS) $(DEV_BINS) $(CPU_TESTS) $(GPU_TESTS) $(DATA_BINS) $(FUZZ_BINS)

# -k: one helper's broken file must not hide everybody else's results; run_tests.sh counts a
# binary that failed to build as a failure.
test:
	@$(MAKE) --no-print-directory -k test-bins || echo "warning: some binaries failed to build; they count as failures below"
	@bash test/run_tests.sh

asan: $(ASAN_BINS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	    bash test/run_tests.sh --cpu-only --cpu-bindir $(ASAN_DIR)

COMPUTE_SANITIZER ?= $(firstword $(shell command -v compute-sanitizer 2>/dev/null) \
                       $(wildcard $(CUDA_HOME)/bin/compute-sanitizer $(CUDA_HOME)/compute-sanitizer/compute-sanitizer))
# SANITIZE_TOOLS picks the tools (e.g. `make sanitize SANITIZE_TOOLS=memcheck`); test/sanitize.sh runs every
# GPU test program (each model-test case alone) and a short run of each trainer under each, SANITIZE_JOBS at a
# time (default: the CPUs);
# TEST_TIMEOUT (seconds per job, default 900) bounds each; TEST_ONLY picks programs. racecheck and initcheck
# run with MATMUL_SIMPLE=1 and NO_CUDNN=1 (common/matmul.cuh and cudnn_ops.cuh say why): they check this
# project's kernels; memcheck runs the production cuBLASLt path and the cuDNN versions.
SANITIZE_TOOLS ?= memcheck racecheck initcheck
sanitize: $(DEV_BINS) $(GPU_TESTS) $(TRAINERS)
	@if [ -z "$(COMPUTE_SANITIZER)" ]; then echo "compute-sanitizer not found (PATH, $(CUDA_HOME))"; exit 1; fi
	COMPUTE_SANITIZER=$(COMPUTE_SANITIZER) bash test/sanitize.sh $(SANITIZE_TOOLS)

clean:
	rm -f train_gla train_mamba $(DEV_BINS) $(CPU_TESTS) $(GPU_TESTS) $(DATA_BINS) \
	      $(patsubst %.c,%,$(FUZZ_SRCS)) *.o common/*.o dev/*.o test/*.o
	rm -rf build
