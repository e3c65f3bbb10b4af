package org.finetune.graph;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.finetune.savedmodel.Ancestors;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.FunctionDef;
import org.tensorflow.proto.FunctionDefLibrary;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.OpDef;
import org.tensorflow.proto.TensorProto;
import org.tensorflow.proto.TensorShapeProto;

/**
 * Inlines a signature's function, and every function it calls, into one flat GraphDef that
 * {@code Graph.addGradients} can differentiate.
 *
 * <p>Why: the runtime cannot differentiate through the {@code StatefulPartitionedCall} of a
 * SavedModel's signature (its run-time SymbolicGradient uses another gradient registry). So the
 * flat graph has no calls: each call's body is copied under the call's name, its arguments become
 * the call's inputs, its results the call's outputs. FunctionDef tensor names
 * ({@code node:out_arg:idx}) become flat indices using the runtime's op definitions
 * (list-valued outputs counted through {@code number_attr} / {@code type_list_attr}).
 *
 * <p>Variables: every captured variable handle (a top-level {@code VarHandleOp}) is copied with
 * its {@code shared_name}, so that once imported into the loaded model's graph it names the same
 * restored resource, and gets one shared {@code ReadVariableOp}; every read in the bodies becomes
 * that read, so gradients w.r.t. it are gradients w.r.t. the variable. {@code ResourceGather}
 * (which has no gradient) becomes {@code GatherV2} on the shared read.
 *
 * <p>Device fields and control dependencies are kept; attributes starting with an underscore
 * (function-only bookkeeping such as {@code _read_only_resource_inputs}, colocation) are dropped.
 * {@code While} loops whose steps are all decided before the graph runs (recurrent layers over a
 * fixed number of time steps) are unrolled, their {@code TensorList} ops rewritten
 * ({@link TensorLists}), since the runtime differentiates neither. Other ops that take functions
 * ({@code If}, loops that cannot be unrolled) are kept, with the functions they need copied into
 * the flat library.
 */
public final class FunctionFlattener {
  /** Suffix of the shared read node created for each variable handle. */
  public static final String READ_SUFFIX = "/finetune_read";

  /** A variable the flat graph reads. */
  public record FlatVariable(String handle, String read, DataType dtype) {}

  /**
   * The flat graph and where things are in it (node and tensor names before any import prefix).
   *
   * @param inputs signature input key to the placeholder tensor
   * @param outputs signature output key to the tensor that computes it
   * @param variables by handle node name of the original graph, each with its shared read
   * @param loops one line per {@code While} loop: unrolled into how many steps, or kept and why
   * @param customGradients how many IdentityNs got the custom gradient the model saved for them
   */
  public record FlatGraph(GraphDef graphDef, Map<String, String> inputs, Map<String, String> outputs,
      Map<String, FlatVariable> variables, List<String> loops, int customGradients) {}

  private static final Set<String> CALL_OPS = Set.of("PartitionedCall", "StatefulPartitionedCall");
  private static final Set<String> LOOP_OPS = Set.of("While", "StatelessWhile");
  /** Loops longer than this stay loops: the unrolled graph would grow with every step. */
  static final int MAX_UNROLLED_STEPS = 4096;

  private final OpDefs opDefs;
  private final Map<String, FunctionDef> library = new HashMap<>();
  private final GraphDef.Builder out = GraphDef.newBuilder();
  private final Set<String> emitted = new HashSet<>();
  private final Map<String, FlatVariable> variables = new LinkedHashMap<>();
  /** Flat tensor name of a resource handle to the variable it is. */
  private final Map<String, FlatVariable> resources = new HashMap<>();
  private final Set<String> neededFunctions = new LinkedHashSet<>();
  /** Every flat node by name, for the static values that decide how loops unroll. */
  private final Map<String, NodeDef> flatNodes = new HashMap<>();
  private final StaticValues values = new StaticValues(flatNodes);
  private final TensorLists lists = new TensorLists(values);
  /** What became of each loop: unrolled, or kept and why. */
  private final List<String> loops = new ArrayList<>();

  private FunctionFlattener(GraphDef graph, OpDefs opDefs) {
    this.opDefs = opDefs;
    graph.getLibrary().getFunctionList().forEach(f -> library.put(f.getSignature().getName(), f));
    out.setVersions(graph.getVersions());
  }

  /**
   * Flattens what {@code outputs} (top-level tensor names, by key) compute from {@code inputs}
   * (top-level placeholder tensor names, by key).
   */
  public static FlatGraph flatten(GraphDef graph, Map<String, String> inputs, Map<String, String> outputs,
      OpDefs opDefs) {
    return flatten(graph, inputs, outputs, Map.of(), null, opDefs);
  }

  /**
   * As {@link #flatten(GraphDef, Map, Map, OpDefs)}, with the free dimensions of some inputs fixed
   * ({@code fixedShapes}: input key to the shape of one example, without the batch dimension), so
   * that loops over a sequence whose length the signature leaves free can be unrolled. The flat
   * graph then takes only inputs of those shapes. With the SavedModel's object graph
   * ({@code objects}, may be null), the custom gradients it saved are attached
   * ({@link SavedGradients}).
   */
  public static FlatGraph flatten(GraphDef graph, Map<String, String> inputs, Map<String, String> outputs,
      Map<String, long[]> fixedShapes, org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObjectGraph objects, OpDefs opDefs) {
    Map<String, long[]> byPlaceholder = new HashMap<>();
    fixedShapes.forEach((key, dims) -> {
      if (inputs.containsKey(key)) {
        byPlaceholder.put(TensorNames.nodeOf(inputs.get(key)), dims);
      }
    });
    FunctionFlattener flattener = new FunctionFlattener(graph, opDefs);
    flattener.fixed.putAll(byPlaceholder);
    if (objects != null && graph.getLibrary().getRegisteredGradientsCount() > 0) {
      flattener.saved = new SavedGradients(graph.getLibrary(), objects, graph.getNodeList());
    }
    return flattener.run(graph, inputs, outputs);
  }

  /** The model's saved custom gradients, when it has any and its object graph was given. */
  private SavedGradients saved;
  private int customGradients;

  /** Placeholder node to the shape of one example its free dimensions take. */
  private final Map<String, long[]> fixed = new HashMap<>();

  /** A signature input's placeholder with its free dimensions after the batch set from {@link #fixed}. */
  private NodeDef withFixedShape(NodeDef node) {
    long[] dims = fixed.get(node.getName());
    AttrValue shape = node.getAttrMap().get("shape");
    if (dims == null || shape == null || shape.getShape().getUnknownRank()
        || shape.getShape().getDimCount() != dims.length + 1) {
      return node;
    }
    TensorShapeProto.Builder pinned = shape.getShape().toBuilder();
    for (int i = 0; i < dims.length; i++) {
      if (pinned.getDim(i + 1).getSize() < 0) {
        pinned.setDim(i + 1, TensorShapeProto.Dim.newBuilder().setSize(dims[i]));
      }
    }
    return node.toBuilder().putAttr("shape", AttrValue.newBuilder().setShape(pinned).build()).build();
  }

  /** Every top-level node name, so that the reads we add never take one (a flat graph flattened again has them). */
  private final Set<String> topNames = new java.util.HashSet<>();

  private FlatGraph run(GraphDef graph, Map<String, String> inputs, Map<String, String> outputs) {
    Map<String, NodeDef> top = new HashMap<>();
    graph.getNodeList().forEach(n -> top.put(n.getName(), n));
    topNames.addAll(top.keySet());
    Set<String> needed = Ancestors.of(top, outputs.values(), Ancestors.Edges.DATA_AND_CONTROL);
    List<NodeDef> nodes = new ArrayList<>();
    for (NodeDef n : graph.getNodeList()) {
      if (needed.contains(n.getName())) {
        nodes.add(n);
      }
    }
    FlatScope scope = new FlatScope("", "", Map.of(), true, opDefs, library);
    for (NodeDef node : Topology.sort(nodes)) {
      if (node.getOp().equals("VarHandleOp") || node.getOp().equals("VariableV2")) {
        emitVariable(node, scope);
      } else if (node.getOp().equals("Placeholder")) {
        emitCopy(withFixedShape(node), scope);
      } else {
        // A plain graph (TF1 style, or one of our own exports) reads its variables at the top level.
        emitNode(node, scope);
      }
    }
    Map<String, String> flatOutputs = new LinkedHashMap<>();
    outputs.forEach((key, tensor) -> flatOutputs.put(key, scope.tensor(tensor)));
    Map<String, String> flatInputs = new LinkedHashMap<>();
    inputs.forEach((key, tensor) -> flatInputs.put(key, scope.tensor(tensor)));
    if (!neededFunctions.isEmpty()) {
      FunctionDefLibrary.Builder lib = FunctionDefLibrary.newBuilder();
      closeOverFunctions().forEach(name -> lib.addFunction(library.get(name)));
      out.setLibrary(lib);
    }
    return new FlatGraph(out.build(), flatInputs, flatOutputs, variables, List.copyOf(loops), customGradients);
  }

  // ------------------------------------------------------------------------------ emitting

  private void emitVariable(NodeDef node, FlatScope scope) {
    NodeDef.Builder handle = node.toBuilder().clearInput();
    dropPrivateAttrs(handle);
    AttrValue shared = handle.getAttrMap().get("shared_name");
    if (shared == null || shared.getS().isEmpty()) {
      // An empty shared_name means "the node's name", which an import prefix would change.
      handle.putAttr("shared_name", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.copyFromUtf8(node.getName())).build());
    }
    add(handle.build());
    DataType dtype = node.getAttrMap().get("dtype").getType();
    String readName = node.getName() + READ_SUFFIX;
    for (int i = 1; topNames.contains(readName) || emitted.contains(readName); i++) {
      readName = node.getName() + READ_SUFFIX + "_" + i;
    }
    FlatVariable v = new FlatVariable(node.getName(), readName + ":0", dtype);
    variables.put(node.getName(), v);
    if (node.getOp().equals("VariableV2")) {
      // TF1 reference variable: its consumers read the shared Identity instead of the reference.
      add(NodeDef.newBuilder().setName(readName).setOp("Identity").addInput(node.getName())
          .setDevice(node.getDevice()).putAttr("T", AttrValue.newBuilder().setType(dtype).build()).build());
      scope.alias(node.getName(), List.of(v.read()), readName);
      return;
    }
    add(NodeDef.newBuilder().setName(readName).setOp("ReadVariableOp").addInput(node.getName())
        .setDevice(node.getDevice()).putAttr("dtype", AttrValue.newBuilder().setType(dtype).build()).build());
    resources.put(node.getName() + ":0", v);
    scope.emitted(node.getName(), node.getName(), node);
  }

  private void emitCopy(NodeDef node, FlatScope scope) {
    String name = scope.prefix + node.getName();
    NodeDef.Builder copy = node.toBuilder().setName(name).clearInput();
    for (String input : node.getInputList()) {
      copy.addInput(scope.translate(input));
    }
    if (!scope.controlIn.isEmpty() && node.getInputCount() == 0) {
      scope.controlIn.forEach(c -> copy.addInput("^" + c));
    }
    dropPrivateAttrs(copy);
    for (AttrValue value : copy.getAttrMap().values()) {
      if (value.getValueCase() == AttrValue.ValueCase.PLACEHOLDER) {
        throw new IllegalArgumentException("node " + node.getName() + " uses function attribute "
            + value.getPlaceholder() + ": polymorphic functions cannot be flattened");
      }
      if (value.hasFunc()) {
        neededFunctions.add(value.getFunc().getName());
      }
      value.getList().getFuncList().forEach(f -> neededFunctions.add(f.getName()));
    }
    if (saved != null) {
      saved.functionFor(node).ifPresent(fn -> markCustomGradient(copy, fn, scope));
    }
    List<NodeDef> replacement = lists.rewrite(copy.build());
    if (!replacement.isEmpty()) {
      replacement.forEach(this::add);
      scope.single(node.getName(), TensorLists.outputArg(node.getOp()), name + ":0", name);
      return;
    }
    add(copy.build());
    scope.emitted(node.getName(), name, node);
    if (node.getOp().equals("Identity") && node.getAttrMap().get("T").getType() == DataType.DT_RESOURCE) {
      FlatVariable v = resources.get(copy.getInput(0));
      if (v != null) {
        resources.put(name + ":0", v);
      }
    }
  }

  /** One node of a body: a read of a captured variable, a call, a loop, or a copy. */
  private void emitNode(NodeDef node, FlatScope scope) {
    if (node.getOp().equals("ReadVariableOp") && resources.containsKey(scope.translate(node.getInput(0)))) {
      FlatVariable v = resources.get(scope.translate(node.getInput(0)));
      scope.alias(node.getName(), List.of(v.read()), v.read().substring(0, v.read().indexOf(':')));
    } else if (node.getOp().equals("ResourceGather") && resources.containsKey(scope.translate(node.getInput(0)))) {
      emitGather(node, scope, resources.get(scope.translate(node.getInput(0))));
    } else if (isCall(node)) {
      inline(node, scope);
    } else if (!(LOOP_OPS.contains(node.getOp()) && unroll(node, scope))) {
      emitCopy(node, scope);
    }
  }

  /** Gives a copied IdentityN the custom gradient the model saved for it ({@link SavedGradients#attach}). */
  private void markCustomGradient(NodeDef.Builder copy, String function, FlatScope scope) {
    Map<String, DataType> readTypes = new HashMap<>();
    Map<String, String> reads = new HashMap<>();
    variables.forEach((handle, v) -> {
      reads.put(handle, v.read());
      readTypes.put(handle, v.dtype());
    });
    saved.attach(copy, function, scope, reads, readTypes, library, this::add).ifPresent(gradient -> {
      neededFunctions.add(gradient);
      customGradients++;
    });
  }

  /** Copies the body of the function {@code call} invokes in place of the call. */
  private void inline(NodeDef call, FlatScope caller) {
    String fname = calledFunction(call);
    FunctionDef f = library.get(fname);
    if (f == null) {
      throw new IllegalArgumentException("node " + call.getName() + " calls " + fname + ", which is not in the library");
    }
    List<String> args = new ArrayList<>();
    List<String> control = new ArrayList<>();
    split(call, caller, args, control);
    String done = caller.prefix + call.getName();
    List<String> results = inlineBody(f, args, control, done);
    List<String> outputNames = new ArrayList<>();
    f.getSignature().getOutputArgList().forEach(a -> outputNames.add(a.getName()));
    caller.inlined(call, results, CALL_OPS.contains(call.getOp()) ? null : outputNames, done);
  }

  /** A node's inputs, flat: data inputs into {@code args}, control inputs (without caret) into {@code control}. */
  private static void split(NodeDef node, FlatScope scope, List<String> args, List<String> control) {
    for (String input : node.getInputList()) {
      if (input.startsWith("^")) {
        control.add(scope.translate(input).substring(1));
      } else {
        args.add(scope.translate(input));
      }
    }
  }

  /**
   * Copies {@code f}'s body under {@code name + "/"} with {@code args} as its arguments, and a
   * NoOp named {@code name} that stands for "the body has run" to control edges; returns its
   * results as flat tensors.
   */
  private List<String> inlineBody(FunctionDef f, List<String> args, List<String> control, String name) {
    if (args.size() != f.getSignature().getInputArgCount()) {
      throw new IllegalArgumentException(name + " passes " + args.size() + " inputs to " + f.getSignature().getName()
          + ", which takes " + f.getSignature().getInputArgCount());
    }
    Map<String, String> argTensors = new HashMap<>();
    for (int i = 0; i < args.size(); i++) {
      argTensors.put(f.getSignature().getInputArg(i).getName(), args.get(i));
    }
    FlatScope body = new FlatScope(name + "/", f.getSignature().getName(), argTensors, false, opDefs, library);
    body.controlIn.addAll(control);
    for (NodeDef node : Topology.sort(f.getNodeDefList())) {
      emitNode(node, body);
    }
    List<String> results = new ArrayList<>();
    for (OpDef.ArgDef arg : f.getSignature().getOutputArgList()) {
      results.add(body.translate(f.getRetMap().get(arg.getName())));
    }
    NodeDef.Builder marker = NodeDef.newBuilder().setName(name).setOp("NoOp");
    for (String r : results) {
      marker.addInput("^" + TensorNames.nodeOf(r));
    }
    for (String ctrl : f.getControlRetMap().values()) {
      marker.addInput("^" + body.nodeName(ctrl));
    }
    add(marker.build());
    return results;
  }

  // ------------------------------------------------------------------------------ loops

  /**
   * Unrolls a {@code While} loop whose every step is decided before the graph runs (Keras's
   * recurrent layers over a fixed number of time steps): evaluates its condition on the loop
   * variables' static values, and while it holds, inlines another copy of the body, each step's
   * results the next step's arguments. The runtime has no gradient for {@code While}; the
   * unrolled steps have ordinary ops, and their {@code TensorList} reads and writes are rewritten
   * by {@link TensorLists}. A loop that cannot be unrolled is kept, everything it emitted removed,
   * and the reason recorded in {@link FlatGraph#loops()}.
   */
  private boolean unroll(NodeDef loop, FlatScope scope) {
    FunctionDef cond = library.get(loop.getAttrMap().get("cond").getFunc().getName());
    FunctionDef body = library.get(loop.getAttrMap().get("body").getFunc().getName());
    String name = scope.prefix + loop.getName();
    if (cond == null || body == null) {
      return false;
    }
    List<String> vars = new ArrayList<>();
    List<String> control = new ArrayList<>();
    split(loop, scope, vars, control);
    int mark = out.getNodeCount();
    Set<String> functionsBefore = new LinkedHashSet<>(neededFunctions);
    int steps = 0;
    try {
      while (true) {
        int condMark = out.getNodeCount();
        List<String> verdict = inlineBody(cond, vars, control, name + "/finetune_cond_" + steps);
        Optional<Long> more = values.scalar(verdict.get(0));
        truncate(condMark);
        if (more.isEmpty()) {
          throw new IllegalArgumentException("its condition depends on values known only when it runs (a sequence"
              + " length that is not fixed by the input's shape)");
        }
        if (more.get() == 0) {
          break;
        }
        if (steps == MAX_UNROLLED_STEPS) {
          throw new IllegalArgumentException("it runs more than " + MAX_UNROLLED_STEPS + " steps");
        }
        vars = inlineBody(body, vars, control, name + "/finetune_step_" + steps);
        steps++;
      }
    } catch (IllegalArgumentException e) {
      truncate(mark);
      neededFunctions.retainAll(functionsBefore);
      loops.add(name + " stays a loop, without gradients: " + e.getMessage());
      return false;
    }
    NodeDef.Builder done = NodeDef.newBuilder().setName(name).setOp("NoOp").setDevice(loop.getDevice());
    vars.forEach(v -> done.addInput("^" + TensorNames.nodeOf(v)));
    add(done.build());
    scope.inlined(loop, vars, null, name);
    loops.add(name + " unrolled into " + steps + " steps");
    return true;
  }

  /** Removes every node added after the first {@code count}. */
  private void truncate(int count) {
    List<String> removed = new ArrayList<>();
    while (out.getNodeCount() > count) {
      String n = out.getNode(out.getNodeCount() - 1).getName();
      removed.add(n);
      out.removeNode(out.getNodeCount() - 1);
      emitted.remove(n);
      flatNodes.remove(n);
    }
    Set<String> gone = new HashSet<>(removed);
    values.forget(gone);
    lists.forget(gone);
    resources.keySet().removeIf(t -> gone.contains(TensorNames.nodeOf(t)));
  }

  private void emitGather(NodeDef node, FlatScope scope, FlatVariable v) {
    String name = scope.prefix + node.getName();
    String axis = name + "/finetune_axis";
    add(NodeDef.newBuilder().setName(axis).setOp("Const").setDevice(node.getDevice())
        .putAttr("dtype", AttrValue.newBuilder().setType(DataType.DT_INT32).build())
        .putAttr("value", AttrValue.newBuilder().setTensor(TensorProto.newBuilder().setDtype(DataType.DT_INT32)
            .setTensorShape(TensorShapeProto.getDefaultInstance()).addIntVal(0)).build()).build());
    NodeDef.Builder gather = NodeDef.newBuilder().setName(name).setOp("GatherV2").setDevice(node.getDevice())
        .addInput(v.read()).addInput(scope.translate(node.getInput(1))).addInput(axis)
        .putAttr("Tparams", AttrValue.newBuilder().setType(node.getAttrMap().get("dtype").getType()).build())
        .putAttr("Tindices", node.getAttrMap().get("Tindices"))
        .putAttr("Taxis", AttrValue.newBuilder().setType(DataType.DT_INT32).build())
        .putAttr("batch_dims", AttrValue.newBuilder().setI(node.getAttrMap().containsKey("batch_dims")
            ? node.getAttrMap().get("batch_dims").getI() : 0).build());
    for (int i = 2; i < node.getInputCount(); i++) {
      gather.addInput(scope.translate(node.getInput(i)));
    }
    add(gather.build());
    scope.emitted(node.getName(), name, NodeDef.newBuilder().setOp("GatherV2").setName(name)
        .putAttr("Tparams", gather.getAttrMap().get("Tparams")).build());
  }

  private void add(NodeDef node) {
    if (!emitted.add(node.getName())) {
      throw new IllegalStateException("two nodes named " + node.getName() + " in the flat graph");
    }
    out.addNode(node);
    flatNodes.put(node.getName(), node);
  }

  private static void dropPrivateAttrs(NodeDef.Builder node) {
    for (String key : new ArrayList<>(node.getAttrMap().keySet())) {
      if (key.startsWith("_")) {
        node.removeAttr(key);
      }
    }
  }

  // ------------------------------------------------------------------------------ helpers

  private boolean isCall(NodeDef node) {
    return (CALL_OPS.contains(node.getOp()) && node.getAttrMap().containsKey("f")) || library.containsKey(node.getOp());
  }

  private static String calledFunction(NodeDef node) {
    return CALL_OPS.contains(node.getOp()) ? node.getAttrMap().get("f").getFunc().getName() : node.getOp();
  }



  /** The functions the kept function-valued attributes need, and the functions those call. */
  private List<String> closeOverFunctions() {
    Set<String> all = new LinkedHashSet<>();
    ArrayDeque<String> todo = new ArrayDeque<>(neededFunctions);
    while (!todo.isEmpty()) {
      String name = todo.poll();
      if (!all.add(name)) {
        continue;
      }
      for (NodeDef n : library.get(name).getNodeDefList()) {
        if (library.containsKey(n.getOp())) {
          todo.add(n.getOp());
        }
        for (AttrValue v : n.getAttrMap().values()) {
          if (v.hasFunc()) {
            todo.add(v.getFunc().getName());
          }
          v.getList().getFuncList().forEach(f -> todo.add(f.getName()));
        }
      }
    }
    return new ArrayList<>(all);
  }
}
