"""What the benchmark runners share (run.py, model_run.py): the machine's load, waiting for it to
be idle, and the description of the machine (CPU, and for the GPU case the GPU, driver and CUDA)."""
import os
import subprocess
import time


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def busy_fraction(seconds=1.0):
    """Share of all cores busy over `seconds` (from /proc/stat), whoever runs."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(max_wait, threshold=0.15):
    """Waits up to max_wait seconds for the machine to be idle; returns the last busy share seen."""
    end = time.time() + max_wait
    while True:
        b = busy_fraction()
        if b < threshold or time.time() >= end:
            return b
        time.sleep(2)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        return "?"


def memory_mib():
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) // 1024


def gpu_description():
    """GPU name, driver and memory from nvidia-smi ('?' where there is none)."""
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        name, driver, memory = [x.strip() for x in r.stdout.splitlines()[0].split(",")]
        return {"gpu": name, "driver": driver, "gpu_memory": memory}
    except (OSError, IndexError, ValueError, subprocess.SubprocessError):
        return {"gpu": "?", "driver": "?", "gpu_memory": "?"}


# Dense bf16 peak of a card (tensor cores, no sparsity), TFLOP/s, from NVIDIA's datasheets: H100
# SXM5 and H200 989.4 (the datasheets' 1979 is with sparsity), H100 PCIe 756, A100 312, L40S 362.
# Matched in order against the device name; the first match decides (None: the rate is unknown).
DENSE_BF16_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", None), ("H100", 989.4), ("H200", 989.4), ("A100", 312.0),
                     ("L40S", 362.0)]


def dense_bf16_peak(device_name):
    """The card's dense bf16 peak in FLOP/s, or None for a card not in the table."""
    for key, tflops in DENSE_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return None if tflops is None else tflops * 1e12
    return None
