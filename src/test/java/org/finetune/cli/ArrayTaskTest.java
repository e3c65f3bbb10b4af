package org.finetune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.finetune.data.NpyArray;
import org.finetune.job.FineTuneJob;
import org.finetune.job.FineTuneResult;
import org.finetune.job.JobData;
import org.finetune.job.JobException;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.finetune.testing.Python;
import org.finetune.train.OptimizerSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The arrays task against Keras's own {@code compile} + {@code fit}: the same model (written by
 * scripts/make_array_models.py), the same examples in the same order, the same optimizer, 5
 * steps; scripts/reference_fit.py fits the Keras model and compares every variable of the
 * SavedModel finetune exported with Keras's, within 1e-5 relative. Keras's own steps must move
 * every trained variable, so the comparison can fail.
 */
class ArrayTaskTest {
  static final double TOLERANCE = 1e-5;
  /** Java's kernels are a third set: held to twice Keras's floor, as in KerasParityTest. */
  static final double FLOOR_FACTOR = 2;
  static final int STEPS = 5;
  static final int BATCH = 16;

  @TempDir
  Path tmp;

  static Path arrayCase(String name) {
    Path dir = Fixture.projectRoot().resolve("savedmodels/generated/arrays").resolve(name);
    if (!Files.isDirectory(dir.resolve("keras3_export"))) {
      throw new IllegalStateException(dir + " is missing: run scripts/test, which generates it (or"
          + " scripts/make_array_models.py with the venv's python)");
    }
    return dir;
  }

  /** The first {@code rows} lines of a CSV table (header kept): exactly the examples of 5 steps. */
  private Path head(Path csv, int rows) throws IOException {
    List<String> lines = Files.readAllLines(csv);
    Path out = tmp.resolve(csv.getFileName());
    Files.write(out, lines.subList(0, rows + 1));
    return out;
  }

  /**
   * Keras's fit run twice, with TensorFlow's kernel library off and on (named, whatever the CPU's
   * default), the second measuring how far Keras moves from the first (its floor; see
   * KerasParityTest): Adam on token embeddings turns the kernels' rounding into visible steps.
   */
  private JsonObject oracleWithFloor(Path dir, Path export, String optimizer, String... data) throws IOException {
    Path off = tmp.resolve("keras_onednn_off");
    List<String> first = new ArrayList<>(List.of(data));
    first.addAll(List.of("--onednn", "off", "--save-keras", off.toString()));
    oracle(dir, export, optimizer, first.toArray(String[]::new));
    List<String> second = new ArrayList<>(List.of(data));
    second.addAll(List.of("--onednn", "on", "--keras-floor", off.toString()));
    return oracle(dir, export, optimizer, second.toArray(String[]::new));
  }

  private JsonObject oracle(Path dir, Path export, String optimizer, String... data) throws IOException {
    Path out = tmp.resolve("oracle.json");
    List<String> args = new ArrayList<>(List.of("--model", dir.resolve("model.keras").toString(), "--base-export",
        dir.resolve("keras3_export").toString(), "--java-export", export.toString(), "--optimizer", optimizer,
        "--batch-size", Integer.toString(BATCH), "--steps", Integer.toString(STEPS), "--out", out.toString()));
    args.addAll(List.of(data));
    Python.run("reference_fit.py", args.toArray(String[]::new));
    return JsonParser.parseString(Files.readString(out)).getAsJsonObject();
  }

  /**
   * Every variable of the export within {@link #TOLERANCE} of Keras's after the same fit (or, where
   * a floor was measured, within twice it, if that is more: how far Keras moved the variable from
   * itself with the other kernel library, or finetune with the examples in another order); and the
   * fit must have moved most variables by more than that, or the comparison could not tell a
   * trained export from the base (attention's query and key barely move in 5 steps: scores start
   * near uniform, so Keras moves them by 1e-8 and they count only toward the first check).
   */
  static void assertMatches(JsonObject r, String what, int inputs) {
    assertEquals(0.0, r.get("order_check").getAsDouble(), what + ": the export lists its variables as Keras does");
    double worst = 0;
    int zeros = 0;
    int moved = 0;
    int trainable = 0;
    double step = 0;
    for (var v : r.getAsJsonArray("variables")) {
      step = Math.max(step, v.getAsJsonObject().get("moved_abs").getAsDouble());
    }
    for (var v : r.getAsJsonArray("variables")) {
      JsonObject o = v.getAsJsonObject();
      if (o.get("trainable").getAsBoolean()) {
        trainable++;
        moved += o.get("moved").getAsDouble() > 10 * TOLERANCE ? 1 : 0;
      }
    }
    assertTrue(2 * moved > trainable, what + ": Keras's 5 steps moved most variables: " + r);
    double floorOfWorst = 0;
    for (var v : r.getAsJsonArray("variables")) {
      JsonObject o = v.getAsJsonObject();
      double rel = o.get("java_vs_keras").getAsDouble();
      double abs = o.get("java_vs_keras_abs").getAsDouble();
      // A variable whose gradient is exactly zero (attention's key bias: softmax ignores a shift
      // shared by every score) starts at 0 and holds rounding noise after the fit (Adam divides
      // that noise by its own size), so its values give a relative difference no scale; it must
      // then agree with Keras to TOLERANCE of the largest change the fit made to any weight.
      boolean roundingZero = o.get("keras_max_abs").getAsDouble() <= TOLERANCE * step && abs <= TOLERANCE * step;
      // Each variable against how far Keras moves it from itself with the kernel library alone, or
      // finetune with the order of the examples alone.
      double floor = Math.max(o.has("keras_floor") ? o.get("keras_floor").getAsDouble() : 0,
          o.has("java_floor") ? o.get("java_floor").getAsDouble() : 0);
      double tolerance = Math.max(TOLERANCE, FLOOR_FACTOR * floor);
      assertTrue(rel <= tolerance || roundingZero, what + ": " + o.get("path").getAsString() + " within " + tolerance
          + " of Keras's fit (floor: " + floor + "): " + o);
      if (roundingZero) {
        zeros++;
      } else if (rel > worst) {
        worst = rel;
        floorOfWorst = floor;
      }
    }
    // Keras loads the export as it loads its own: TFSMLayer on serve (and on serving_default for
    // one input: a signature of several cannot take TFSMLayer's one argument, in Keras's exports
    // too) gives the fitted Keras model's outputs, and the export lists its trainable variables.
    JsonObject tfsm = r.getAsJsonObject("tfsm");
    for (String endpoint : inputs == 1 ? List.of("serve", "serving_default") : List.of("serve")) {
      assertTrue(tfsm.get(endpoint).getAsJsonPrimitive().isNumber(), what + ": TFSMLayer(call_endpoint=\"" + endpoint
          + "\") failed: " + tfsm);
      assertTrue(tfsm.get(endpoint).getAsDouble() <= 1e-4, what + ": TFSMLayer(call_endpoint=\"" + endpoint
          + "\") vs the fitted Keras model: " + tfsm);
    }
    assertTrue(r.get("trainable_variables").getAsInt() > 0, what + ": " + r.get("trainable_variables"));
    System.out.printf("%s: Java vs Keras fit, worst relative difference %.3e (%d variable(s) of zero gradient, noise"
        + " below %.1e in both); Keras moved %d of %d trainable variables by more than %.0e%s%n", what, worst, zeros,
        TOLERANCE * step, moved, trainable, 10 * TOLERANCE,
        floorOfWorst > 0 ? String.format(" (floor on that variable: %.3e)", floorOfWorst) : "");
  }

  @Test
  void tabularMlpFromCsvMatchesKerasFit() throws IOException {
    Path dir = arrayCase("tabular_mlp");
    Path csv = head(dir.resolve("data/houses.csv"), STEPS * BATCH);
    Path out = tmp.resolve("export");
    CliRun run = CliRun.of("train", dir.resolve("keras3_export").toString(), "--task", "arrays", "--data",
        csv.toString(), "--targets", "price", "--batch-size", Integer.toString(BATCH), "--epochs", "1", "--no-shuffle",
        "--optimizer", "adam", "--lr", "0.01", "--out", out.toString());
    assertEquals(0, run.exit(), run.err());
    assertTrue(run.out().contains("Loss: mean_squared_error (float targets against a linear output"), run.out());
    assertTrue(run.out().contains("features [80, 8] float32; targets [80] float32"), run.out());
    assertMatches(oracle(dir, out, "{\"name\": \"adam\", \"learning_rate\": 0.01}", "--inputs", csv.toString(),
        "--target-columns", "price", "--loss", "mean_squared_error"), "tabular MLP from CSV, Adam", 1);
  }

  @Test
  void huberLossOnTheSameTableMatchesKerasFit() throws IOException {
    Path dir = arrayCase("tabular_mlp");
    Path csv = head(dir.resolve("data/houses.csv"), STEPS * BATCH);
    Path out = tmp.resolve("export");
    CliRun run = CliRun.of("train", dir.resolve("keras3_export").toString(), "--task", "arrays", "--data",
        csv.toString(), "--targets", "price", "--loss", "huber", "--batch-size", Integer.toString(BATCH), "--epochs",
        "1", "--no-shuffle", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--out", out.toString());
    assertEquals(0, run.exit(), run.err());
    assertMatches(oracle(dir, out, "{\"name\": \"sgd\", \"learning_rate\": 0.05, \"momentum\": 0.9}", "--inputs",
        csv.toString(), "--target-columns", "price", "--loss", "huber"), "tabular MLP from CSV, Huber, SGD", 1);
  }

  /**
   * Keras 3's LSTM runs as a While loop over TensorList ops, which have no gradient in the
   * runtime. Over a fixed number of time steps the flattener unrolls it (10 steps here), so the
   * LSTM's kernel, recurrent kernel and bias train with the Dense above them, as in Keras's fit.
   */
  @Test
  void anLstmRegressorTrainsThroughItsLoopAsKerasFitDoes() throws IOException {
    recurrentMatchesKerasFit("lstm_regressor", "series", "target", "mean_squared_error",
        "LSTM regressor (10 steps unrolled), Adam");
  }

  /** Padding masked (Embedding's mask_zero): each step keeps the previous state where the mask is off. */
  @Test
  void aMaskedGruClassifierTrainsAsKerasFitDoes() throws IOException {
    recurrentMatchesKerasFit("gru_classifier", "tokens", "labels", "sparse_categorical_crossentropy",
        "GRU classifier, padding masked, Adam");
  }

  /** SimpleRNN returning sequences under a Bidirectional LSTM (its backward half runs go_backwards). */
  @Test
  void stackedAndBidirectionalRecurrentLayersTrainAsKerasFitDoes() throws IOException {
    recurrentMatchesKerasFit("recurrent_stack", "series", "target", "mean_squared_error",
        "SimpleRNN (sequences) + Bidirectional LSTM, Adam");
  }

  /** A Bidirectional GRU returning every step's output: a loss per step, as Keras's fit takes it. */
  @Test
  void aBidirectionalGruTaggerTrainsAsKerasFitDoes() throws IOException {
    recurrentMatchesKerasFit("sequence_tagger", "series", "tags", "sparse_categorical_crossentropy",
        "Bidirectional GRU tagger (return_sequences), Adam");
  }

  /**
   * An LSTM over sequences of any length (None steps) loops as long as the input is long, known
   * only when the graph runs. The data's sequences all have 8 steps, so training fixes the length
   * (said in a Shapes line), unrolls 8 steps, and trains the LSTM as Keras's fit does.
   */
  @Test
  void anLstmOverSequencesOfAnyLengthTrainsAtTheDatasLength() throws IOException {
    CliRun run = recurrentMatchesKerasFit("any_length_lstm", "series", "target", "mean_squared_error",
        "LSTM over (None, 3) sequences, fixed to 8 steps by the data, Adam");
    assertTrue(run.out().contains("Shapes: fixed by the data so that the model's loops unroll: series (None, None, 3)"
        + " -> (None, 8, 3)"), run.out());
  }

  /**
   * tf_keras saves each recurrent layer as a call (its cuDNN twin beside it, chosen by the runtime
   * on a GPU) into a While loop whose length comes from the input's shape. One SGD step through
   * the unrolled LSTM and GRU gives the outputs TensorFlow's own step gives, its gradient taken
   * through the loops by GradientTape on the loaded signature (scripts/python_step.py).
   */
  @Test
  void aTfKerasLstmUnderAGruTakesTensorFlowsOwnStep() throws IOException {
    Fixture fixture = Fixture.of("recurrent/tf_keras");
    OneStepParity.check(tmp, fixture.model(), "series", fixture.sampleFile("sample/input_series.npy"),
        new float[] {0.5f, -0.5f, 1f, -1f}, "tf_keras LSTM + GRU", "0.1");
  }

  /**
   * A saved {@code tf.custom_gradient} whose gradient is not the forward's: the forward rounds
   * (Round has no gradient), the saved gradient passes dy straight through. Without the saved
   * function the kernel could not train at all; with it, the step equals TensorFlow's.
   */
  @Test
  void aSavedCustomGradientTrainsAsTensorFlowTrainsIt() throws IOException {
    Fixture fixture = Fixture.graphs().filter(f -> f.id().endsWith("straight_through")).findFirst().orElseThrow();
    OneStepParity.check(tmp, fixture.model(), "x", fixture.sampleFile("sample/input_x.npy"),
        new float[] {1f, -1f, 0.5f, 2f, 0f, -2f}, "straight-through custom gradient", "0.1");
  }

  /**
   * Quantization-aware training: fake quantization in trained ranges (per tensor and per channel)
   * has no gradient in the runtime's registry; finetune registers TensorFlow's straight-through
   * estimator, so the kernels and the ranges train as TensorFlow trains them.
   */
  @Test
  void fakeQuantizationTrainsItsKernelsAndRangesAsTensorFlowDoes() throws IOException {
    Fixture fixture = Fixture.graphs().filter(f -> f.id().endsWith("fake_quant")).findFirst().orElseThrow();
    OneStepParity.check(tmp, fixture.model(), "x", fixture.sampleFile("sample/input_x.npy"),
        new float[] {1f, -1f, 0.5f, 2f, 0f, -2f}, "fake quantization (QAT)", "0.1");
  }

  /**
   * A model quantization-aware trained with tfmot (tf_keras; savedmodels/qat): fake quantization of
   * inputs, kernels (per channel for the convolution) and activations in ranges Keras's fit
   * calibrated. The kernels and biases train through TensorFlow's straight-through gradients
   * (the ranges are not trainable in tfmot), and the step equals TensorFlow's.
   */
  @Test
  void aTfmotQuantizationAwareModelTakesTensorFlowsOwnStep() throws IOException {
    Fixture fixture = Fixture.of("qat/tf_keras");
    OneStepParity.check(tmp, fixture.model(), "image", fixture.sampleFile("sample/input_image.npy"), oneHot(4),
        "tfmot QAT CNN", "0.1");
  }

  /**
   * Text in, as Keras users feed it: a TextVectorization (lowercased, split into words, looked up
   * in the vocabulary it was adapted on) and a StringLookup of one word, each before an Embedding,
   * fed NumPy str arrays from an .npz. Every weight trains as in Keras's fit on the same strings.
   */
  @Test
  void aTextVectorizationAndStringLookupModelTrainsAsKerasFitDoes() throws IOException {
    Path dir = arrayCase("text_lookup");
    Path x = tmp.resolve("x.npz");
    npz(x, List.of(firstRows(dir.resolve("data/train.npz"), "text"), firstRows(dir.resolve("data/train.npz"),
        "colour")));
    Path y = firstRows(dir.resolve("data/labels.npy"), "labels");
    Path out = tmp.resolve("export");
    CliRun run = trainAdam(dir, x, y, "0.01", out);
    assertEquals(0, run.exit(), run.err());
    assertTrue(run.out().contains("(colour [80] U5, text [80] U"), run.out());
    assertTrue(!run.err().contains("left out"), run.err());
    assertMatches(oracle(dir, out, "{\"name\": \"adam\", \"learning_rate\": 0.01}", "--inputs", x.toString(),
        "--targets", y.toString(), "--loss", "sparse_categorical_crossentropy"),
        "TextVectorization + StringLookup classifier, Adam", 2);
  }

  /**
   * EfficientNetB0's swish is saved as a custom gradient at every activation (an IdentityN each);
   * with the saved gradient functions every layer trains, and the step equals TensorFlow's
   * (BatchNormalization in inference mode on both sides, as the signature runs it).
   */
  @Test
  void efficientNetTrainsThroughItsSavedSwishGradients() throws IOException {
    Path dir = arrayCase("efficientnet_b0");
    NpyArray images = org.finetune.data.ArrayTable.read(dir.resolve("data/train.npz"), "image").get("image").all()
        .rows(new int[] {0, 1, 2, 3});
    Path x = tmp.resolve("images.npy");
    images.write(x);
    OneStepParity.check(tmp, dir.resolve("keras3_export"), "image", x, oneHot(4), "EfficientNetB0 (swish)", "0.1");
  }

  /**
   * A Keras 3 Sequential model (its variables saved as sequential/conv/kernel, ...) trains every
   * layer as Keras's fit does.
   */
  @Test
  void aKeras3SequentialModelTrainsAsKerasFitDoes() throws IOException {
    recurrentMatchesKerasFit("sequential_cnn", "image", "labels", "sparse_categorical_crossentropy",
        "Sequential CNN (conv, norm, classes)");
  }

  /**
   * A base model called as a layer (how a keras.applications base sits in a transfer model): its
   * layers' variables carry their own names, not the base's, and every one trains as in Keras's fit.
   */
  @Test
  void aModelNestedAsALayerTrainsAsKerasFitDoes() throws IOException {
    recurrentMatchesKerasFit("nested_base", "image", "labels", "sparse_categorical_crossentropy",
        "base model nested as a layer (conv, norm) + classes");
  }

  /**
   * Keras 3's recurrent layers run as While loops over TensorList ops, which have no gradient in
   * the runtime. Over a fixed number of time steps the flattener unrolls them, so every weight of
   * the recurrent layers trains with the layers above, as in Keras's fit; no variable is left out.
   */
  private CliRun recurrentMatchesKerasFit(String name, String input, String targets, String loss, String what)
      throws IOException {
    Path dir = arrayCase(name);
    Path x = tmp.resolve("x.npz");
    npz(x, List.of(firstRows(dir.resolve("data/train.npz"), input)));
    Path y = firstRows(dir.resolve("data/" + targets + ".npy"), targets);
    Path out = tmp.resolve("export");
    CliRun run = trainAdam(dir, x, y, "0.01", out);
    assertEquals(0, run.exit(), run.err());
    assertTrue(!run.err().contains("left out"), run.err());
    assertMatches(oracle(dir, out, "{\"name\": \"adam\", \"learning_rate\": 0.01}", "--inputs", x.toString(),
        "--targets", y.toString(), "--loss", loss), what, 1);
    return run;
  }

  /**
   * Two inputs and two outputs, as a job file: a classification and a regression output trained
   * together, their losses weighted, as Keras's {@code compile(loss={...}, loss_weights={...})}.
   */
  @Test
  void imageAndTabularWithTwoOutputsMatchesKerasFitFromAJobFile() throws IOException {
    Path dir = arrayCase("image_tabular");
    Path npz = dir.resolve("data/train.npz");
    Path image = firstRows(npz, "image");
    Path tabular = firstRows(npz, "tabular");
    Path kind = firstRows(dir.resolve("data/kind.npy"), "kind");
    Path size = firstRows(dir.resolve("data/size.npy"), "size");
    Path x = tmp.resolve("x.npz");
    npz(x, List.of(image, tabular));
    Path out = tmp.resolve("export");
    Path job = tmp.resolve("job.json");
    Files.writeString(job, "{\"model\": \"" + dir.resolve("keras3_export") + "\", \"task\": \"arrays\","
        + " \"data\": \"x.npz\", \"targets\": {\"kind\": \"kind.npy\", \"size\": \"size.npy\"},"
        + " \"loss\": {\"kind\": \"sparse_categorical_crossentropy\", \"size\": \"mse\"},"
        + " \"loss_weights\": {\"kind\": 1.0, \"size\": 0.5}, \"shuffle\": false, \"batch_size\": " + BATCH
        + ", \"epochs\": 1, \"optimizer\": {\"name\": \"adam\", \"learning_rate\": 0.01}, \"export\": \"export\"}");
    CliRun run = CliRun.of("train", "--job", job.toString());
    assertEquals(0, run.exit(), run.err());
    assertTrue(run.out().contains("- kind_loss: "), run.out());
    assertTrue(run.out().contains("- size_loss: "), run.out());
    assertMatches(oracle(dir, out, "{\"name\": \"adam\", \"learning_rate\": 0.01}", "--inputs", x.toString(),
        "--targets-by-output", "{\"kind\": \"" + kind + "\", \"size\": \"" + size + "\"}", "--loss-json",
        "{\"kind\": \"sparse_categorical_crossentropy\", \"size\": \"mean_squared_error\"}", "--loss-weights",
        "{\"kind\": 1.0, \"size\": 0.5}"), "image + tabular, two outputs (weights 1 and 0.5), Adam", 2);
  }

  /** A keras-hub BERT classifier (tiny configuration): three int inputs, padding masked. */
  @Test
  void kerasHubBertClassifierMatchesKerasFit() throws IOException {
    Path dir = arrayCase("bert_classifier");
    Path npz = dir.resolve("data/train.npz");
    // The inputs as a folder of .npy files, one per input (as arrays too large to read are given).
    Path x = Files.createDirectories(tmp.resolve("x"));
    for (String name : List.of("token_ids", "segment_ids", "padding_mask")) {
      Files.move(firstRows(npz, name), x.resolve(name + ".npy"));
    }
    Path y = firstRows(dir.resolve("data/labels.npy"), "labels");
    Path out = tmp.resolve("export");
    CliRun run = trainAdam(dir, x, y, "0.005", out);
    assertEquals(0, run.exit(), run.err());
    assertTrue(run.out().contains("(cast: padding_mask int64 -> int32, segment_ids int64 -> int32, token_ids int64 ->"
        + " int32)"), run.out());
    assertMatches(oracleWithFloor(dir, out, "{\"name\": \"adam\", \"learning_rate\": 0.005}", "--inputs", x.toString(),
        "--targets", y.toString(), "--loss", "sparse_categorical_crossentropy"),
        "keras-hub BERT classifier (tiny), Adam", 3);
  }

  @Test
  void tokenClassifierMatchesKerasFitFromTheLibrary() throws IOException {
    Path dir = arrayCase("token_classifier");
    Path tokens = dir.resolve("data/train.npz");
    Path labels = dir.resolve("data/labels.npy");
    Path out = tmp.resolve("export");
    List<String> said = new ArrayList<>();
    FineTuneResult result;
    // Keras fits exactly 5 batches; 96 examples in batches of 16 would be 6 steps, so both read
    // the first 80 (the library takes a .npy for a model with one input).
    Path x = firstRows(tokens, "tokens");
    Path y = firstRows(labels, "labels");
    try (KerasSavedModel model = KerasSavedModel.open(dir.resolve("keras3_export"))) {
      result = FineTuneJob.builder(model).data(JobData.arrays(x, y)).shuffle(false).batchSize(BATCH)
          .epochs(1).optimizer(new OptimizerSpec.Sgd(0.1, 0.9, false)).exportTo(out)
          .listener(new org.finetune.job.JobListener() {
            @Override
            public void message(String line) {
              said.add(line);
            }
          }).build().run();
    }
    assertEquals(1, result.history().size());
    assertTrue(said.stream().anyMatch(l -> l.startsWith("Loss: sparse_categorical_crossentropy (integer class"
        + " labels against a softmax output")), String.join("\n", said));
    assertTrue(said.stream().anyMatch(l -> l.contains("tokens int64 -> int32")), String.join("\n", said));
    assertMatches(oracle(dir, out, "{\"name\": \"sgd\", \"learning_rate\": 0.1, \"momentum\": 0.9}", "--inputs",
        x.toString(), "--targets", y.toString(), "--loss",
        "sparse_categorical_crossentropy"), "token classifier (Embedding + attention), SGD", 1);
  }

  /** One epoch of Adam at {@code lr} from the CLI on the arrays task, batches of {@link #BATCH} in file order. */
  static CliRun trainAdam(Path dir, Path x, Path y, String lr, Path out) {
    return CliRun.of("train", dir.resolve("keras3_export").toString(), "--task", "arrays", "--data", x.toString(),
        "--targets", y.toString(), "--batch-size", Integer.toString(BATCH), "--epochs", "1", "--no-shuffle",
        "--optimizer", "adam", "--lr", lr, "--out", out.toString());
  }

  /** Targets for {@code rows} rows of 3 classes, row i one-hot at class i mod 3. */
  static float[] oneHot(int rows) {
    float[] targets = new float[rows * 3];
    for (int i = 0; i < targets.length; i++) {
      targets[i] = i % 3 == i / 3 % 3 ? 1f : 0f;
    }
    return targets;
  }

  /** An .npz as numpy.savez writes it: each .npy an array named after its file. */
  private static void npz(Path out, List<Path> npys) throws IOException {
    try (java.util.zip.ZipOutputStream zip = new java.util.zip.ZipOutputStream(Files.newOutputStream(out))) {
      for (Path p : npys) {
        zip.putNextEntry(new java.util.zip.ZipEntry(p.getFileName().toString()));
        zip.write(Files.readAllBytes(p));
        zip.closeEntry();
      }
    }
  }

  /** The first 5 batches of an array (from a .npz entry or a .npy) as a .npy. */
  private Path firstRows(Path file, String name) throws IOException {
    NpyArray a = org.finetune.data.ArrayTable.read(file, name).get(name).all();
    int[] rows = new int[STEPS * BATCH];
    for (int i = 0; i < rows.length; i++) {
      rows[i] = i;
    }
    Path out = tmp.resolve(name + ".npy");
    a.rows(rows).write(out);
    return out;
  }

  /**
   * What the image task has, on arrays: gradual unfreezing over named layer groups with
   * discriminative rates, a validation split, shuffling, checkpoints; a run stopped after 2 of 4
   * epochs and resumed ends with the weights of the run that never stopped, bit for bit.
   */
  @Test
  void aResumedArraysRunEqualsAnUninterruptedOne() throws IOException {
    Path dir = arrayCase("tabular_mlp");
    Path csv = dir.resolve("data/houses.csv");
    java.util.function.BiFunction<Integer, Path, FineTuneJob.Builder> job = (epochs, checkpoints) -> {
      KerasSavedModel.Loader loader = KerasSavedModel.loader(dir.resolve("keras3_export"));
      return FineTuneJob.builder(loader).data(JobData.arrays(csv, List.of("price"))).validationSplit(0.25)
          .batchSize(16).epochs(epochs).unfreezeGradually(1)
          .groups(List.of(org.finetune.train.Selector.parse("layers:price"),
              org.finetune.train.Selector.parse("layers:hidden")))
          .checkpoints(checkpoints);
    };
    Path whole = tmp.resolve("whole");
    FineTuneResult uninterrupted = job.apply(4, tmp.resolve("ckpt_whole")).exportTo(whole).build().run();
    Path ckpt = tmp.resolve("ckpt");
    job.apply(2, ckpt).build().run();
    Path resumedExport = tmp.resolve("resumed");
    FineTuneResult resumed = job.apply(4, ckpt).resume(ckpt.resolve("last")).exportTo(resumedExport).build().run();
    assertEquals(2, resumed.startEpoch());
    assertEquals(uninterrupted.allEpochs(), resumed.allEpochs());
    assertEquals(2, uninterrupted.plan().stages().size());
    assertEquals(org.finetune.testing.TreeDigest.of(whole.resolve("variables")),
        org.finetune.testing.TreeDigest.of(resumedExport.resolve("variables")));
    try (KerasSavedModel base = KerasSavedModel.open(dir.resolve("keras3_export"));
        KerasSavedModel trained = KerasSavedModel.open(whole)) {
      for (String v : List.of("hidden/kernel", "price/kernel")) {
        assertTrue(!java.util.Arrays.equals(value(base, v), value(trained, v)), v + " trained");
      }
    }
  }

  static byte[] value(KerasSavedModel model, String name) {
    try (org.finetune.train.Trainer t = new org.finetune.train.Trainer(model,
        org.finetune.train.TrainingPlan.builder().loss(org.finetune.train.LossSpec.MSE).build())) {
      return t.values(List.of(name)).get(name).data();
    }
  }

  @Test
  void integerTargetsOnALinearOutputLeaveTheLossOpen() throws IOException {
    Path dir = arrayCase("tabular_mlp");
    Path csv = tmp.resolve("counts.csv");
    List<String> lines = new ArrayList<>(Files.readAllLines(dir.resolve("data/houses.csv")).subList(0, 21));
    for (int i = 1; i < lines.size(); i++) {
      String l = lines.get(i);
      lines.set(i, l.substring(0, l.lastIndexOf(',') + 1) + (i % 3));
    }
    Files.write(csv, lines);
    CliRun run = CliRun.of("train", dir.resolve("keras3_export").toString(), "--task", "arrays", "--data",
        csv.toString(), "--targets", "price", "--epochs", "1");
    assertEquals(2, run.exit(), run.err());
    assertEquals("finetune train: the targets (int64 [20]) and the output (linear) leave the loss open; give --loss:"
        + " sparse_categorical_crossentropy for class labels, mean_squared_error for values", run.errLine());
  }

  /**
   * Logits (Keras's {@code from_logits=True}): the tabular MLP's linear output as the logit of a
   * 0/1 label, the loss read as binary cross-entropy of logits, against Keras's fit with
   * {@code BinaryCrossentropy(from_logits=True)}.
   */
  @Test
  void logitsMatchKerasFitFromLogits() throws IOException {
    Path dir = arrayCase("tabular_mlp");
    Path csv = tmp.resolve("binary.csv");
    List<String> lines = new ArrayList<>(Files.readAllLines(dir.resolve("data/houses.csv")).subList(0, STEPS * BATCH
        + 1));
    for (int i = 1; i < lines.size(); i++) {
      String l = lines.get(i);
      lines.set(i, l.substring(0, l.lastIndexOf(',') + 1) + (l.startsWith("-") ? 0 : 1));
    }
    Files.write(csv, lines);
    Path out = tmp.resolve("export");
    CliRun run = CliRun.of("train", dir.resolve("keras3_export").toString(), "--task", "arrays", "--data",
        csv.toString(), "--targets", "price", "--from-logits", "--batch-size", Integer.toString(BATCH), "--epochs",
        "1", "--no-shuffle", "--optimizer", "adam", "--lr", "0.01", "--out", out.toString());
    assertEquals(0, run.exit(), run.err());
    assertTrue(run.out().contains("Loss: binary_crossentropy (targets against a sigmoid output, its values taken as"
        + " logits;"), run.out());
    assertEquals("", run.err());
    assertMatches(oracle(dir, out, "{\"name\": \"adam\", \"learning_rate\": 0.01}", "--inputs", csv.toString(),
        "--target-columns", "price", "--loss", "binary_crossentropy", "--from-logits"),
        "tabular MLP, 0/1 labels, binary cross-entropy of logits, Adam", 1);
  }

  /** Logits of an output that ends in a softmax would be softmaxed twice: refused. */
  @Test
  void logitsOfASoftmaxAreRefused() {
    Path dir = arrayCase("token_classifier");
    CliRun run = CliRun.of("train", dir.resolve("keras3_export").toString(), "--task", "arrays", "--data",
        dir.resolve("data/train.npz").toString(), "--targets", dir.resolve("data/labels.npy").toString(),
        "--from-logits", "--epochs", "1");
    assertEquals(2, run.exit(), run.err());
    assertEquals("finetune train: the output ends in a softmax, so its values are probabilities, not logits; leave out"
        + " --from-logits: the loss would apply it again", run.errLine());
  }

  /** A cross-entropy named for an output without a sigmoid is said to read its values as probabilities. */
  @Test
  void aCrossEntropyOnALinearOutputIsSaidToReadProbabilities() throws IOException {
    Path dir = arrayCase("tabular_mlp");
    Path csv = tmp.resolve("binary.csv");
    List<String> lines = new ArrayList<>(Files.readAllLines(dir.resolve("data/houses.csv")).subList(0, 21));
    for (int i = 1; i < lines.size(); i++) {
      String l = lines.get(i);
      lines.set(i, l.substring(0, l.lastIndexOf(',') + 1) + (i % 2));
    }
    Files.write(csv, lines);
    CliRun run = CliRun.of("train", dir.resolve("keras3_export").toString(), "--task", "arrays", "--data",
        csv.toString(), "--targets", "price", "--loss", "binary_crossentropy", "--epochs", "1");
    assertEquals(0, run.exit(), run.err());
    assertEquals("warning: the output ends in no sigmoid, and binary_crossentropy takes its values as probabilities; if"
        + " they are logits, train from logits (Keras's from_logits=True)", run.errLine());
  }

  @Test
  void anArrayNoInputTakesIsRefusedNotIgnored() throws IOException {
    Path dir = arrayCase("token_classifier");
    NpyArray tokens = org.finetune.data.ArrayTable.read(dir.resolve("data/train.npz"), "tokens").get("tokens").all();
    Path npz = tmp.resolve("extra.npz");
    List<Path> arrays = new ArrayList<>();
    for (String name : List.of("tokens", "mask")) {
      Path npy = tmp.resolve(name + ".npy");
      tokens.write(npy);
      arrays.add(npy);
    }
    npz(npz, arrays);
    try (KerasSavedModel model = KerasSavedModel.open(dir.resolve("keras3_export"))) {
      JobException e = org.junit.jupiter.api.Assertions.assertThrows(JobException.class, () -> FineTuneJob
          .builder(model).data(JobData.arrays(npz, dir.resolve("data/labels.npy"))).epochs(1).build().run());
      assertEquals(npz + " has array(s) mask that no input of signature serving_default takes (it takes tokens)",
          e.problem());
    }
  }

}
