package org.finetune.bench;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Random;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.ImageOps;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Images;
import org.finetune.train.Batch;
import org.finetune.train.FeatureCache;
import org.finetune.train.Fit;
import org.finetune.train.HeadSpec;
import org.finetune.train.LossSpec;
import org.finetune.train.OptimizerSpec;
import org.finetune.train.Selector;
import org.finetune.train.Stage;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;
import org.tensorflow.Graph;
import org.tensorflow.Session;
import org.tensorflow.Tensor;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.Placeholder;
import org.tensorflow.op.core.Sum;
import org.tensorflow.types.TFloat32;

/**
 * The Java half of {@code scripts/bench}: one workload per process, so that the peak RSS the
 * driver reads for the process belongs to that workload alone. Writes its figures as JSON to the
 * given file; {@code scripts/bench_keras.py} is the Keras counterpart of each workload.
 *
 * <pre>
 *   CompareBenchmark WORKLOAD OUT.json [--quick]
 * </pre>
 *
 * Workloads: {@code prepare} (writes the 2,000 images of the end-to-end row), {@code vgg16_head},
 * {@code vgg16_head_e2e}, {@code vgg16_block5}, {@code inception_mixed9}, {@code gpt2_base},
 * {@code gpt2_small}, and the Java-only scaling tables {@code scale_batch}, {@code scale_seq},
 * {@code scale_build}. Inputs are seeded random values: step time does not depend on them.
 */
public final class CompareBenchmark {
  static final int CLASSES = 10;
  static final int E2E_PER_CLASS = 500;
  static final List<String> E2E_CLASSES = List.of("a", "b", "c", "d");
  static final int E2E_EPOCHS = 10;

  /**
   * VGG16's 13 convolutions (3x3, stride 1, same padding): output side at a 64x64 input, input
   * channels, output channels, block. Each 2x2 pool halves the side.
   */
  private static final int[][] VGG16_CONVS = {
      {64, 3, 64, 1}, {64, 64, 64, 1},
      {32, 64, 128, 2}, {32, 128, 128, 2},
      {16, 128, 256, 3}, {16, 256, 256, 3}, {16, 256, 256, 3},
      {8, 256, 512, 4}, {8, 512, 512, 4}, {8, 512, 512, 4},
      {4, 512, 512, 5}, {4, 512, 512, 5}, {4, 512, 512, 5}};

  /** How the runtime runs the models: {@code --device D}, {@code --mixed-precision}, {@code --xla}. */
  private static org.finetune.model.RuntimeOptions runtime = org.finetune.model.RuntimeOptions.defaults();

  private CompareBenchmark() {}

  /** Sets the runtime options from {@code --device D}, {@code --mixed-precision} and {@code --xla} in {@code flags}. */
  static void configure(List<String> flags) {
    org.finetune.model.RuntimeOptions r = org.finetune.model.RuntimeOptions.defaults();
    int d = flags.indexOf("--device");
    if (d >= 0) {
      r = r.withDevice(flags.get(d + 1));
    }
    r = r.withMixedPrecision(flags.contains("--mixed-precision")).withXla(flags.contains("--xla"));
    runtime = org.finetune.model.Devices.resolve(r);
  }

  static org.finetune.model.RuntimeOptions runtime() {
    return runtime;
  }

  static KerasSavedModel open(Path dir) {
    return KerasSavedModel.loader(dir).withRuntime(runtime).load();
  }

  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: CompareBenchmark WORKLOAD OUT.json [--quick]");
      System.exit(2);
    }
    String workload = args[0];
    Path out = Path.of(args[1]);
    List<String> flags = Arrays.asList(args);
    boolean quick = flags.contains("--quick");
    configure(flags);
    JsonObject result = new JsonObject();
    result.addProperty("workload", workload);
    result.addProperty("side", "java");
    result.addProperty("quick", quick);
    result.addProperty("tf_runtime", org.tensorflow.TensorFlow.version());
    result.addProperty("runtime", runtime.describe());
    switch (workload) {
      case "prepare" -> prepare(result);
      case "vgg16_head" -> {
        imageSteps(result, "generated/vgg16/keras3_export", 64, 32, "head", quick ? 1 : 3, quick ? 2 : 10);
        // The workload's peak, before the MatMul probe allocates its own matrices.
        result.addProperty("vm_hwm_kib", vmHwmKib());
        roofline(result, 5, quick);
      }
      case "vgg16_block5" -> {
        imageSteps(result, "generated/vgg16/keras3_export", 64, 32, "block:block5", quick ? 1 : 3, quick ? 2 : 10);
        result.addProperty("vm_hwm_kib", vmHwmKib());
        roofline(result, 5 - 1, quick);
      }
      case "inception_mixed9" ->
          imageSteps(result, "generated/inception_v3/keras3_export", 75, 32, "block:mixed9", quick ? 1 : 3,
              quick ? 2 : 10);
      case "vgg16_head_e2e" -> endToEnd(result, quick);
      case "gpt2_base" -> textSteps(result, "generated/gpt2_base/keras3_export", 4, 128, 1, quick ? 1 : 3);
      case "gpt2_small" -> textSteps(result, "generated/gpt2_small/keras3_export", 4, 128, quick ? 1 : 2,
          quick ? 2 : 10);
      case "scale_batch" -> scaleBatch(result, quick);
      case "scale_seq" -> scaleSeq(result, quick);
      case "scale_build" -> scaleBuild(result, quick);
      default -> {
        System.err.println("unknown workload " + workload);
        System.exit(2);
      }
    }
    if (!result.has("vm_hwm_kib")) {
      result.addProperty("vm_hwm_kib", vmHwmKib());
    }
    Files.createDirectories(out.toAbsolutePath().getParent());
    Files.writeString(out, new GsonBuilder().setPrettyPrinting().create().toJson(result));
  }

  /** The images of the end-to-end row under target/bench, written once (PNG and JPEG alternately). */
  static Path e2eImages() {
    return Fixture.projectRoot().resolve("target/bench/images64");
  }

  private static void prepare(JsonObject result) throws Exception {
    Path root = e2eImages();
    Path done = root.resolve(".complete");
    if (!Files.exists(done)) {
      Images.folder(root, E2E_CLASSES, E2E_PER_CLASS, 64, 7);
      Files.writeString(done, "");
    }
    result.addProperty("images", root.toString());
  }

  static TrainingPlan imagePlan(String selector) {
    Stage stage = selector.equals("head") ? Stage.of(Selector.parse("head"))
        : Stage.of(Selector.parse("head"), Selector.parse(selector));
    return TrainingPlan.builder().head(HeadSpec.classifier(CLASSES)).stage(stage)
        .optimizer(OptimizerSpec.Adam.defaults()).build();
  }

  /** Random float32 images in the range the caffe and tf preprocessings produce, and int32 labels. */
  static Batch imageBatch(String input, int batch, int size, long seed) {
    Random r = new Random(seed);
    ByteBuffer x = ByteBuffer.allocate(batch * size * size * 3 * 4).order(ByteOrder.LITTLE_ENDIAN);
    while (x.hasRemaining()) {
      x.putFloat(r.nextFloat() * 2 - 1);
    }
    int[] labels = new int[batch];
    for (int i = 0; i < batch; i++) {
      labels[i] = r.nextInt(CLASSES);
    }
    return Batch.of(Map.of(input, new NpyArray("float32", new long[] {batch, size, size, 3}, x.array())),
        NpyArray.ofInts(new long[] {batch}, labels));
  }

  static Batch tokenBatch(int batch, int length, long seed) {
    Random r = new Random(seed);
    int[] ids = new int[batch * length];
    int[] mask = new int[batch * length];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = r.nextInt(50257);
      mask[i] = 1;
    }
    long[] shape = {batch, length};
    return Batch.unlabelled(Map.of("token_ids", NpyArray.ofInts(shape, ids), "padding_mask",
        NpyArray.ofInts(shape, mask)));
  }

  private static void imageSteps(JsonObject result, String fixture, int size, int batch, String selector, int warmup,
      int timed) throws Exception {
    long t0 = System.nanoTime();
    try (KerasSavedModel m = open(Fixture.of(fixture).model());
        Trainer t = new Trainer(m, imagePlan(selector))) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      Batch b = imageBatch(input, batch, size, 1);
      timeSteps(result, t, b, t0, warmup, timed, batch, "images_per_s");
    }
    result.addProperty("batch", batch);
    result.addProperty("size", size);
  }

  private static void textSteps(JsonObject result, String fixture, int batch, int length, int warmup, int timed)
      throws Exception {
    long t0 = System.nanoTime();
    TrainingPlan plan = TrainingPlan.builder().loss(LossSpec.CAUSAL_LM).stage(Stage.of(Selector.parse("all")))
        .optimizer(OptimizerSpec.Adam.defaults()).build();
    try (KerasSavedModel m = open(Fixture.of(fixture).model()); Trainer t = new Trainer(m, plan)) {
      timeSteps(result, t, tokenBatch(batch, length, 1), t0, warmup, timed, batch * length, "tokens_per_s");
    }
    result.addProperty("batch", batch);
    result.addProperty("sequence", length);
  }

  /**
   * Runs {@code warmup} steps, then {@code timed} steps; records the wall-clock time the first
   * step finished (the driver subtracts its launch time), the build time (open to first step
   * done) and the throughput over the timed steps.
   */
  private static void timeSteps(JsonObject result, Trainer t, Batch b, long t0, int warmup, int timed, long items,
      String unit) {
    double[] warm = new double[warmup];
    for (int i = 0; i < warmup; i++) {
      long s = System.nanoTime();
      t.step(b);
      warm[i] = (System.nanoTime() - s) / 1e9;
      if (i == 0) {
        result.addProperty("first_step_wall_s", System.currentTimeMillis() / 1e3);
        result.addProperty("open_to_first_step_s", (System.nanoTime() - t0) / 1e9);
      }
    }
    double[] steps = new double[timed];
    long start = System.nanoTime();
    for (int i = 0; i < timed; i++) {
      long s = System.nanoTime();
      t.step(b);
      steps[i] = (System.nanoTime() - s) / 1e9;
    }
    double total = (System.nanoTime() - start) / 1e9;
    result.addProperty("warmup_steps", warmup);
    result.add("warmup_step_s", array(warm));
    result.add("step_s", array(steps));
    result.addProperty("timed_steps", timed);
    result.addProperty("step_median_s", median(steps));
    result.addProperty(unit, items * timed / total);
    result.addProperty("throughput", items * timed / total);
    result.addProperty("throughput_unit", unit);
    result.addProperty("how", "Trainer.step on the SavedModel's graph (TF Java " + org.tensorflow.TensorFlow.version()
        + " runtime), same batch every step");
  }

  /**
   * Head-only training on the 2,000 images for 10 epochs the way the CLI does it with
   * --cache-features: open the model, build the trainer, compute the base's features once
   * (decoding every image), then train the head on the cached features.
   */
  private static void endToEnd(JsonObject result, boolean quick) throws Exception {
    int epochs = quick ? 1 : E2E_EPOCHS;
    long t0 = System.nanoTime();
    ImageFolder folder = ImageFolder.scan(e2eImages());
    List<ImageFolder.Item> items = folder.items();
    if (quick) {
      items = items.subList(0, 256);
    }
    ImageDataset.Options options = ImageDataset.Options.of(64, 64, ImageOps.Preprocess.byName("caffe"), 32);
    TrainingPlan plan = TrainingPlan.builder().head(HeadSpec.classifier(E2E_CLASSES.size()))
        .stage(Stage.of(Selector.parse("head"))).optimizer(OptimizerSpec.Adam.defaults()).build();
    double cacheS;
    try (ImageDataset d = ImageDataset.open(items, options);
        KerasSavedModel m = open(Fixture.of("generated/vgg16/keras3_export").model());
        Trainer t = new Trainer(m, plan)) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      t.useStage(0);
      long c0 = System.nanoTime();
      try (FeatureCache cache = FeatureCache.build(t, d, input, 1L << 30)) {
        cacheS = (System.nanoTime() - c0) / 1e9;
        Fit.run(t, cache, Optional.empty(), new Fit.Options(epochs, OptionalInt.empty()), List.of(),
            Fit.Start.BEGINNING);
      }
    }
    double total = (System.nanoTime() - t0) / 1e9;
    result.addProperty("images", items.size());
    result.addProperty("epochs", epochs);
    result.addProperty("end_to_end_s", total);
    result.addProperty("features_s", cacheS);
    result.addProperty("throughput", total);
    result.addProperty("throughput_unit", "s");
    result.addProperty("how", "FeatureCache (base run once over the decoded images), then Fit on the cached features;"
        + " timed from opening the model, image decoding and graph building included");
  }

  /**
   * The roofline figures of a VGG16 step at 64x64, batch 32: the peak MatMul FLOP/s of this
   * runtime (2n^3 per n x n product, best of the runs) and the step's FLOPs counted from the
   * convolution shapes. Forward: 2 * H * W * 9 * Cin * Cout per 3x3 convolution and image. Backward:
   * for each convolution in a trained block, the weight gradient (as much as the forward) and,
   * except for the lowest trained one, the input gradient (as much again). Frozen blocks below
   * need no backward. The new head (pooling and a 512 x 10 Dense) is counted too, forward x3.
   *
   * @param lowestTrainedBlock 5 for head-only (no block trained: nothing of the base goes backward), 4 for block5
   */
  private static void roofline(JsonObject result, int lowestTrainedBlock, boolean quick) throws Exception {
    int batch = result.get("batch").getAsInt();
    double forward = 0;
    double backward = 0;
    boolean lowest = true;
    for (int[] c : VGG16_CONVS) {
      double f = 2.0 * c[0] * c[0] * 9 * c[1] * c[2];
      forward += f;
      if (c[3] > lowestTrainedBlock) {
        backward += lowest ? f : 2 * f;
        lowest = false;
      }
    }
    double head = 3 * 2.0 * 512 * CLASSES;
    double flops = batch * (forward + backward + head);
    double achieved = flops / result.get("step_median_s").getAsDouble();
    double[] probe = matmulPeak(quick ? 2 : 5);
    double peak = probe[0];
    JsonObject r = new JsonObject();
    r.addProperty("step_flops", flops);
    r.addProperty("achieved_flops_per_s", achieved);
    r.addProperty("matmul_peak_flops_per_s", peak);
    r.addProperty("matmul_n", (int) probe[1]);
    r.addProperty("fraction_of_peak", achieved / peak);
    result.add("roofline", r);
  }

  /** Square sizes and chain lengths of the peak probe: {n, products per run}. */
  static final int[][] MATMUL_PROBES = {{2048, 4}, {3072, 2}};

  /**
   * The runtime's best float32 MatMul FLOP/s on this machine: for each probe, a chain of products
   * {@code x = x . b} in one run (so feeding, the run's start and the final reduction are spread
   * over several products), best of {@code runs}; the best probe wins. Returns {flop/s, n}.
   */
  static double[] matmulPeak(int runs) {
    double bestRate = 0;
    int bestN = 0;
    for (int[] probe : MATMUL_PROBES) {
      int n = probe[0];
      int chain = probe[1];
      Random r = new Random(3);
      ByteBuffer buf = ByteBuffer.allocate(n * n * 4).order(ByteOrder.LITTLE_ENDIAN);
      while (buf.hasRemaining()) {
        buf.putFloat(r.nextFloat() / n); // rows sum to about 1/2: the chain stays finite
      }
      NpyArray values = new NpyArray("float32", new long[] {n, n}, buf.array());
      try (Graph g = new Graph(); Session s = new Session(g); Tensor a = values.toTensor();
          Tensor b = values.toTensor()) {
        Ops tf = Ops.create(g);
        Placeholder<TFloat32> pa = tf.placeholder(TFloat32.class);
        Placeholder<TFloat32> pb = tf.placeholder(TFloat32.class);
        org.tensorflow.Operand<TFloat32> x = pa;
        for (int k = 0; k < chain; k++) {
          x = tf.linalg.matMul(x, pb);
        }
        Sum<TFloat32> sum = tf.sum(x, tf.constant(new int[] {0, 1}));
        double best = Double.MAX_VALUE;
        for (int i = 0; i < runs + 2; i++) {
          long t0 = System.nanoTime();
          try (var res = s.runner().feed(pa, a).feed(pb, b).fetch(sum).run()) {
            double dt = (System.nanoTime() - t0) / 1e9;
            if (i >= 2) {
              best = Math.min(best, dt);
            }
          }
        }
        double rate = chain * 2.0 * n * n * n / best;
        if (rate > bestRate) {
          bestRate = rate;
          bestN = n;
        }
      }
    }
    return new double[] {bestRate, bestN};
  }

  /** Step time of VGG16 head-only training at batch sizes 8 to 64 on one trainer. */
  private static void scaleBatch(JsonObject result, boolean quick) throws Exception {
    JsonArray rows = new JsonArray();
    try (KerasSavedModel m = open(Fixture.of("generated/vgg16/keras3_export").model());
        Trainer t = new Trainer(m, imagePlan("head"))) {
      String input = m.info().selectedSignature().inputs().get(0).key();
      for (int batch : new int[] {8, 16, 32, 64}) {
        double s = medianStep(t, imageBatch(input, batch, 64, batch), quick ? 1 : 2, quick ? 1 : 5);
        JsonObject row = new JsonObject();
        row.addProperty("batch", batch);
        row.addProperty("step_s", s);
        row.addProperty("images_per_s", batch / s);
        rows.add(row);
      }
    }
    result.add("rows", rows);
  }

  /** Step time of small GPT-2 (all layers, batch 4) at sequence lengths 32 to 128 on one trainer. */
  private static void scaleSeq(JsonObject result, boolean quick) throws Exception {
    JsonArray rows = new JsonArray();
    TrainingPlan plan = TrainingPlan.builder().loss(LossSpec.CAUSAL_LM).stage(Stage.of(Selector.parse("all")))
        .optimizer(OptimizerSpec.Adam.defaults()).build();
    try (KerasSavedModel m = open(Fixture.of("generated/gpt2_small/keras3_export").model());
        Trainer t = new Trainer(m, plan)) {
      for (int length : new int[] {32, 64, 128}) {
        double s = medianStep(t, tokenBatch(4, length, length), quick ? 1 : 2, quick ? 1 : 10);
        JsonObject row = new JsonObject();
        row.addProperty("sequence", length);
        row.addProperty("step_s", s);
        row.addProperty("tokens_per_s", 4 * length / s);
        rows.add(row);
      }
    }
    result.add("rows", rows);
  }

  /**
   * Graph-build time against model size: opening the SavedModel, building the trainer (flattened
   * graph, gradients, optimizer) and the first step, which is when the runtime prepares the graph.
   */
  private static void scaleBuild(JsonObject result, boolean quick) throws Exception {
    List<String[]> models = new ArrayList<>(List.of(
        new String[] {"vgg16_small/keras3_export", "image", "32"},
        new String[] {"inception_v3_small/keras3_export", "image", "75"},
        new String[] {"generated/gpt2_small/keras3_export", "text", "128"},
        new String[] {"generated/vgg16/keras3_export", "image", "64"},
        new String[] {"generated/inception_v3/keras3_export", "image", "75"}));
    if (!quick) {
      models.add(new String[] {"generated/gpt2_base/keras3_export", "text", "128"});
    }
    // The first model pays for loading the runtime and warming the JVM; build it once untimed.
    buildOnce(models.get(0));
    JsonArray rows = new JsonArray();
    for (String[] model : models) {
      rows.add(buildOnce(model));
    }
    result.add("rows", rows);
  }

  private static JsonObject buildOnce(String[] model) throws Exception {
    boolean text = model[1].equals("text");
    TrainingPlan plan = text
        ? TrainingPlan.builder().loss(LossSpec.CAUSAL_LM).stage(Stage.of(Selector.parse("all")))
            .optimizer(OptimizerSpec.Adam.defaults()).build()
        : TrainingPlan.builder().head(HeadSpec.classifier(CLASSES)).stage(Stage.of(Selector.parse("all")))
            .optimizer(OptimizerSpec.Adam.defaults()).build();
    JsonObject row = new JsonObject();
    long t0 = System.nanoTime();
    try (KerasSavedModel m = open(Fixture.of(model[0]).model())) {
      long t1 = System.nanoTime();
      try (Trainer t = new Trainer(m, plan)) {
        long t2 = System.nanoTime();
        int size = Integer.parseInt(model[2]);
        Batch b = text ? tokenBatch(1, size, 1)
            : imageBatch(m.info().selectedSignature().inputs().get(0).key(), 1, size, 1);
        t.step(b);
        long t3 = System.nanoTime();
        row.addProperty("model", model[0]);
        row.addProperty("params", m.info().totalParams());
        row.addProperty("graph_nodes", t.graphNodeCount());
        row.addProperty("open_s", (t1 - t0) / 1e9);
        row.addProperty("trainer_s", (t2 - t1) / 1e9);
        row.addProperty("first_step_s", (t3 - t2) / 1e9);
      }
    }
    return row;
  }

  private static double medianStep(Trainer t, Batch b, int warmup, int timed) {
    for (int i = 0; i < warmup; i++) {
      t.step(b);
    }
    double[] steps = new double[timed];
    for (int i = 0; i < timed; i++) {
      long s = System.nanoTime();
      t.step(b);
      steps[i] = (System.nanoTime() - s) / 1e9;
    }
    return median(steps);
  }

  static double median(double[] values) {
    double[] v = values.clone();
    Arrays.sort(v);
    int n = v.length;
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }

  private static JsonArray array(double[] values) {
    JsonArray a = new JsonArray();
    for (double v : values) {
      a.add(v);
    }
    return a;
  }

  /** Peak resident set of this process (VmHWM), KiB; 0 where /proc is missing. */
  static long vmHwmKib() throws Exception {
    Path status = Path.of("/proc/self/status");
    if (!Files.exists(status)) {
      return 0;
    }
    for (String line : Files.readAllLines(status)) {
      if (line.startsWith("VmHWM:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    }
    return 0;
  }
}
