package org.finetune.train;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import org.finetune.data.NpyArray;
import org.finetune.model.FlatSignature;
import org.tensorflow.Session;
import org.tensorflow.Tensor;
import org.tensorflow.types.TFloat32;

/** Puts a {@link Batch} into a {@link Trainer}'s run: the signature's inputs, targets, the head's dropout. */
final class BatchFeeder {
  private final TrainingPlan plan;
  private final FlatSignature flat;
  private final Losses.LossGraph lossGraph;
  private final String features;
  private final Optional<Head> head;
  private final BooleanSupplier headOnlyNow;
  private final LongSupplier iterations;

  /**
   * @param features the tensor cached features are fed to (the new head's input)
   * @param headOnlyNow whether the current stage trains the new head alone (cached features allowed)
   * @param iterations the optimizer's step count, which seeds dropout
   */
  BatchFeeder(TrainingPlan plan, FlatSignature flat, Losses.LossGraph lossGraph, String features, Optional<Head> head,
      BooleanSupplier headOnlyNow, LongSupplier iterations) {
    this.plan = plan;
    this.flat = flat;
    this.lossGraph = lossGraph;
    this.features = features;
    this.head = head;
    this.headOnlyNow = headOnlyNow;
    this.iterations = iterations;
  }

  /**
   * Feeds {@code batch}'s inputs (or its cached features), its targets when asked and the loss has
   * them, and in training the head's dropout rate and seed; the tensors made go to {@code owned}.
   */
  void feed(Session.Runner runner, Batch batch, List<Tensor> owned, boolean train, boolean withTargets) {
    NpyArray cached = batch.inputs().get(Trainer.FEATURES);
    if (cached != null) {
      if (!headOnlyNow.getAsBoolean()) {
        throw new IllegalArgumentException("a batch of cached features needs a stage that trains the new head alone");
      }
      Tensor t = cached.toTensor();
      owned.add(t);
      runner.feed(features, t);
    }
    for (Map.Entry<String, String> in : flat.inputs().entrySet()) {
      if (cached != null && !batch.inputs().containsKey(in.getKey())) {
        continue;
      }
      NpyArray a = batch.inputs().get(in.getKey());
      if (a == null) {
        throw new IllegalArgumentException("the batch lacks input '" + in.getKey() + "'; signature "
            + plan.signature() + " takes " + flat.inputs().keySet());
      }
      Tensor t = a.toTensor();
      owned.add(t);
      runner.feed(in.getValue(), t);
    }
    if (withTargets && lossGraph.targets().isPresent()) {
      NpyArray targets = batch.targets().orElseThrow(() -> new IllegalArgumentException(
          "the " + plan.loss().kerasName() + " loss needs targets; the batch has none"));
      Tensor t = targetTensor(targets, plan.loss());
      owned.add(t);
      runner.feed(lossGraph.targets().get(), t);
    }
    if (withTargets) {
      for (Map.Entry<String, Losses.Target> e : lossGraph.targetsByOutput().entrySet()) {
        NpyArray targets = batch.targetsByOutput().get(e.getKey());
        if (targets == null) {
          throw new IllegalArgumentException("the batch has no targets for output '" + e.getKey() + "'; the plan trains "
              + lossGraph.targetsByOutput().keySet());
        }
        Tensor t = targetTensor(targets, e.getValue().loss());
        owned.add(t);
        runner.feed(e.getValue().placeholder(), t);
      }
    }
    if (train && head.isPresent() && head.get().dropoutRate().isPresent()) {
      Tensor dropout = TFloat32.scalarOf((float) head.get().spec().dropout());
      owned.add(dropout);
      runner.feed(head.get().dropoutRate().get(), dropout);
      Tensor seed = org.tensorflow.types.TInt64.vectorOf(head.get().spec().seed(), iterations.getAsLong());
      owned.add(seed);
      runner.feed(head.get().dropoutSeed(), seed);
    }
  }

  private static Tensor targetTensor(NpyArray targets, LossSpec loss) {
    // Integer labels for the sparse loss, floats for the others, whatever the file's dtype.
    String want = loss == LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY ? "int32" : "float32";
    if (targets.dtype().equals(want)) {
      return targets.toTensor();
    }
    double[] v = targets.toDoubles();
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(v.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (double d : v) {
      if (want.equals("int32")) {
        b.putInt((int) d);
      } else {
        b.putFloat((float) d);
      }
    }
    return new NpyArray(want, targets.shape(), b.array()).toTensor();
  }

}
