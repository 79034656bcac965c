#!/usr/bin/env bash
# The GPU benchmarks of BENCHMARKS.md in one command, for the H100 machine (JAX + PyTorch, no
# TensorFlow, no Keras, no network).
#
#   here, once (needs pip's package index; writes the git-ignored .whl/):
#       bash benchmarks/run_gpu.sh prepare
#   on the GPU machine (device tool: carry [".whl"]):
#       bash benchmarks/run_gpu.sh            # torch reference, then Keras/JAX bf16, then fp32
#       bash benchmarks/run_gpu.sh torch      # only the PyTorch reference
#       bash benchmarks/run_gpu.sh keras      # only Keras/JAX (bf16 and fp32)
#       bash benchmarks/run_gpu.sh keras-bf16 # only Keras/JAX bf16 (the targets)
#       bash benchmarks/run_gpu.sh smoke      # seconds: every script at tiny settings
#       bash benchmarks/run_gpu.sh experiments [SECONDS]
#                                             # issue 8's sweep (experiments.py --scale gpu)
#                                             # for at most SECONDS (default 480), resumable;
#                                             # further arguments go to experiments.py
#
# `experiments` writes experiments/gpu/ and packs it as $OUT/experiments_gpu.tgz (the device
# tool returns at most 8 files). Unpack it into the repository here (`tar xzf
# .../experiments_gpu.tgz`): the untracked run files travel with the next call, which resumes.
#
# It installs the carried keras / namex / optree wheels into /tmp/site when keras is missing,
# puts the repository on PYTHONPATH (keras_dgdm is not installed there), runs with
# KERAS_BACKEND=jax, prints one figure per line and copies the log to $OUT (or
# /tmp/bench_out) as gpu_bench.log. The whole default run should take 6-8 minutes on an H100
# (most of it XLA compilation of 8 Keras models); run the parts as separate calls if a call's
# time limit is tight. Extra arguments after the part go to every Python script.
set -uo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
[ $# -gt 0 ] && shift

if [ "$part" = prepare ]; then
    # The GPU machine's python3 is CPython 3.12 on x86-64.
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        keras==3.15.1 namex==0.1.0 optree==0.20.0 || exit 1
    ls -l .whl
    exit 0
fi

case "$part" in all|torch|keras|keras-bf16|smoke|experiments) ;; *)
    echo "run_gpu.sh: unknown part '$part'; use prepare, all, torch, keras, keras-bf16, smoke" \
         "or experiments" >&2
    exit 2 ;;
esac

if [ "$part" = experiments ]; then
    budget=${1:-480}
    case "$budget" in ''|*[!0-9]*)
        echo "run_gpu.sh: experiments takes a time budget in whole seconds; got '$budget'" >&2
        exit 2 ;;
    esac
    [ $# -gt 0 ] && shift
fi

if ! python3 -c "import keras" >/dev/null 2>&1; then
    if ! ls .whl/keras-*.whl >/dev/null 2>&1; then
        echo "run_gpu.sh: keras is not installed and .whl/ has no keras wheel: run" \
             "'bash benchmarks/run_gpu.sh prepare' on the development machine and carry .whl" >&2
        exit 3
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 4
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

# keras_dgdm is not installed there: the scripts import the checkout's package.
export PYTHONPATH="$PWD"${PYTHONPATH:+:$PYTHONPATH}
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/jax_cache}
out=${OUT:-/tmp/bench_out}
mkdir -p "$out"
log="$out/gpu_bench.log"

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader 2>&1
    python3 -c "import jax, keras, torch, torchvision; print('jax', jax.__version__, jax.devices(), '| keras', keras.__version__, '| torch', torch.__version__, '| torchvision', torchvision.__version__)" 2>&1
} | tee -a "$log"

run() {
    echo "\$ $*" | tee -a "$log"
    "$@" 2>&1 | grep -v -E '^(I0000|WARNING: All log messages)' | tee -a "$log"
    return "${PIPESTATUS[0]}"
}

status=0
case "$part" in
    experiments)
        run python3 training/experiments.py --scale gpu --output-dir experiments/gpu \
            --time-budget "$budget" "$@" || status=1
        tar czf "$out/experiments_gpu.tgz" experiments/gpu && ls -l "$out/experiments_gpu.tgz" ;;
    smoke)
        run python3 benchmarks/bench_torch_reference.py --smoke "$@" || status=1
        run python3 benchmarks/bench_gpu_throughput.py --smoke --precisions bf16 "$@" || status=1
        run python3 benchmarks/bench_overhead.py --smoke "$@" || status=1 ;;
    *)
        if [ "$part" = all ] || [ "$part" = torch ]; then
            run python3 benchmarks/bench_torch_reference.py "$@" || status=1
        fi
        if [ "$part" != torch ]; then
            run python3 benchmarks/bench_gpu_throughput.py --precisions bf16 "$@" || status=1
        fi
        if [ "$part" = all ] || [ "$part" = keras ]; then
            run python3 benchmarks/bench_gpu_throughput.py --precisions fp32 "$@" || status=1
        fi ;;
esac
echo "run_gpu.sh: done (status $status); log in $log" | tee -a "$log"
exit $status
