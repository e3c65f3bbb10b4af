#!/usr/bin/env python3
"""Runs the Java/Keras comparison for scripts/bench and writes the report.

Each workload runs as separate processes, Java and Keras alternating (Java, Keras fit, Keras
tf.function) for each repeat; the peak RSS of a process is the ru_maxrss its parent reads when it
ends, and the time to the first finished step is counted from the moment the driver launched it.
Raw results go to target/bench/raw/*.json and target/bench/results.json; the report to
target/bench/BENCHMARKS.md and into README.md between the bench markers.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench")
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
GPU_BEGIN = "<!-- bench-gpu:begin -->"
GPU_END = "<!-- bench-gpu:end -->"

# name, title, compared with Keras
WORKLOADS = [
    ("vgg16_head", "VGG16 head only (frozen base), batch 32, 64x64: images/s", True),
    ("vgg16_head_e2e", "VGG16 head only, 10 epochs on 2,000 images 64x64, end to end: seconds", True),
    ("vgg16_block5", "VGG16 `block5` + head, batch 32, 64x64: images/s", True),
    ("inception_mixed9", "InceptionV3 `mixed9` and above + head, batch 32, 75x75: images/s", True),
    ("gpt2_small", "small GPT-2 (2 layers, 64 wide), all layers, batch 4, sequence 128: tokens/s", True),
    ("gpt2_base", "GPT-2 124M, all layers, batch 4, sequence 128: tokens/s", True),
    ("scale_batch", "scaling: VGG16 head-only step time against batch size", False),
    ("scale_seq", "scaling: small GPT-2 step time against sequence length", False),
    ("scale_build", "scaling: graph-build time against model size", False),
]
NAMES = [w[0] for w in WORKLOADS]
# Rows whose processes take minutes (Keras's first fit step on GPT-2 124M alone takes over a minute on
# 2 cores; 10 Keras epochs over 2,000 images several): they run --heavy-repeats times.
HEAVY = ["vgg16_head_e2e", "gpt2_base"]


def peak_mib(result, maxrss_kib):
    """The process's peak RSS; for the Java workloads that also probe MatMul for the roofline, the
    peak the process had reached before the probe (its VmHWM then), so the probe's matrices do not
    count against the workload."""
    if result.get("side") == "java" and "roofline" in result and result.get("vm_hwm_kib"):
        return result["vm_hwm_kib"] / 1024.0
    return maxrss_kib / 1024.0


def run(cmd, out_json, log):
    """Runs one child; returns its JSON result with the driver's own measurements added."""
    launched = time.time()
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - launched
    if p.returncode != 0 or not os.path.exists(out_json):
        with open(log) as f:
            tail = f.read()[-3000:]
        raise SystemExit("bench: %s failed (exit %d); its log is %s:\n%s" % (" ".join(cmd), p.returncode, log, tail))
    with open(out_json) as f:
        result = json.load(f)
    result["peak_rss_mib"] = peak_mib(result, usage.ru_maxrss)
    result["process_wall_s"] = wall
    if "first_step_wall_s" in result:
        result["launch_to_first_step_s"] = result["first_step_wall_s"] - launched
    return result


RUNTIME_FLAGS = []  # --device D and --mixed-precision, the same for both sides


def java_cmd(name, out_json, quick):
    cp = os.environ.get("BENCH_CLASSPATH")
    if not cp:
        raise SystemExit("bench: BENCH_CLASSPATH is not set; run scripts/bench, which compiles and sets it")
    # The JVM options scripts/finetune runs the CLI with (the serial collector).
    cmd = ["java", "-XX:+UseSerialGC", "-Xmx6g", "-Dfinetune.root=" + ROOT, "-cp", cp, "org.finetune.bench.CompareBenchmark", name, out_json]
    return cmd + (["--quick"] if quick else []) + RUNTIME_FLAGS


def keras_cmd(name, mode, out_json, quick):
    python = os.environ.get("FINETUNE_PYTHON", os.path.join(ROOT, ".venv", "bin", "python"))
    cmd = [python, os.path.join(ROOT, "scripts", "bench_keras.py"), name, mode, out_json]
    return cmd + (["--quick"] if quick else []) + RUNTIME_FLAGS


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs):
    """Medians over the repeats of one side of one workload."""
    first = runs[0]
    return {
        "throughput": median([r["throughput"] for r in runs]),
        "unit": first["throughput_unit"],
        "peak_rss_mib": median([r["peak_rss_mib"] for r in runs]),
        "first_step_s": median([r.get("launch_to_first_step_s") for r in runs]),
        "how": first.get("how", ""),
        "runs": len(runs),
    }


def fmt(v, digits=1):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return "%.0f" % v
    return ("%." + str(digits) + "f") % v


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 1024 / 1024
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        have = [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "fma") if " " + x + " " in text]
        flags = ", ".join(have)
    except OSError:
        pass
    gpu = ""
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        if smi.returncode == 0 and smi.stdout.strip():
            gpu = "; GPU: " + "; ".join(l.strip() for l in smi.stdout.strip().splitlines()) + " (name, driver, memory)"
    except (OSError, subprocess.SubprocessError):
        pass
    return "%s, %d cores visible (%s), %.0f GiB memory, %s %s%s" % (
        model, os.cpu_count(), flags or "no AVX flags seen", mem, platform.system(), platform.release(), gpu)


def runtimes(results):
    seen = {}
    for sides in results.values():
        for side, runs in sides.items():
            for r in runs:
                if r.get("runtime"):
                    seen.setdefault("Java" if side == "java" else "Keras", r["runtime"])
    return "; ".join("%s: %s" % kv for kv in sorted(seen.items())) or "defaults"


def versions(results):
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    keras_side = next((r["versions"] for rs in results.values() for r in rs.get("keras-fit", []) + rs.get(
        "keras-function", []) if "versions" in r), None)
    tfjava = next((r.get("tf_runtime") for rs in results.values() for r in rs.get("java", []) if r.get("tf_runtime")),
                  None)
    parts = ["Java: " + (java[0] if java else "?"), "TF Java 1.1.0 (TensorFlow runtime %s)" % (tfjava or "?")]
    if keras_side:
        parts.append("Python: TensorFlow %s, Keras %s" % (keras_side["tensorflow"], keras_side["keras"]))
    return "; ".join(parts)


def steps_line(results):
    """Warm-up + timed steps of each step workload, as its Java runs did them."""
    parts = []
    for name, _, compared in WORKLOADS:
        runs = results.get(name, {}).get("java", [])
        if compared and runs and "timed_steps" in runs[0]:
            parts.append("%s: %d + %d" % (name, len(runs[0]["warmup_step_s"]), runs[0]["timed_steps"]))
    return "; ".join(parts) or "none run"


def report(results, args, started, elapsed):
    lines = []
    if args.quick:
        lines += ["**Quick run (`--quick`): a handful of steps to check the harness; these are not figures.**", ""]
    lines += [
        "Generated by `scripts/bench%s` on %s UTC in %.1f min; Java and Keras alternate, one process each,"
        % ((" " + " ".join(args.argv)) if args.argv else "", started, elapsed / 60)
        + " %d repeat(s) (%s: %d); figures are medians over the repeats%s."
        % (args.repeats, " and ".join(HEAVY), args.heavy_repeats, getattr(args, "merged", "")),
        "",
        "- Machine: " + machine(),
        "- " + versions(results),
        "- Runtime: " + runtimes(results),
        "",
        "| workload | repeats | Java | Keras `fit` | Keras `tf.function` | Java / Keras (best) |"
        " peak RSS MiB Java / Keras | launch to first step s, Java / Keras |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, title, compared in WORKLOADS:
        if not compared or name not in results:
            continue
        sides = {k: summarise(v) for k, v in results[name].items() if v}
        j = sides.get("java")
        kf = sides.get("keras-fit")
        kt = sides.get("keras-function")
        if name == "vgg16_head_e2e":
            first = results[name]["java"][0]
            title = "VGG16 head only, %d epochs on %s images 64x64, end to end: seconds" % (
                first["epochs"], "{:,}".format(first["images"]))
        lower_better = j["unit"] == "s"
        keras = [k for k in (kf, kt) if k]
        best = (min if lower_better else max)(keras, key=lambda k: k["throughput"]) if keras else None
        ratio = j["throughput"] / best["throughput"] if best else None
        lines.append("| %s | %d | %s | %s | %s | %s | %s / %s | %s / %s |" % (
            title, j["runs"], fmt(j["throughput"]), fmt(kf["throughput"]) if kf else "-", fmt(kt["throughput"]) if kt else "-",
            fmt(ratio, 2), fmt(j["peak_rss_mib"]), fmt(best["peak_rss_mib"]) if best else "-",
            fmt(j["first_step_s"]), fmt(best["first_step_s"]) if best else "-"))
    lines += [
        "",
        "Java/Keras above 1 means Java is faster for images/s and tokens/s, slower for the end-to-end seconds."
        " Keras's best of its two ways is the one compared; its RSS and first-step columns are that way's.",
    ]
    roof = [(n, r["roofline"]) for n in ("vgg16_head", "vgg16_block5") for r in results.get(n, {}).get("java", [])
            if "roofline" in r]
    if roof:
        lines += ["", "Roofline (Java process, same runtime, same run):"]
        for n in ("vgg16_head", "vgg16_block5"):
            rs = [r for m, r in roof if m == n]
            if not rs:
                continue
            lines.append("- %s step, batch 32: %.1f GFLOP per step, achieved %.1f GFLOP/s against a peak MatMul"
                         " of %.1f GFLOP/s (float32 %dx%d, the best probe): %.0f%% of peak." % (
                             n, median([r["step_flops"] for r in rs]) / 1e9,
                             median([r["achieved_flops_per_s"] for r in rs]) / 1e9,
                             median([r["matmul_peak_flops_per_s"] for r in rs]) / 1e9, rs[0]["matmul_n"],
                             rs[0]["matmul_n"], 100 * median([r["fraction_of_peak"] for r in rs])))
        lines.append("  FLOPs counted from VGG16's conv shapes: forward 2·H·W·9·Cin·Cout per 3x3 convolution and"
                     " image; backward, for each trained convolution, the weight gradient (1x forward) and, but for"
                     " the lowest trained one, the input gradient (1x); frozen blocks below run forward only;"
                     " the head (512 x 10 Dense) 3x its forward. Peak probe: chains of 4 products of 2048x2048 and of 2 of"
                     " 3072x3072 in one run each, best of 5 runs, the faster size; 2n^3 FLOPs per product.")
    scale = results.get("scale_batch", {}).get("java")
    if scale:
        lines += ["", "Java step time against batch size, VGG16 head only, 64x64:", "",
                  "| batch | step s | images/s |", "|---|---|---|"]
        lines += ["| %d | %.3f | %s |" % (r["batch"], r["step_s"], fmt(r["images_per_s"])) for r in scale[0]["rows"]]
    scale = results.get("scale_seq", {}).get("java")
    if scale:
        lines += ["", "Java step time against sequence length, small GPT-2, all layers, batch 4:", "",
                  "| sequence | step s | tokens/s |", "|---|---|---|"]
        lines += ["| %d | %.3f | %s |" % (r["sequence"], r["step_s"], fmt(r["tokens_per_s"])) for r in scale[0]["rows"]]
    scale = results.get("scale_build", {}).get("java")
    if scale:
        lines += ["", "Java graph-build time against model size (all layers trained; one process, in this order):",
                  "", "| model | parameters | graph nodes | open s | Trainer s | first step s |",
                  "|---|---|---|---|---|---|"]
        lines += ["| `%s` | %s | %d | %.2f | %.2f | %.2f |" % (
            r["model"], "{:,}".format(r["params"]), r["graph_nodes"], r["open_s"], r["trainer_s"], r["first_step_s"])
            for r in scale[0]["rows"]]
    hows = {}
    for name in results:
        for side, runs in results[name].items():
            if runs and side != "java" and runs[0].get("how"):
                hows.setdefault(side, set()).add(runs[0]["how"])
    lines += [
        "",
        "How each side ran: Java trains through `Trainer` on the fixture's SavedModel (`savedmodels/generated/*/"
        "keras3_export`), as `finetune train` does; Keras loads the same fixture's `keras/model.keras`, freezes the"
        " same layers, adds the same head (GlobalAveragePooling2D, Dense(classes, softmax)) and calls the base in"
        " inference mode, Adam 1e-3 on both sides. Keras `fit`: %s. Keras `tf.function`: %s."
        % ("; ".join(sorted(hows.get("keras-fit", {"-"}), key=len)), "; ".join(sorted(hows.get("keras-function", {"-"})))),
        "Inputs are seeded random values, the same batch every step; step throughput counts only the timed"
        " steps after warm-up (%s). GPT-2's"
        " dropout is off on both sides (Java runs the serving graph). InceptionV3 runs at 75x75, not 96x96:"
        " the fixture's input is fixed at 75. The end-to-end row: Java builds a feature cache (the frozen base"
        " runs once over the decoded images), then trains the head on it; Keras decodes the images into memory"
        " once and runs `model.fit`, the base forward on every batch of every epoch; both timed from loading"
        " the model, images (`target/bench/images64`, PNG and JPEG) decoded inside the timing." % steps_line(results),
        "Speed targets live here, not in timed tests. Raw results: `target/bench/results.json`.",
    ]
    return "\n".join(lines) + "\n"


def write_readme(text, gpu):
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        readme = f.read()
    begin, end = (GPU_BEGIN, GPU_END) if gpu else (BEGIN, END)
    if begin not in readme or end not in readme:
        raise SystemExit("bench: README.md lacks the %s / %s markers in its Benchmarks section" % (begin, end))
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    tmp = path + ".bench-tmp"
    with open(tmp, "w") as f:
        f.write(head + begin + "\n" + text + end + tail)
    os.replace(tmp, path)


def main(argv):
    parser = argparse.ArgumentParser(prog="scripts/bench", description="Java against Keras, same runtime, same run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--heavy-repeats", type=int, default=1,
                        help="repeats of the two heavy rows, %s (minutes per process); default 1" % ", ".join(HEAVY))
    parser.add_argument("--quick", action="store_true", help="a few steps each: checks the harness, not the figures")
    parser.add_argument("--only", default="", help="comma-separated workloads: " + ", ".join(NAMES))
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from target/bench/results.json without running anything")
    parser.add_argument("--no-readme", action="store_true", help="write target/bench only, leave README.md alone")
    parser.add_argument("--merge", action="store_true",
                        help="with --only: rerun those workloads and keep the other rows of target/bench/results.json")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or gpu / gpu:N on a CUDA 12 + cuDNN 9 machine (scripts/bench builds -Pgpu)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="Grappler's automatic mixed precision on both sides (float16 on a GPU, bfloat16 on a CPU)")
    args = parser.parse_args(argv)
    args.argv = argv
    RUNTIME_FLAGS[:] = ["--device", args.device] + (["--mixed-precision"] if args.mixed_precision else [])
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in only if n not in NAMES]
    if args.merge and not only:
        parser.error("--merge needs --only")
    if unknown:
        parser.error("unknown workload(s) %s; use %s" % (", ".join(unknown), ", ".join(NAMES)))
    if args.repeats < 1 or args.heavy_repeats < 1:
        parser.error("--repeats and --heavy-repeats must be at least 1")
    if args.report_only:
        with open(os.path.join(OUT, "results.json")) as f:
            saved = json.load(f)
        args.quick = saved["quick"]
        args.argv = saved.get("argv", [])
        args.repeats = saved.get("repeats", args.repeats)
        args.heavy_repeats = saved.get("heavy_repeats", args.heavy_repeats)
        args.merged = saved.get("note", "")
        for sides in saved["results"].values():
            for runs in sides.values():
                for r in runs:
                    if "peak_rss_mib" in r:
                        r["peak_rss_mib"] = peak_mib(r, r["peak_rss_mib"] * 1024)
        publish(saved["results"], args, saved["started"], saved["elapsed_s"])
        return 0
    raw = os.path.join(OUT, "raw")
    logs = os.path.join(OUT, "logs")
    os.makedirs(raw, exist_ok=True)
    os.makedirs(logs, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t0 = time.time()
    selected = [w for w in WORKLOADS if not only or w[0] in only]
    results = {}
    if any(w[0] == "vgg16_head_e2e" for w in selected):
        p = os.path.join(raw, "prepare.json")
        run(java_cmd("prepare", p, False), p, os.path.join(logs, "prepare.log"))
    for name, title, compared in selected:
        repeats = 1 if not compared else args.heavy_repeats if name in HEAVY else args.repeats
        modes = ["fit"] if name == "vgg16_head_e2e" else ["fit", "function"]
        sides = {"java": []}
        for m in modes if compared else []:
            sides["keras-" + m] = []
        for r in range(repeats):
            for side in sides:
                tag = "%s-%s-%d" % (name, side, r)
                out = os.path.join(raw, tag + ".json")
                if os.path.exists(out):
                    os.remove(out)
                cmd = java_cmd(name, out, args.quick) if side == "java" else keras_cmd(
                    name, side.split("-", 1)[1], out, args.quick)
                s = time.time()
                sides[side].append(run(cmd, out, os.path.join(logs, tag + ".log")))
                print("bench: %-18s %-15s repeat %d: %.1f s" % (name, side, r + 1, time.time() - s), flush=True)
        results[name] = sides
    elapsed = time.time() - t0
    if args.merge:
        with open(os.path.join(OUT, "results.json")) as f:
            saved = json.load(f)
        merged = saved["results"]
        merged.update(results)
        # Keep the workloads' order; the header names the full run and the rows rerun now.
        results = {w[0]: merged[w[0]] for w in WORKLOADS if w[0] in merged}
        saved["note"] = args.merged = "; rerun on %s UTC (`--merge --only %s`): %s" % (started, args.only, ", ".join(only))
        started, elapsed = saved["started"], saved["elapsed_s"]
        args.argv = saved.get("argv", [])
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"started": started, "elapsed_s": elapsed, "quick": args.quick, "argv": args.argv,
                   "note": getattr(args, "merged", ""),
                   "repeats": args.repeats, "heavy_repeats": args.heavy_repeats, "results": results}, f, indent=2)
    publish(results, args, started, elapsed)
    return 0


def publish(results, args, started, elapsed):
    text = report(results, args, started, elapsed)
    gpu = args.device.startswith("gpu")
    with open(os.path.join(OUT, "BENCHMARKS-gpu.md" if gpu else "BENCHMARKS.md"), "w") as f:
        f.write(text)
    if not args.no_readme:
        write_readme(text, gpu)
    sys.stdout.write(text)
    print("bench: %.1f min; report in target/bench/BENCHMARKS.md%s" % (
        elapsed / 60, "" if args.no_readme else " and README.md"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
