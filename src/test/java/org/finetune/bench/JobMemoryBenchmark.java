package org.finetune.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.finetune.data.NpyArray;
import org.finetune.job.FineTuneJob;
import org.finetune.job.JobData;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.testing.Trees;
import org.finetune.train.Selector;
import org.tensorflow.Tensor;

/**
 * A service's memory over successive fine-tuning jobs: one model stays open (serving), and 20
 * jobs run one after another, each training every layer plus a new head with Adam for one step
 * and exporting. {@code inplace}: each job trains the open model itself
 * ({@code FineTuneJob.builder(model)}); {@code own}: each job opens its own copy
 * ({@code FineTuneJob.builder(model.loader())}) and closes it at the end. Prints, after each job,
 * the open model's graph nodes, the process's resident memory and what the open model predicts
 * for a fixed input.
 *
 * <pre>
 *   scripts/benchmark JobMemoryBenchmark own [generated/vgg16/keras3_export] [20]
 *   scripts/benchmark JobMemoryBenchmark inplace
 * </pre>
 */
public final class JobMemoryBenchmark {
  private JobMemoryBenchmark() {}

  public static void main(String[] args) throws Exception {
    String mode = args.length > 0 ? args[0] : "own";
    String fixture = args.length > 1 ? args[1] : "generated/vgg16/keras3_export";
    int jobs = args.length > 2 ? Integer.parseInt(args[2]) : 20;
    if (!mode.equals("own") && !mode.equals("inplace")) {
      throw new IllegalArgumentException("mode must be own or inplace, got " + mode);
    }
    Path work = Files.createTempDirectory("finetune-jobmem-");
    try (KerasSavedModel served = KerasSavedModel.open(Fixture.of(fixture).model())) {
      List<Long> shape = served.info().selectedSignature().inputs().get(0).shape();
      int size = (int) (long) shape.get(1);
      Path data = Images.folder(work.resolve("data"), List.of("a", "b", "c"), 4, size, 1);
      NpyArray probe = probe(size);
      System.out.printf(Locale.ROOT, "%s, %s, %d jobs (all layers + new head, Adam, 1 step of 12 images, export)%n",
          fixture, mode, jobs);
      System.out.printf(Locale.ROOT, "%-6s %12s %10s %14s %8s %14s%n", "job", "graph nodes", "RSS MiB",
          "Java heap MiB", "seconds", "served output");
      System.out.printf(Locale.ROOT, "%-6s %12d %10.0f %14.0f %8s %14.6f%n", "before", nodes(served),
          RssProbe.rssMiB(), heapMiB(), "-", predict(served, probe));
      for (int i = 1; i <= jobs; i++) {
        long start = System.nanoTime();
        FineTuneJob.Builder b = mode.equals("own") ? FineTuneJob.builder(served.loader()) : FineTuneJob.builder(served);
        Path out = work.resolve("export-" + i);
        b.data(JobData.images(data)).newHead().train(new Selector.All()).epochs(1).batchSize(12).validationSplit(0)
            .exportTo(out).build().run();
        double seconds = (System.nanoTime() - start) / 1e9;
        Trees.delete(out);
        System.out.printf(Locale.ROOT, "%-6d %12d %10.0f %14.0f %8.2f %14.6f%n", i, nodes(served), RssProbe.rssMiB(),
            heapMiB(), seconds, predict(served, probe));
      }
    } finally {
      Trees.delete(work);
    }
  }

  /** The Java heap the JVM holds (committed), in MiB: the part of RSS that is not TensorFlow's. */
  private static double heapMiB() {
    return Runtime.getRuntime().totalMemory() / (1024.0 * 1024.0);
  }

  private static long nodes(KerasSavedModel model) {
    long n = 0;
    for (Iterator<?> it = model.graph().operations(); it.hasNext(); it.next()) {
      n++;
    }
    return n;
  }

  private static NpyArray probe(int size) {
    java.util.Random r = new java.util.Random(5);
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(size * size * 3 * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < size * size * 3; i++) {
      b.putFloat((float) (r.nextDouble() * 255 - 120));
    }
    return new NpyArray("float32", new long[] {1, size, size, 3}, b.array());
  }

  /** The served model's first output value for the probe. */
  private static double predict(KerasSavedModel model, NpyArray x) {
    String input = model.info().selectedSignature().inputs().get(0).key();
    try (Tensor t = x.toTensor()) {
      Map<String, Tensor> out = model.predict(model.info().signature(), Map.of(input, t));
      try {
        return NpyArray.of(out.values().iterator().next()).toDoubles()[0];
      } finally {
        out.values().forEach(Tensor::close);
      }
    }
  }
}
