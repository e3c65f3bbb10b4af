package org.finetune.graph;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.tensorflow.Graph;
import org.tensorflow.GraphOperation;
import org.tensorflow.Operand;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
import org.tensorflow.op.train.Restore;
import org.tensorflow.proto.DataType;
import org.tensorflow.types.TString;
import org.tensorflow.types.family.TType;

/**
 * A TensorFlow checkpoint's save and restore ops over named variables, built into a graph: one
 * {@code SaveV2} of every variable's value under its key, one {@code RestoreV2} with an assignment
 * per variable, joined by a no-op. Variables are resource handles ({@code VarHandleOp}) or TF1 ref
 * variables.
 *
 * @param save the op that writes the checkpoint at the prefix
 * @param restore the op that reads every variable back
 */
public record SaveRestoreOps(Op save, Op restore) {
  /**
   * Builds them in {@code scope}'s graph.
   *
   * @param prefix the checkpoint's path prefix
   * @param variables variable node names by checkpoint key, in the order written
   */
  @SuppressWarnings("unchecked")
  public static SaveRestoreOps build(Ops scope, Graph graph, Operand<TString> prefix, Map<String, String> variables) {
    List<String> keys = new ArrayList<>(variables.keySet());
    String[] slices = new String[keys.size()];
    Arrays.fill(slices, "");
    Operand<TString> names = scope.withName("tensor_names").constant(StandardCharsets.UTF_8, keys.toArray(new String[0]));
    Operand<TString> shapes = scope.withName("shape_and_slices").constant(StandardCharsets.UTF_8, slices);
    List<GraphOperation> ops = new ArrayList<>();
    List<Operand<?>> values = new ArrayList<>();
    List<Class<? extends TType>> types = new ArrayList<>();
    for (String key : keys) {
      GraphOperation op = graph.operation(variables.get(key));
      boolean resource = op.type().equals("VarHandleOp");
      DataType dtype = resource ? op.attributes().getAttrType("dtype") : op.output(0).dataType();
      Class<? extends TType> type = TensorTypes.of(dtype);
      ops.add(op);
      types.add(type);
      values.add(resource ? scope.readVariableOp((Operand<? extends TType>) op.output(0), type)
          : scope.identity((Operand<TType>) op.output(0)));
    }
    Op save = scope.withName("SaveV2").train.save(prefix, names, shapes, values);
    Restore restored = scope.withName("RestoreV2").train.restore(prefix, names, shapes, types);
    List<Op> assigns = new ArrayList<>();
    for (int i = 0; i < ops.size(); i++) {
      GraphOperation op = ops.get(i);
      Operand<?> value = restored.tensors().get(i);
      assigns.add(op.type().equals("VarHandleOp")
          ? scope.assignVariableOp((Operand<? extends TType>) op.output(0), value)
          : scope.assign((Operand<TType>) op.output(0), (Operand<TType>) value));
    }
    Op restore = scope.withControlDependencies(assigns).withName("restore_all").noOp();
    return new SaveRestoreOps(save, restore);
  }
}
