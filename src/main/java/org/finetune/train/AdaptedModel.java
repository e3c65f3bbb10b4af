package org.finetune.train;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.finetune.data.NpyArray;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.tensorflow.Result;
import org.tensorflow.Session;
import org.tensorflow.Tensor;
import org.tensorflow.op.Ops;

/**
 * An open base model read through one {@link AdapterSet}, for predictions: the signature's flat
 * graph with the set's adapters, each kernel read as {@code W + (alpha / rank) A B}. Several sets
 * can be applied to one open model at once, each with adapter variables of its own, while the
 * base's weights are shared and never change; switching sets needs no reload. Thread-safe.
 *
 * <p>Each application adds its graph and variables to the model's (a TensorFlow graph only
 * grows); they go when the model is closed.
 */
public final class AdaptedModel {
  private static final AtomicLong APPLIED = new AtomicLong();

  private final KerasSavedModel model;
  private final FlatSignature flat;
  private final AdapterSet set;

  private AdaptedModel(KerasSavedModel model, FlatSignature flat, AdapterSet set) {
    this.model = model;
    this.flat = flat;
    this.set = set;
  }

  /**
   * Applies {@code set} to {@code model} (the base the adapters were trained on).
   *
   * @throws IllegalArgumentException when the model lacks the set's signature or one of its
   *     kernels, or a kernel's shape does not fit its adapters
   */
  public static AdaptedModel apply(KerasSavedModel model, AdapterSet set) {
    if (!model.info().signatures().containsKey(set.signature())) {
      throw new IllegalArgumentException("the adapters were trained through signature " + set.signature()
          + ", which the model lacks; it has " + String.join(", ", model.info().signatures().keySet()));
    }
    long n = APPLIED.incrementAndGet();
    FlatSignature plain = model.flatSignature(set.signature());
    Adapters a = Adapters.place(model, plain, set.spec(), Ops.create(model.graph()).withSubScope("finetune_adapted_" + n),
        "_apply" + n);
    a.assign(set);
    return new AdaptedModel(model, a.flat(), set);
  }

  public AdapterSet adapters() {
    return set;
  }

  /** The signature's outputs for {@code inputs} (by input key), computed through the adapters. */
  public Map<String, NpyArray> predict(Map<String, NpyArray> inputs) {
    if (!inputs.keySet().equals(flat.inputs().keySet())) {
      throw new IllegalArgumentException("the signature takes " + flat.inputs().keySet() + ", got " + inputs.keySet());
    }
    List<Tensor> owned = new ArrayList<>();
    try {
      Session.Runner runner = model.session().runner();
      for (Map.Entry<String, NpyArray> e : inputs.entrySet()) {
        Tensor t = e.getValue().toTensor();
        owned.add(t);
        runner.feed(flat.inputs().get(e.getKey()), t);
      }
      List<String> keys = new ArrayList<>(flat.outputs().keySet());
      keys.forEach(k -> runner.fetch(flat.outputs().get(k)));
      Map<String, NpyArray> out = new LinkedHashMap<>();
      try (Result r = runner.run()) {
        for (int i = 0; i < keys.size(); i++) {
          out.put(keys.get(i), NpyArray.of(r.get(i)));
        }
      }
      return out;
    } finally {
      owned.forEach(Tensor::close);
    }
  }
}
