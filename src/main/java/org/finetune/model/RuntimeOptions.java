package org.finetune.model;

import java.util.Locale;
import java.util.OptionalInt;
import org.tensorflow.proto.ConfigProto;
import org.tensorflow.proto.GPUOptions;
import org.tensorflow.proto.GraphOptions;
import org.tensorflow.proto.OptimizerOptions;
import org.tensorflow.proto.RewriterConfig;

/**
 * How the TensorFlow runtime runs a model: on which device, with which graph rewrites, on how many
 * threads. Becomes the session's {@code ConfigProto} when the model is opened.
 *
 * @param device {@code auto} (a GPU when the runtime sees one, else the CPU), {@code cpu}, {@code gpu}
 *     (the first GPU) or {@code gpu:N}
 * @param mixedPrecision Grappler's automatic mixed precision: float16 on a GPU, bfloat16 through
 *     oneDNN on a CPU. Faster where the hardware has those units, with float16/bfloat16 rounding
 *     in the products; variables and the optimizer stay float32.
 * @param xla XLA's JIT: clusters of ops are compiled together (on the CPU too); the first step
 *     pays the compilation
 * @param intraOpThreads threads one op may use (empty: the runtime's default, one per core)
 * @param interOpThreads ops run at once (empty: the runtime's default)
 */
public record RuntimeOptions(String device, boolean mixedPrecision, boolean xla, OptionalInt intraOpThreads,
    OptionalInt interOpThreads) {

  public RuntimeOptions {
    device = device.trim().toLowerCase(Locale.ROOT);
    if (!device.equals("auto") && !device.equals("cpu") && !device.matches("gpu(:\\d+)?")) {
      throw new IllegalArgumentException("device must be auto, cpu, gpu or gpu:N, got '" + device + "'");
    }
    for (OptionalInt n : new OptionalInt[] {intraOpThreads, interOpThreads}) {
      if (n.isPresent() && n.getAsInt() < 1) {
        throw new IllegalArgumentException("thread counts must be at least 1, got " + n.getAsInt());
      }
    }
  }

  /** The runtime's defaults: any device it finds, no rewrites beyond its own, one thread per core. */
  public static RuntimeOptions defaults() {
    return new RuntimeOptions("auto", false, false, OptionalInt.empty(), OptionalInt.empty());
  }

  public RuntimeOptions withDevice(String device) {
    return new RuntimeOptions(device, mixedPrecision, xla, intraOpThreads, interOpThreads);
  }

  public RuntimeOptions withMixedPrecision(boolean on) {
    return new RuntimeOptions(device, on, xla, intraOpThreads, interOpThreads);
  }

  public RuntimeOptions withXla(boolean on) {
    return new RuntimeOptions(device, mixedPrecision, on, intraOpThreads, interOpThreads);
  }

  public RuntimeOptions withThreads(int intraOp, int interOp) {
    return new RuntimeOptions(device, mixedPrecision, xla, OptionalInt.of(intraOp), OptionalInt.of(interOp));
  }

  /** True when the model must run on a GPU ({@code gpu} or {@code gpu:N}). */
  public boolean wantsGpu() {
    return device.startsWith("gpu");
  }

  /** The GPU index of {@code gpu:N} (0 for {@code gpu}). */
  public int gpuIndex() {
    return device.startsWith("gpu:") ? Integer.parseInt(device.substring(4)) : 0;
  }

  /** The session configuration these options stand for. */
  public ConfigProto toConfig() {
    ConfigProto.Builder config = ConfigProto.newBuilder();
    intraOpThreads.ifPresent(config::setIntraOpParallelismThreads);
    interOpThreads.ifPresent(config::setInterOpParallelismThreads);
    if (device.equals("cpu")) {
      config.putDeviceCount("GPU", 0);
    } else {
      GPUOptions.Builder gpu = GPUOptions.newBuilder().setAllowGrowth(true);
      if (wantsGpu()) {
        gpu.setVisibleDeviceList(Integer.toString(gpuIndex()));
      }
      config.setGpuOptions(gpu);
    }
    GraphOptions.Builder graph = GraphOptions.newBuilder();
    RewriterConfig.Builder rewrites = RewriterConfig.newBuilder();
    if (mixedPrecision) {
      if (device.equals("cpu")) {
        rewrites.setAutoMixedPrecisionOnednnBfloat16(RewriterConfig.Toggle.ON);
      } else {
        rewrites.setAutoMixedPrecision(RewriterConfig.Toggle.ON);
      }
    }
    graph.setRewriteOptions(rewrites);
    if (xla) {
      graph.setOptimizerOptions(OptimizerOptions.newBuilder().setGlobalJitLevel(OptimizerOptions.GlobalJitLevel.ON_1));
    }
    config.setGraphOptions(graph);
    return config.build();
  }

  /** For {@code finetune.json} and logs: the options that differ from the defaults, or "defaults". */
  public String describe() {
    StringBuilder b = new StringBuilder("device " + device);
    if (mixedPrecision) {
      b.append(", mixed precision");
    }
    if (xla) {
      b.append(", XLA");
    }
    intraOpThreads.ifPresent(n -> b.append(", ").append(n).append(" intra-op threads"));
    interOpThreads.ifPresent(n -> b.append(", ").append(n).append(" inter-op threads"));
    return b.toString();
  }

  /**
   * Whether this CPU runs the runtime's bfloat16 rewrite: TensorFlow 2.18's oneDNN applies it only
   * where the CPU has AVX512F or AVX-NE-CONVERT, and otherwise leaves the graph in float32 without
   * a word. Read from {@code /proc/cpuinfo}; where that cannot be read, assumed yes.
   */
  public static boolean cpuRunsBfloat16() {
    try (java.util.stream.Stream<String> lines = java.nio.file.Files.lines(java.nio.file.Path.of("/proc/cpuinfo"))) {
      return lines.filter(l -> l.startsWith("flags")).findFirst()
          .map(l -> java.util.Arrays.asList(l.substring(l.indexOf(':') + 1).trim().split("\\s+")))
          .map(f -> f.contains("avx512f") || f.contains("avx_ne_convert")).orElse(true);
    } catch (java.io.IOException | java.io.UncheckedIOException e) {
      return true;
    }
  }
}
