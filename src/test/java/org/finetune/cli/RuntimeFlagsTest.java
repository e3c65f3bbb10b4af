package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.finetune.model.Devices;
import org.finetune.model.RuntimeOptions;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.tensorflow.proto.ConfigProto;
import org.tensorflow.proto.RewriterConfig;

/** {@code --device}, {@code --mixed-precision}, {@code --xla} and {@code --threads} reach the runtime. */
class RuntimeFlagsTest {
  @TempDir
  Path tmp;

  @Test
  void optionsBecomeTheSessionConfig() {
    ConfigProto cpu = RuntimeOptions.defaults().withDevice("cpu").withMixedPrecision(true).withThreads(1, 2).toConfig();
    assertEquals(0, cpu.getDeviceCountOrThrow("GPU"));
    assertEquals(RewriterConfig.Toggle.ON, cpu.getGraphOptions().getRewriteOptions().getAutoMixedPrecisionOnednnBfloat16());
    assertEquals(1, cpu.getIntraOpParallelismThreads());
    assertEquals(2, cpu.getInterOpParallelismThreads());
    ConfigProto gpu = RuntimeOptions.defaults().withDevice("GPU:1").withMixedPrecision(true).withXla(true).toConfig();
    assertEquals("1", gpu.getGpuOptions().getVisibleDeviceList());
    assertTrue(gpu.getGpuOptions().getAllowGrowth());
    assertEquals(RewriterConfig.Toggle.ON, gpu.getGraphOptions().getRewriteOptions().getAutoMixedPrecision());
    assertEquals(org.tensorflow.proto.OptimizerOptions.GlobalJitLevel.ON_1,
        gpu.getGraphOptions().getOptimizerOptions().getGlobalJitLevel());
    assertFalse(RuntimeOptions.defaults().toConfig().getGraphOptions().getRewriteOptions().hasAutoParallel());
  }

  @Test
  void aGpuTheRuntimeCannotSeeIsABadInput() throws IOException {
    Path data = Images.folder(tmp.resolve("data"), List.of("a", "b"), 4, 32, 1);
    Path model = Fixture.of("vgg16_small/keras3_export").model();
    CliRun run = CliRun.of("train", model.toString(), "--data", data.toString(), "--head", "--epochs", "1",
        "--device", "gpu", "--out", tmp.resolve("out").toString());
    if (Devices.gpuAvailable(0)) {
      assertEquals(ExitCode.OK, run.exit(), run.err());
    } else {
      assertEquals(ExitCode.BAD_INPUT, run.exit(), run.err());
      assertTrue(run.err().contains("--device gpu") && run.err().contains("-Pgpu"), run.err());
      assertEquals(1, run.err().strip().lines().count(), run.err());
    }
    CliRun tpu = CliRun.of("train", model.toString(), "--data", data.toString(), "--device", "tpu");
    assertEquals(ExitCode.BAD_INPUT, tpu.exit());
    assertTrue(tpu.err().contains("auto, cpu, gpu or gpu:N"), tpu.err());
    CliRun threads = CliRun.of("train", model.toString(), "--data", data.toString(), "--threads", "0");
    assertEquals(ExitCode.BAD_INPUT, threads.exit());
    assertTrue(threads.err().contains("--threads must be at least 1"), threads.err());
  }

  /**
   * The same seeded run three ways on the CPU: bfloat16 products change the losses a little, XLA's
   * compiled step changes them by rounding only, one thread per op changes nothing that matters.
   */
  @Test
  void mixedPrecisionAndXlaTrainOnTheCpu() throws IOException {
    Path data = Images.folder(tmp.resolve("data"), List.of("a", "b", "c"), 8, 32, 2);
    Path model = Fixture.of("vgg16_small/keras3_export").model();
    List<Double> plain = losses(model, data, "plain");
    List<Double> bf16 = losses(model, data, "bf16", "--mixed-precision");
    List<Double> xla = losses(model, data, "xla", "--xla", "--threads", "1");
    for (int i = 0; i < plain.size(); i++) {
      assertTrue(Double.isFinite(bf16.get(i)), bf16.toString());
      assertEquals(plain.get(i), bf16.get(i), 0.05 * Math.abs(plain.get(i)), "bfloat16 " + bf16 + " vs " + plain);
      assertEquals(plain.get(i), xla.get(i), 1e-4 * Math.abs(plain.get(i)), "XLA " + xla + " vs " + plain);
    }
    if (org.finetune.model.RuntimeOptions.cpuRunsBfloat16()) {
      assertNotEquals(plain, bf16, "--mixed-precision changed nothing: the bfloat16 rewrite did not run");
      assertFalse(errors.get("bf16").contains("--mixed-precision does nothing"), errors.get("bf16"));
    } else {
      // Without AVX512F the runtime keeps float32 silently; the command says so instead.
      assertEquals(plain, bf16, "no bfloat16 on this CPU, so the same float32 steps");
      assertTrue(errors.get("bf16").contains("warning: --mixed-precision does nothing on this CPU"),
          errors.get("bf16"));
    }
  }

  private final java.util.Map<String, String> errors = new java.util.HashMap<>();

  private List<Double> losses(Path model, Path data, String name, String... flags) throws IOException {
    Path history = tmp.resolve(name + ".csv");
    List<String> args = new ArrayList<>(List.of("train", model.toString(), "--data", data.toString(), "--train",
        "all", "--head", "--epochs", "2", "--batch-size", "8", "--val-split", "0", "--no-cache", "--history",
        history.toString(), "--device", "cpu"));
    args.addAll(List.of(flags));
    CliRun run = CliRun.of(args.toArray(new String[0]));
    assertEquals(ExitCode.OK, run.exit(), run.err() + run.out());
    errors.put(name, run.err());
    List<String> lines = Files.readAllLines(history);
    int col = List.of(lines.get(0).split(",")).indexOf("loss");
    List<Double> out = new ArrayList<>();
    for (String line : lines.subList(1, lines.size())) {
      out.add(Double.parseDouble(line.split(",")[col]));
    }
    return out;
  }
}
