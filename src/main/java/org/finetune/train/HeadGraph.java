package org.finetune.train;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.tensorflow.Output;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.VarHandleOp;
import org.tensorflow.types.TFloat32;

/**
 * A head's inference graph, for exports: the same ops a {@link Trainer} builds (no dropout), on
 * variables named as Keras names them ({@code head_hidden/kernel}, ...) whose values come from a
 * checkpoint, not from an initialiser.
 */
public final class HeadGraph {
  private HeadGraph() {}

  /**
   * The head built with {@code tf}.
   *
   * @param output the head's output (after its activation)
   * @param handles variable name to its {@code VarHandleOp} node name
   * @param reads variable name to the tensor that reads it
   */
  public record Built(Output<TFloat32> output, Map<String, String> handles, Map<String, String> reads) {
    public Built {
      handles = Collections.unmodifiableMap(new LinkedHashMap<>(handles));
      reads = Collections.unmodifiableMap(new LinkedHashMap<>(reads));
    }
  }

  public static Built inference(Ops tf, HeadSpec spec, Output<?> features, Optional<Output<?>> padding) {
    Map<String, String> handles = new LinkedHashMap<>();
    Map<String, String> reads = new LinkedHashMap<>();
    Head.VariableMaker maker = (scope, layer, name, shape, initial) -> {
      String key = layer + "/" + name;
      VarHandleOp handle = scope.withName(name).varHandleOp(TFloat32.class, shape, VarHandleOp.sharedName(key));
      var read = scope.withSubScope(name).withSubScope("Read").withName("ReadVariableOp").readVariableOp(handle, TFloat32.class);
      handles.put(key, handle.op().name());
      reads.put(key, read.op().name() + ":0");
      return read;
    };
    Head.Forward f = Head.forward(tf, spec, features, padding, Optional.empty(), maker);
    return new Built(f.output().asOutput(), handles, reads);
  }
}
