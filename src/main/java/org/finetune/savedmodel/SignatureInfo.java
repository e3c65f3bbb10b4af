package org.finetune.savedmodel;

import java.util.List;
import java.util.Objects;

/** One signature of a SavedModel: its name, method and named inputs and outputs (sorted by key). */
public record SignatureInfo(String name, String method, List<TensorSpec> inputs, List<TensorSpec> outputs) {
  public SignatureInfo {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(method, "method");
    inputs = List.copyOf(inputs);
    outputs = List.copyOf(outputs);
  }
}
