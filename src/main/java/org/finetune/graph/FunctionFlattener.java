package org.finetune.graph;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
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
 * Ops that take functions but are not calls ({@code If}, {@code While}) are kept, with the
 * functions they need copied into the flat library.
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
   */
  public record FlatGraph(GraphDef graphDef, Map<String, String> inputs, Map<String, String> outputs,
      Map<String, FlatVariable> variables) {}

  private static final Set<String> CALL_OPS = Set.of("PartitionedCall", "StatefulPartitionedCall");

  private final OpDefs opDefs;
  private final Map<String, FunctionDef> library = new HashMap<>();
  private final GraphDef.Builder out = GraphDef.newBuilder();
  private final Set<String> emitted = new HashSet<>();
  private final Map<String, FlatVariable> variables = new LinkedHashMap<>();
  /** Flat tensor name of a resource handle to the variable it is. */
  private final Map<String, FlatVariable> resources = new HashMap<>();
  private final Set<String> neededFunctions = new LinkedHashSet<>();

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
    return new FunctionFlattener(graph, opDefs).run(graph, inputs, outputs);
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
    Scope scope = new Scope("", Map.of(), true);
    for (NodeDef node : Topology.sort(nodes)) {
      if (node.getOp().equals("VarHandleOp") || node.getOp().equals("VariableV2")) {
        emitVariable(node, scope);
      } else if (node.getOp().equals("ReadVariableOp") && resources.containsKey(scope.translate(node.getInput(0)))) {
        // A plain graph (TF1 style, or one of our own exports) reads its variables at the top level.
        FlatVariable v = resources.get(scope.translate(node.getInput(0)));
        scope.alias(node.getName(), List.of(v.read()), v.read().substring(0, v.read().indexOf(':')));
      } else if (node.getOp().equals("ResourceGather") && resources.containsKey(scope.translate(node.getInput(0)))) {
        emitGather(node, scope, resources.get(scope.translate(node.getInput(0))));
      } else if (isCall(node)) {
        inline(node, scope);
      } else {
        emitCopy(node, scope);
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
    return new FlatGraph(out.build(), flatInputs, flatOutputs, variables);
  }

  // ------------------------------------------------------------------------------ emitting

  private void emitVariable(NodeDef node, Scope scope) {
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

  private void emitCopy(NodeDef node, Scope scope) {
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
    add(copy.build());
    scope.emitted(node.getName(), name, node);
    if (node.getOp().equals("Identity") && node.getAttrMap().get("T").getType() == DataType.DT_RESOURCE) {
      FlatVariable v = resources.get(copy.getInput(0));
      if (v != null) {
        resources.put(name + ":0", v);
      }
    }
  }

  /** Copies the body of the function {@code call} invokes in place of the call. */
  private void inline(NodeDef call, Scope caller) {
    String fname = calledFunction(call);
    FunctionDef f = library.get(fname);
    if (f == null) {
      throw new IllegalArgumentException("node " + call.getName() + " calls " + fname + ", which is not in the library");
    }
    List<String> args = new ArrayList<>();
    List<String> control = new ArrayList<>();
    for (String input : call.getInputList()) {
      if (input.startsWith("^")) {
        control.add(caller.translate(input).substring(1));
      } else {
        args.add(caller.translate(input));
      }
    }
    if (args.size() != f.getSignature().getInputArgCount()) {
      throw new IllegalArgumentException("call " + call.getName() + " passes " + args.size() + " inputs to " + fname
          + ", which takes " + f.getSignature().getInputArgCount());
    }
    String prefix = caller.prefix + call.getName() + "/";
    Map<String, String> argTensors = new HashMap<>();
    for (int i = 0; i < args.size(); i++) {
      argTensors.put(f.getSignature().getInputArg(i).getName(), args.get(i));
    }
    Scope body = new Scope(prefix, argTensors, false);
    body.controlIn.addAll(control);
    for (NodeDef node : Topology.sort(f.getNodeDefList())) {
      if (node.getOp().equals("ReadVariableOp") && resources.containsKey(body.translate(node.getInput(0)))) {
        FlatVariable v = resources.get(body.translate(node.getInput(0)));
        body.alias(node.getName(), List.of(v.read()), v.read().substring(0, v.read().indexOf(':')));
      } else if (node.getOp().equals("ResourceGather") && resources.containsKey(body.translate(node.getInput(0)))) {
        emitGather(node, body, resources.get(body.translate(node.getInput(0))));
      } else if (isCall(node)) {
        inline(node, body);
      } else {
        emitCopy(node, body);
      }
    }
    List<String> results = new ArrayList<>();
    for (OpDef.ArgDef arg : f.getSignature().getOutputArgList()) {
      results.add(body.translate(f.getRetMap().get(arg.getName())));
    }
    // A NoOp under the call's own name stands for "the call has run" to control edges.
    String done = caller.prefix + call.getName();
    NodeDef.Builder marker = NodeDef.newBuilder().setName(done).setOp("NoOp").setDevice(call.getDevice());
    for (String r : results) {
      marker.addInput("^" + TensorNames.nodeOf(r));
    }
    for (String ctrl : f.getControlRetMap().values()) {
      marker.addInput("^" + body.nodeName(ctrl));
    }
    add(marker.build());
    List<String> outputNames = new ArrayList<>();
    f.getSignature().getOutputArgList().forEach(a -> outputNames.add(a.getName()));
    caller.inlined(call, results, outputNames, done);
  }

  private void emitGather(NodeDef node, Scope scope, FlatVariable v) {
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
  }

  private static void dropPrivateAttrs(NodeDef.Builder node) {
    for (String key : new ArrayList<>(node.getAttrMap().keySet())) {
      if (key.startsWith("_")) {
        node.removeAttr(key);
      }
    }
  }

  // ------------------------------------------------------------------------------ naming

  /**
   * Names in one body. A FunctionDef refers to tensors as {@code node:out_arg:idx} or by argument
   * name; the top-level graph as {@code node:idx}. Both resolve here to flat tensor names.
   */
  private final class Scope {
    final String prefix;
    final Map<String, String> args;
    final boolean graphNames;
    final List<String> controlIn = new ArrayList<>();
    /** Node name to its flat output tensors by output argument name (function bodies) or index. */
    final Map<String, Map<String, List<String>>> byArg = new HashMap<>();
    final Map<String, List<String>> flat = new HashMap<>();
    final Map<String, String> nodeNames = new HashMap<>();

    Scope(String prefix, Map<String, String> args, boolean graphNames) {
      this.prefix = prefix;
      this.args = args;
      this.graphNames = graphNames;
    }

    void emitted(String node, String flatName, NodeDef def) {
      Map<String, List<String>> outputs = new LinkedHashMap<>();
      List<String> all = new ArrayList<>();
      OpDef opDef = opDefs.find(def.getOp()).orElse(null);
      if (opDef != null) {
        Map<String, AttrValue> attrs = OpDefs.withDefaults(opDef, def.getAttrMap());
        for (OpDef.ArgDef arg : opDef.getOutputArgList()) {
          int n = OpDefs.argTypes(arg, attrs).size();
          List<String> tensors = new ArrayList<>();
          for (int i = 0; i < n; i++) {
            tensors.add(flatName + ":" + all.size());
            all.add(flatName + ":" + all.size());
          }
          outputs.put(arg.getName(), tensors);
        }
      } else if (!library.containsKey(def.getOp())) {
        throw new IllegalArgumentException("op " + def.getOp() + " (node " + node + ") is not registered in the"
            + " TensorFlow runtime this finetune links against");
      }
      byArg.put(node, outputs);
      flat.put(node, all);
      nodeNames.put(node, flatName);
    }

    void alias(String node, List<String> tensors, String flatNode) {
      byArg.put(node, Map.of("value", tensors, "ref", tensors));
      flat.put(node, tensors);
      nodeNames.put(node, flatNode);
    }

    void inlined(NodeDef call, List<String> results, List<String> outputArgNames, String done) {
      Map<String, List<String>> outputs = new LinkedHashMap<>();
      if (CALL_OPS.contains(call.getOp())) {
        outputs.put("output", results);
      } else {
        for (int i = 0; i < results.size(); i++) {
          outputs.put(outputArgNames.get(i), List.of(results.get(i)));
        }
      }
      byArg.put(call.getName(), outputs);
      flat.put(call.getName(), results);
      nodeNames.put(call.getName(), done);
    }

    String nodeName(String node) {
      String n = nodeNames.get(node);
      if (n == null) {
        throw new IllegalArgumentException("unknown node " + node + " in " + (prefix.isEmpty() ? "the graph" : prefix));
      }
      return n;
    }

    /** A tensor reference of this body, as a flat tensor name (control inputs keep their caret). */
    String translate(String ref) {
      if (ref.startsWith("^")) {
        String node = ref.substring(1);
        return "^" + nodeName(node);
      }
      return tensor(ref);
    }

    String tensor(String ref) {
      String[] parts = ref.split(":");
      if (graphNames) {
        int index = parts.length > 1 ? Integer.parseInt(parts[1]) : 0;
        List<String> outputs = flat.get(parts[0]);
        if (outputs == null || index >= outputs.size()) {
          throw new IllegalArgumentException("unknown tensor " + ref + " in the graph");
        }
        return outputs.get(index);
      }
      if (parts.length == 1) {
        String arg = args.get(ref);
        if (arg == null) {
          throw new IllegalArgumentException("unknown argument " + ref + " in " + prefix);
        }
        return arg;
      }
      Map<String, List<String>> outputs = byArg.get(parts[0]);
      List<String> tensors = outputs == null ? null : outputs.get(parts[1]);
      int index = parts.length > 2 ? Integer.parseInt(parts[2]) : 0;
      if (tensors == null || index >= tensors.size()) {
        throw new IllegalArgumentException("unknown tensor " + ref + " in " + prefix);
      }
      return tensors.get(index);
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
