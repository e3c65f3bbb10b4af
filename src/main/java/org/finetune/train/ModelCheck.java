package org.finetune.train;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import org.finetune.data.NpyArray;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.GradientGap;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;
import org.tensorflow.Tensor;

/**
 * Can this SavedModel be fine-tuned here? Flattens a signature and checks it computes what the
 * original does on random inputs of the signature's shapes, finds which layers gradients reach,
 * and runs one training step on random data with a loss suited to each output (all outputs
 * together when there are several).
 */
public final class ModelCheck {
  /**
   * What the check found.
   *
   * @param flatDifference max |flat - original| / max |original| over the outputs
   * @param trainableLayers layers whose trainable weights gradients reach
   * @param untrainableLayers layer to the reason it cannot be trained
   * @param losses the loss of each output the step trained (all of them, summed, when several)
   * @param lossBefore the loss on the random batch before the step
   * @param steps the steps taken from the same starting weights, in order: at {@link #RATE}, then,
   *     while a step does not lower the loss (it raises it, or makes it NaN or infinite) and the
   *     gradients are finite, at a tenth of the rate before, down to {@link #LOWEST_RATE}
   * @param gradientsFinite whether every gradient at the starting weights is finite
   * @param warnings what the trainer warned of
   * @param notes how inputs that are not plain random numbers were made (text from a vocabulary)
   */
  public record Report(double flatDifference, List<String> trainableLayers, Map<String, String> untrainableLayers,
      Map<String, LossSpec> losses, double lossBefore, List<Step> steps, boolean gradientsFinite,
      List<String> warnings, List<String> notes) {
    public Report {
      losses = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(losses));
      trainableLayers = List.copyOf(trainableLayers);
      untrainableLayers = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(untrainableLayers));
      steps = List.copyOf(steps);
      warnings = List.copyOf(warnings);
      notes = List.copyOf(notes);
    }

    /** The loss after the first step, at {@link #RATE}. */
    public double lossAfter() {
      return steps.get(0).lossAfter();
    }

    /** The first step that lowered the loss, if any did. */
    public Optional<Step> descent() {
      return steps.stream().filter(step -> step.lossAfter() < lossBefore).findFirst();
    }

    /** Whether some step kept the loss finite. */
    public boolean finiteStep() {
      return steps.stream().anyMatch(step -> Double.isFinite(step.lossAfter()));
    }
  }

  /** One SGD step from the starting weights: its learning rate and the loss after it. */
  public record Step(double rate, double lossAfter) {}

  /** The learning rate of the check's step. */
  public static final double RATE = 0.01;
  /** The lowest rate tried when steps at higher rates make the loss NaN or infinite. */
  public static final double LOWEST_RATE = 1e-6;

  private ModelCheck() {}

  public static Report run(KerasSavedModel model, String signature, long seed) {
    return run(model, signature, seed, Map.of());
  }

  /**
   * Checks on {@code given} inputs (by input key, cast to the signature's dtypes as Keras casts
   * them: int64 ids to int32); inputs not given are random, integers below the rows of the tables
   * they index.
   */
  public static Report run(KerasSavedModel model, String signature, long seed, Map<String, NpyArray> given) {
    SignatureInfo sig = model.info().signatures().get(signature);
    Random random = new Random(seed);
    Map<String, NpyArray> inputs = new LinkedHashMap<>();
    List<String> notes = new ArrayList<>();
    // The examples' shape fixes free dimensions, so that loops over them unroll as in training.
    Map<String, long[]> shapes = new LinkedHashMap<>();
    for (TensorSpec spec : sig.inputs()) {
      long[] shape = given.containsKey(spec.key()) ? given.get(spec.key()).shape() : shapeOf(spec);
      if (shape.length > 0) {
        shapes.put(spec.key(), java.util.Arrays.copyOfRange(shape, 1, shape.length));
      }
    }
    if (signature.equals(model.info().signature())) {
      model.fixInputShapes(shapes);
    }
    Map<String, Long> bounds = IndexRanges.of(model.flatSignature(signature), model.info());
    Map<String, StringInputs.Vocabulary> words = sig.inputs().stream().anyMatch(
        s -> s.dtype().equals("string") && !given.containsKey(s.key()))
        ? StringInputs.of(model, model.flatSignature(signature)) : Map.of();
    for (TensorSpec spec : sig.inputs()) {
      NpyArray g = given.get(spec.key());
      if (g == null && spec.dtype().equals("string")) {
        StringInputs.Vocabulary vocabulary = words.get(spec.key());
        if (vocabulary == null) {
          throw new IllegalArgumentException("cannot make text for string input '" + spec.key()
              + "': its values reach no lookup table whose words could be drawn; give sample inputs");
        }
        inputs.put(spec.key(), StringInputs.random(shapeOf(spec), vocabulary, random));
        notes.add("text input '" + spec.key() + "': " + (vocabulary.split() ? "1 to 8 words" : "one word")
            + " each, drawn from the " + vocabulary.words().size() + " of the lookup table it reaches");
        continue;
      }
      inputs.put(spec.key(), g != null ? g.castTo(spec.dtype())
          : randomArray(spec, random, bounds.getOrDefault(spec.key(), 100L)));
    }
    double flatDiff = flatDifference(model, signature, inputs);

    Map<String, String> untrainable = new LinkedHashMap<>();
    for (GradientGap gap : model.info().gradientGaps()) {
      for (String layer : gap.layers()) {
        untrainable.putIfAbsent(layer, "behind " + gap.op() + " (" + gap.node() + "), which has no gradient");
      }
    }
    TrainingPlan.Builder builder = TrainingPlan.builder().signature(signature)
        .optimizer(new OptimizerSpec.Sgd(RATE, 0, false));
    Map<String, LossSpec> losses = new LinkedHashMap<>();
    Batch batch;
    if (sig.outputs().size() > 1) {
      // Every output trains, each with its loss, as a model with several outputs is fit.
      Map<String, NpyArray> targets = new LinkedHashMap<>();
      for (TensorSpec output : sig.outputs()) {
        LossSpec loss = lossFor(model, signature, output, sig);
        if (loss == LossSpec.CAUSAL_LM) {
          loss = LossSpec.MSE;
        }
        losses.put(output.key(), loss);
        targets.put(output.key(), targetsFor(model, signature, inputs, output, loss, random));
        builder.output(new OutputLoss(output.key(), loss, 1.0));
      }
      batch = Batch.ofOutputs(inputs, targets);
    } else {
      TensorSpec output = sig.outputs().get(0);
      LossSpec loss = lossFor(model, signature, output, sig);
      losses.put(output.key(), loss);
      NpyArray targets = loss == LossSpec.CAUSAL_LM ? null : targetsFor(model, signature, inputs, output, loss, random);
      batch = targets == null ? Batch.unlabelled(inputs) : Batch.of(inputs, targets);
      builder.output(output.key()).loss(loss);
    }
    TrainingPlan plan = builder.build();
    try (Trainer trainer = new Trainer(model, plan)) {
      List<String> trained = trainer.trainedVariables(0);
      Set<String> trainedLayers = new LinkedHashSet<>();
      for (LayerInfo layer : model.info().layers()) {
        if (layer.variables().stream().anyMatch(v -> trained.contains(v.name()))) {
          trainedLayers.add(layer.name());
        } else if (layer.trainable()) {
          untrainable.putIfAbsent(layer.name(), "the loss does not reach its weights through ops with gradients");
        }
      }
      untrainable.keySet().removeAll(trainedLayers);
      double before = trainer.evaluate(batch).loss();
      List<Step> steps = new ArrayList<>();
      boolean gradientsFinite = steps(trainer, batch, before, steps);
      return new Report(flatDiff, new ArrayList<>(trainedLayers), untrainable, losses, before, steps, gradientsFinite,
          trainer.warnings(), notes);
    }
  }

  /**
   * A step at {@link #RATE}; when it does not lower a finite loss, the weights go back to where
   * they started, and, if the gradients there are finite (so that the step was too long rather than
   * its direction undefined), steps a tenth as long are tried in turn until one lowers it (when the
   * starting weights can be saved: a TF1 model's reference variables cannot). Returns whether the
   * gradients are finite (true when not looked at).
   */
  private static boolean steps(Trainer trainer, Batch batch, double before, List<Step> steps) {
    java.nio.file.Path saved = null;
    try {
      if (Double.isFinite(before)) {
        saved = java.nio.file.Files.createTempDirectory("finetune-check");
        try {
          trainer.saveState(saved.resolve("start"));
        } catch (RuntimeException e) {
          // Reference variables (TF1) cannot be written from Java: one step, no shorter ones.
          org.finetune.export.AtomicFiles.deleteTemporary(saved);
          saved = null;
        }
      }
      trainer.step(batch);
      steps.add(new Step(RATE, trainer.evaluate(batch).loss()));
      if (saved == null || steps.get(0).lossAfter() < before) {
        return true;
      }
      trainer.restoreState(saved.resolve("start"));
      for (NpyArray g : trainer.gradients(batch).values()) {
        for (double v : g.toDoubles()) {
          if (!Double.isFinite(v)) {
            return false;
          }
        }
      }
      long shorter = Math.round(Math.log10(RATE / LOWEST_RATE));
      for (int k = 1; k <= shorter; k++) {
        double scale = Math.pow(10, -k);
        trainer.restoreState(saved.resolve("start"));
        trainer.setRateScale(scale);
        trainer.step(batch);
        double after = trainer.evaluate(batch).loss();
        steps.add(new Step(RATE * scale, after));
        if (after < before) {
          break;
        }
      }
      return true;
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    } finally {
      if (saved != null) {
        org.finetune.export.AtomicFiles.deleteTemporary(saved);
      }
    }
  }

  private static double flatDifference(KerasSavedModel model, String signature, Map<String, NpyArray> inputs) {
    FlatSignature flat = model.flatSignature(signature);
    Map<String, Tensor> original = new LinkedHashMap<>();
    Map<String, Tensor> flatFeeds = new LinkedHashMap<>();
    Map<String, Tensor> a = Map.of();
    Map<String, Tensor> b = Map.of();
    try {
      inputs.forEach((k, v) -> {
        original.put(k, v.toTensor());
        flatFeeds.put(flat.inputs().get(k), v.toTensor());
      });
      a = model.predict(signature, original);
      b = model.run(flatFeeds, new ArrayList<>(flat.outputs().values()));
      double worst = 0;
      for (String key : flat.outputs().keySet()) {
        worst = Math.max(worst, NpyArray.relativeDifference(NpyArray.of(a.get(key)).toDoubles(),
            NpyArray.of(b.get(flat.outputs().get(key))).toDoubles()));
      }
      return worst;
    } finally {
      original.values().forEach(Tensor::close);
      flatFeeds.values().forEach(Tensor::close);
      a.values().forEach(Tensor::close);
      b.values().forEach(Tensor::close);
    }
  }

  /** Softmax output: sparse cross-entropy; token logits with token inputs: causal LM; else MSE. */
  private static LossSpec lossFor(KerasSavedModel model, String signature, TensorSpec output, SignatureInfo sig) {
    boolean tokens = sig.inputs().stream().anyMatch(t -> t.key().equals("token_ids"))
        && sig.inputs().stream().anyMatch(t -> t.key().equals("padding_mask"));
    if (tokens && output.shape().size() == 3 && output.dtype().equals("float32")) {
      return LossSpec.CAUSAL_LM;
    }
    FlatSignature flat = model.flatSignature(signature);
    if (output.shape().size() == 2
        && Losses.beneath(model.graph().output(flat.outputs().get(output.key())), "Softmax").isPresent()) {
      return LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY;
    }
    return LossSpec.MSE;
  }

  private static NpyArray targetsFor(KerasSavedModel model, String signature, Map<String, NpyArray> inputs,
      TensorSpec output, LossSpec loss, Random random) {
    // The output's actual shape for this batch, from one prediction.
    Map<String, Tensor> feeds = new LinkedHashMap<>();
    Map<String, Tensor> out = Map.of();
    long[] shape;
    try {
      inputs.forEach((k, v) -> feeds.put(k, v.toTensor()));
      out = model.predict(signature, feeds);
      shape = out.get(output.key()).shape().asArray();
    } finally {
      feeds.values().forEach(Tensor::close);
      out.values().forEach(Tensor::close);
    }
    if (loss == LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY) {
      ByteBuffer b = ByteBuffer.allocate((int) shape[0] * 4).order(ByteOrder.LITTLE_ENDIAN);
      for (int i = 0; i < shape[0]; i++) {
        b.putInt(random.nextInt((int) shape[1]));
      }
      return new NpyArray("int32", new long[] {shape[0]}, b.array());
    }
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    ByteBuffer b = ByteBuffer.allocate((int) n * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (long i = 0; i < n; i++) {
      b.putFloat((float) random.nextGaussian());
    }
    return new NpyArray("float32", shape, b.array());
  }

  /** The shape of a random batch for {@code spec}: unknown dimensions become 2 (batch) or 8. */
  private static long[] shapeOf(TensorSpec spec) {
    long[] shape = new long[spec.shape().size()];
    for (int i = 0; i < shape.length; i++) {
      long d = spec.shape().get(i);
      shape[i] = d >= 0 ? d : (i == 0 ? 2 : 8);
    }
    return shape;
  }

  /**
   * Random values of a signature input: unknown dimensions become 2 (batch) or 8; masks are ones;
   * integers are drawn below {@code bound} (the rows of the tables they index).
   */
  static NpyArray randomArray(TensorSpec spec, Random random, long bound) {
    long[] shape = shapeOf(spec);
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    boolean mask = spec.key().contains("mask");
    switch (spec.dtype()) {
      case "float32": {
        ByteBuffer b = ByteBuffer.allocate((int) n * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < n; i++) {
          b.putFloat((float) random.nextGaussian());
        }
        return new NpyArray("float32", shape, b.array());
      }
      case "int32": case "int64": {
        int size = spec.dtype().equals("int32") ? 4 : 8;
        ByteBuffer b = ByteBuffer.allocate((int) n * size).order(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < n; i++) {
          int v = mask ? 1 : random.nextInt((int) Math.min(bound, Integer.MAX_VALUE));
          if (size == 4) {
            b.putInt(v);
          } else {
            b.putLong(v);
          }
        }
        return new NpyArray(spec.dtype(), shape, b.array());
      }
      default:
        throw new IllegalArgumentException("finetune check cannot make random " + spec.dtype() + " input '"
            + spec.key() + "'");
    }
  }
}
