package org.finetune.graph;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.tensorflow.GraphOperation;
import org.tensorflow.Operand;
import org.tensorflow.Output;
import org.tensorflow.op.Ops;
import org.tensorflow.proto.FunctionDefLibrary;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedConcreteFunction;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObject;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObjectGraph;
import org.tensorflow.proto.Struct.StructuredValue;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.types.family.TType;

/**
 * Custom gradients a SavedModel carries ({@code tf.custom_gradient}: Keras's swish/SiLU, clipped
 * or straight-through gradients), applied when training through the flat graph.
 *
 * <p>TensorFlow saves each {@code tf.custom_gradient} call as an {@code IdentityN} over the
 * forward results, arguments and variables, marked {@code _gradient_op_type}, and the gradient
 * function itself in the library ({@code registered_gradients}: op type to function). That
 * function takes the gradient of every IdentityN output, then its captures (the variables and
 * forward tensors it reads, listed as the concrete function's bound inputs in the object graph);
 * it returns a gradient per IdentityN input, less those that are None (the results'), as its
 * output signature says. The runtime's C++ registry has no gradient for IdentityN. The flattener
 * marks each such IdentityN it can resolve with {@link #ATTR}, a key into a table of
 * {@link Site}s; the gradient registered here for IdentityN calls the saved function with the
 * incoming gradients and the captures' flat tensors, as TensorFlow's loader does. An IdentityN
 * without the mark has no gradient, as before.
 */
public final class SavedGradients {
  /** The attribute that marks an IdentityN whose saved gradient function is known. */
  public static final String ATTR = "_finetune_gradient";

  /**
   * Where one marked IdentityN's gradient comes from.
   *
   * @param inputs how many inputs the IdentityN has of its own; the function's captures follow
   *     them as extra inputs (the gradient callback cannot look nodes up by name: the graph is
   *     locked while gradients are added)
   * @param outputOf per own input, the function output that is its gradient, or -1 (none)
   */
  record Site(int inputs, List<Integer> outputOf) {}

  /**
   * A site's key, and what to append to the IdentityN's inputs: flat tensors (with their types),
   * or for a captured variable its handle node (type {@code DT_RESOURCE}), whose shared read the
   * flattener passes instead (an IdentityN cannot pass a resource on: the runtime would make
   * zeros of it when gradients are added).
   */
  record Mark(String key, List<String> captures, List<org.tensorflow.proto.DataType> types, List<Integer> outputOf) {}

  private static final Map<String, Site> SITES = new ConcurrentHashMap<>();
  private static final AtomicLong NEXT = new AtomicLong();

  private final Map<String, String> functionByOpType = new HashMap<>();
  private final SavedObjectGraph objects;
  /** Object graph node id of a variable to its handle node, from the top-level calls' bound inputs. */
  private final Map<Integer, String> handleByObject = new HashMap<>();

  SavedGradients(FunctionDefLibrary library, SavedObjectGraph objects, List<NodeDef> topLevel) {
    library.getRegisteredGradientsList().forEach(g -> functionByOpType.put(g.getRegisteredOpType(), g.getGradientFunc()));
    this.objects = objects;
    for (NodeDef call : topLevel) {
      if (!call.getAttrMap().containsKey("f")) {
        continue;
      }
      SavedConcreteFunction fn = objects.getConcreteFunctionsMap().get(call.getAttrMap().get("f").getFunc().getName());
      if (fn == null) {
        continue;
      }
      List<String> inputs = call.getInputList().stream().filter(i -> !i.startsWith("^")).toList();
      int first = inputs.size() - fn.getBoundInputsCount();
      for (int i = 0; i < fn.getBoundInputsCount() && first >= 0; i++) {
        if (objects.getNodes(fn.getBoundInputs(i)).getKindCase() == SavedObject.KindCase.VARIABLE) {
          handleByObject.put(fn.getBoundInputs(i), TensorNames.nodeOf(inputs.get(first + i)));
        }
      }
    }
  }

  /** The saved gradient function of an IdentityN's op type, if the model carries one. */
  Optional<String> functionFor(NodeDef identityN) {
    if (!identityN.getOp().equals("IdentityN") || !identityN.getAttrMap().containsKey("_gradient_op_type")) {
      return Optional.empty();
    }
    return Optional.ofNullable(functionByOpType.get(identityN.getAttrMap().get("_gradient_op_type").getS().toStringUtf8()));
  }

  /**
   * Marks an IdentityN of the flat graph (with {@code inputs} inputs of its own) whose saved
   * gradient is {@code gradient}, the function saved for concrete function {@code function}; {@code capture} resolves a captured tensor's name in
   * {@code inFunction} (as the object graph gives it, {@code node:index} or {@code arg:0}) to its
   * flat tensor. Empty when a capture cannot be resolved: the IdentityN then has no gradient.
   */
  Optional<Mark> mark(String function, org.tensorflow.proto.FunctionDef gradient, int inputs, String inFunction,
      java.util.function.Function<String, Optional<String>> capture) {
    SavedConcreteFunction fn = objects.getConcreteFunctionsMap().get(function);
    if (fn == null || gradient == null
        || gradient.getSignature().getInputArgCount() != inputs + fn.getBoundInputsCount()) {
      return Optional.empty();
    }
    List<String> captures = new ArrayList<>();
    List<org.tensorflow.proto.DataType> types = new ArrayList<>();
    for (int i = 0; i < fn.getBoundInputsCount(); i++) {
      int id = fn.getBoundInputs(i);
      SavedObject object = objects.getNodes(id);
      if (object.getKindCase() == SavedObject.KindCase.VARIABLE && handleByObject.containsKey(id)) {
        captures.add(handleByObject.get(id));
      } else if (object.getKindCase() == SavedObject.KindCase.CAPTURED_TENSOR
          && object.getCapturedTensor().getConcreteFunction().equals(inFunction)) {
        Optional<String> t = capture.apply(object.getCapturedTensor().getName());
        if (t.isEmpty()) {
          return Optional.empty();
        }
        captures.add(t.get());
      } else {
        return Optional.empty();
      }
      types.add(gradient.getSignature().getInputArg(inputs + i).getType());
    }
    List<StructuredValue> outs = fn.getOutputSignature().getListValue().getValuesList();
    if (outs.isEmpty()) {
      outs = fn.getOutputSignature().getTupleValue().getValuesList();
    }
    if (outs.size() != inputs) {
      return Optional.empty();
    }
    List<Integer> outputOf = new ArrayList<>();
    int next = 0;
    for (StructuredValue v : outs) {
      outputOf.add(v.hasNoneValue() ? -1 : next++);
    }
    String key = "site" + NEXT.incrementAndGet();
    SITES.put(key, new Site(inputs, outputOf));
    return Optional.of(new Mark(key, captures, types, outputOf));
  }

  /**
   * Gives the copied IdentityN {@code copy} (inputs already flat) the gradient {@code function}
   * the model saved for it: marks it with a site; appends its captures as extra inputs (a captured
   * variable as its shared read, from {@code reads} by handle, the gradient function rewritten to
   * take the value: {@link #readingValues}); cuts its inputs that get no gradient with a
   * StopGradient (added through {@code add}), so that backprop does not go on into the forward
   * ops behind them (Round, say, has no gradient at all). Returns the gradient function's name in
   * {@code library}, or empty when something cannot be resolved (the IdentityN then has none).
   */
  Optional<String> attach(NodeDef.Builder copy, String function, FlatScope scope, Map<String, String> reads,
      Map<String, org.tensorflow.proto.DataType> readTypes, Map<String, org.tensorflow.proto.FunctionDef> library,
      java.util.function.Consumer<NodeDef> add) {
    List<String> data = copy.getInputList().stream().filter(i -> !i.startsWith("^")).toList();
    if (data.size() != copy.getInputCount()) {
      return Optional.empty();  // control inputs would sit between the data inputs and the captures
    }
    Optional<Mark> mark = mark(function, library.get(function), data.size(), scope.function, scope::graphTensor);
    if (mark.isEmpty()) {
      return Optional.empty();
    }
    Mark m = mark.get();
    for (int i = 0; i < m.captures().size(); i++) {
      if (m.types().get(i) == org.tensorflow.proto.DataType.DT_RESOURCE && !reads.containsKey(m.captures().get(i))) {
        return Optional.empty();  // a resource that is no variable the flat graph reads
      }
    }
    org.tensorflow.proto.AttrValue.ListValue.Builder types = copy.getAttrMap().get("T").getList().toBuilder();
    Map<Integer, org.tensorflow.proto.DataType> values = new HashMap<>();
    for (int i = 0; i < m.captures().size(); i++) {
      boolean variable = m.types().get(i) == org.tensorflow.proto.DataType.DT_RESOURCE;
      copy.addInput(variable ? reads.get(m.captures().get(i)) : m.captures().get(i));
      types.addType(variable ? readTypes.get(m.captures().get(i)) : m.types().get(i));
      if (variable) {
        values.put(data.size() + i, readTypes.get(m.captures().get(i)));
      }
    }
    for (int i = 0; i < data.size(); i++) {
      if (m.outputOf().get(i) < 0) {
        String stop = copy.getName() + "/finetune_stop_" + i;
        add.accept(NodeDef.newBuilder().setName(stop).setOp("StopGradient").addInput(data.get(i))
            .putAttr("T", org.tensorflow.proto.AttrValue.newBuilder().setType(types.getType(i)).build()).build());
        copy.setInput(i, stop);
      }
    }
    org.tensorflow.proto.FunctionDef gradient = readingValues(library.get(function), values);
    library.putIfAbsent(gradient.getSignature().getName(), gradient);
    copy.putAttr("T", org.tensorflow.proto.AttrValue.newBuilder().setList(types).build());
    copy.putAttr(ATTR, org.tensorflow.proto.AttrValue.newBuilder().setS(
        com.google.protobuf.ByteString.copyFromUtf8(m.key() + "@" + gradient.getSignature().getName())).build());
    return Optional.of(gradient.getSignature().getName());
  }

  /** The gradient registered for IdentityN ({@link CustomGradients}): the saved function's, called. */
  static List<Operand<?>> identityNGradient(Ops tf, GraphOperation op, List<Output<?>> gradients) {
    Site site;
    String function;
    try {
      // "key@function": the site, and the gradient function as the flat graph holds it.
      String mark = op.attributes().getAttrString(ATTR);
      site = SITES.get(mark.substring(0, mark.indexOf('@')));
      function = mark.substring(mark.indexOf('@') + 1);
    } catch (RuntimeException e) {
      site = null;
      function = null;
    }
    if (site == null) {
      throw new IllegalStateException("no gradient for IdentityN " + op.name() + ": it is no custom gradient the"
          + " SavedModel carries a function for");
    }
    org.tensorflow.OperationBuilder call = tf.scope().opBuilder(function, "finetune_saved_gradient");
    for (int i = 0; i < op.numOutputs() - (op.numInputs() - site.inputs()); i++) {
      Output<?> g = i < gradients.size() ? gradients.get(i) : null;
      call.addInput(g != null ? g : tf.zerosLike(cast(op.output(i))).asOutput());
    }
    for (int i = site.inputs(); i < op.numInputs(); i++) {
      call.addInput(op.input(i));
    }
    org.tensorflow.Operation called = call.build();
    List<Operand<?>> out = new ArrayList<>();
    for (int i = 0; i < site.inputs(); i++) {
      int k = site.outputOf().get(i);
      out.add(k >= 0 ? called.output(k) : tf.zerosLike(cast(op.input(i))));
    }
    // The captures are inputs only to reach them here: nothing flows back through them.
    for (int i = site.inputs(); i < op.numInputs(); i++) {
      out.add(tf.zerosLike(cast(op.input(i))));
    }
    return out;
  }

  @SuppressWarnings("unchecked")
  private static <T extends TType> Operand<T> cast(Operand<?> o) {
    return (Operand<T>) o;
  }

  /**
   * {@code gradient} taking the value of each captured variable instead of its handle: the
   * resource arguments at {@code resourceArgs} become arguments of the variables' types, and the
   * reads of them become Identities.
   */
  static org.tensorflow.proto.FunctionDef readingValues(org.tensorflow.proto.FunctionDef gradient,
      Map<Integer, org.tensorflow.proto.DataType> resourceArgs) {
    org.tensorflow.proto.FunctionDef.Builder f = gradient.toBuilder();
    f.getSignatureBuilder().setName(gradient.getSignature().getName() + "_finetune_values");
    java.util.Set<String> args = new java.util.HashSet<>();
    Map<String, org.tensorflow.proto.DataType> typeOf = new HashMap<>();
    resourceArgs.forEach((i, t) -> {
      String name = gradient.getSignature().getInputArg(i).getName();
      args.add(name);
      typeOf.put(name, t);
      f.getSignatureBuilder().getInputArgBuilder(i).setType(t);
    });
    f.clearArgAttr();
    java.util.Set<String> reads = new java.util.HashSet<>();
    for (NodeDef.Builder n : f.getNodeDefBuilderList()) {
      if (n.getOp().equals("ReadVariableOp") && args.contains(n.getInput(0))) {
        org.tensorflow.proto.DataType t = typeOf.get(n.getInput(0));
        n.setOp("Identity").clearAttr().putAttr("T", org.tensorflow.proto.AttrValue.newBuilder().setType(t).build());
        reads.add(n.getName());
      }
    }
    // A read's output was "value"; an Identity's is "output".
    for (NodeDef.Builder n : f.getNodeDefBuilderList()) {
      for (int i = 0; i < n.getInputCount(); i++) {
        n.setInput(i, renamed(n.getInput(i), reads));
      }
    }
    Map<String, String> ret = new HashMap<>(f.getRetMap());
    ret.replaceAll((k, v) -> renamed(v, reads));
    f.clearRet().putAllRet(ret);
    return f.build();
  }

  private static String renamed(String ref, java.util.Set<String> reads) {
    String[] parts = ref.split(":");
    return parts.length == 3 && reads.contains(parts[0]) && parts[1].equals("value")
        ? parts[0] + ":output:" + parts[2] : ref;
  }
}
